import t from 'tap';
import { startProcessing } from './helpers/processing.ts';
import { waitFor } from './helpers/wait.ts';

const visa = { type: 'card', token: 'pm_card_visa' } as const;
const declined = { type: 'card', token: 'pm_card_chargeDeclined' } as const;

const { service, sandbox, api, terminal } = await startProcessing(t, { PROVIDER_MAX_ATTEMPTS: '4' });
t.beforeEach(() => sandbox.reset());

const order = async (paymentMethod: object = visa, amount = 2500) => {
  const res = await api.createOrder({ amount, currency: 'EUR', paymentMethod });
  t.equal(res.status, 201);
  return res.body.id as string;
};
const stripeCharges = async (orderId: string) =>
  (await sandbox.chargesFor(orderId)).filter((e) => e.provider === 'stripe' && e.status === 'charged');
const outbox = (orderId: string) => service.database.rows('select * from outbox_events where order_id = $1', [orderId]);

t.test('success: COMPLETED with the PaymentIntent, one attempt, one event, one charge', async (t) => {
  const id = await order();
  const done = await terminal(id);
  t.match(done, {
    status: 'COMPLETED',
    providerReference: /^pi_/,
    failure: null,
    nextAttemptAt: null,
    reconcilingSince: null,
  });
  t.same(
    done.history.map((h: { to: string }) => h.to),
    ['PENDING', 'PROCESSING', 'COMPLETED'],
  );
  t.equal(done.attempts.length, 1);
  t.match(done.attempts[0], {
    number: 1,
    kind: 'charge',
    provider: 'stripe',
    outcome: 'succeeded',
    httpStatus: 200,
    error: null,
  });
  t.ok(done.attempts[0].latencyMs >= 0);
  const events = await outbox(id);
  t.equal(events.length, 1);
  t.match(events[0], { type: 'payment_order.completed', order_id: id });
  t.match(events[0]?.payload, { id, status: 'COMPLETED', providerReference: done.providerReference, amount: 2500 });
  const charges = await stripeCharges(id);
  t.equal(charges.length, 1);
  t.match(charges[0], { amount: 2500, currency: 'eur', idempotencyKey: `${id}-charge`, id: done.providerReference });
});

t.test('decline: FAILED at once with the decline code and message', async (t) => {
  const id = await order(declined);
  const done = await terminal(id);
  t.match(done, { status: 'FAILED', failure: { code: 'generic_decline', message: /declined/ } });
  t.equal(done.attempts.length, 1, 'no retry of a decline');
  t.match(done.attempts[0], { outcome: 'declined', httpStatus: 402 });
  t.match((await outbox(id))[0], {
    type: 'payment_order.failed',
    payload: { status: 'FAILED', failure: { code: 'generic_decline' } },
  });
  t.equal((await stripeCharges(id)).length, 0);
});

t.test('5xx, then success: the retry reuses the idempotency key, one charge', async (t) => {
  await sandbox.switches({ failNext: 1 });
  const id = await order();
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  t.match(done.attempts, [
    { kind: 'charge', outcome: 'unknown', httpStatus: 500 },
    { kind: 'status', outcome: 'succeeded', httpStatus: 200 },
  ]);
  t.same(
    (
      await service.database.rows('select distinct idempotency_key from provider_attempts where order_id = $1', [id])
    ).map((r) => r.idempotency_key),
    [`${id}-charge`],
    'the same provider idempotency key on every attempt',
  );
  t.equal((await stripeCharges(id)).length, 1);
});

t.test('429 with Retry-After: the next attempt waits at least that long', async (t) => {
  await sandbox.switches({ rateLimitNext: 1, retryAfterSeconds: 1 });
  const id = await order();
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  t.match(done.attempts, [
    { kind: 'charge', outcome: 'retry', httpStatus: 429 },
    { kind: 'charge', outcome: 'succeeded' },
  ]);
  const gap = Date.parse(done.attempts[1].startedAt) - Date.parse(done.attempts[0].startedAt);
  t.ok(gap >= 1000, `waited ${gap} ms after a Retry-After of 1 s`);
  t.equal((await stripeCharges(id)).length, 1);
});

t.test('timeout: outcome unknown, the next attempt asks first (same key), no second charge', async (t) => {
  await sandbox.switches({ timeoutNext: 1 });
  const id = await order();
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  t.match(done.attempts, [
    { kind: 'charge', outcome: 'unknown', httpStatus: null, error: /timeout/i },
    { kind: 'status', outcome: 'succeeded' },
  ]);
  t.equal((await stripeCharges(id)).length, 1);
});

t.test('lost response: the charge happened, the answer was lost; reconciled, charged once', async (t) => {
  await sandbox.switches({ loseNext: 1 });
  const id = await order();
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  t.match(done.attempts, [
    { kind: 'charge', outcome: 'unknown', httpStatus: null },
    { kind: 'status', outcome: 'succeeded' },
  ]);
  const charges = await stripeCharges(id);
  t.equal(charges.length, 1, 'exactly one charge in the ledger');
  t.equal(done.providerReference, charges[0]?.id);
});

t.test('retries exhausted while nothing was charged (429s): FAILED provider_unavailable', async (t) => {
  await sandbox.switches({ rateLimitNext: 100, retryAfterSeconds: 0 });
  const id = await order();
  const done = await terminal(id);
  t.match(done, { status: 'FAILED', failure: { code: 'provider_unavailable' } });
  t.equal(done.attempts.length, 4, 'PROVIDER_MAX_ATTEMPTS calls');
  t.ok(done.attempts.every((a: { httpStatus: number }) => a.httpStatus === 429));
  t.equal((await stripeCharges(id)).length, 0);
});

t.test('retries exhausted while the provider may have charged: reconciling, never FAILED', async (t) => {
  await sandbox.switches({ errorRate: 1 });
  const id = await order();
  const reconciling = await waitFor('the order to start reconciling', async () => {
    const res = await api.get(`/payment-orders/${id}`);
    return res.body.reconcilingSince ? res.body : undefined;
  });
  t.equal(reconciling.status, 'PROCESSING', 'not FAILED while Stripe may have charged');
  t.ok(reconciling.nextAttemptAt, 'the next reconciliation is scheduled and visible');
  t.ok(reconciling.attempts.length >= 4);
  // Stripe recovers: the slow schedule finds the answer.
  await sandbox.switches({ errorRate: 0 });
  const done = await terminal(id);
  t.match(done, { status: 'COMPLETED', reconcilingSince: null });
  t.equal((await stripeCharges(id)).length, 1);
});

t.test('the state machine lives in the database', async (t) => {
  const id = await order();
  await terminal(id);
  const { pool } = service.database;
  await t.rejects(pool.query("update payment_orders set status = 'FAILED' where id = $1", [id]), /final/);
  await t.rejects(pool.query('update payment_orders set amount = 1 where id = $1', [id]), /final/);
  const [pending] = await service.database.rows(
    "insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key) select 'po_sm', merchant_id, 'PENDING', 1, 'USD', 'stripe', 'sm' from payment_orders limit 1 returning id",
  );
  t.ok(pending);
  await t.rejects(
    pool.query("update payment_orders set status = 'COMPLETED' where id = 'po_sm'"),
    /not an allowed transition/,
  );
  await pool.query("update payment_orders set status = 'PROCESSING' where id = 'po_sm'");
  await t.rejects(
    pool.query("update payment_orders set status = 'PENDING' where id = 'po_sm'"),
    /not an allowed transition/,
  );
});

t.test('an order accepted without a payment method fails without a provider call', async (t) => {
  const res = await api.createOrder({ amount: 100, currency: 'USD' });
  t.equal(res.status, 201);
  const done = await terminal(res.body.id);
  t.match(done, { status: 'FAILED', failure: { code: 'payment_method_required' }, attempts: [] });
});

t.test("past Stripe's 24 h key window, reconciliation searches instead of repeating the create", async (t) => {
  await sandbox.switches({ errorRate: 1 });
  const id = await order();
  await waitFor('the order to start reconciling', async () => {
    const res = await api.get(`/payment-orders/${id}`);
    return res.body.reconcilingSince ? true : undefined;
  });
  // A day passes for this order's calls.
  await service.database.pool.query(
    "update provider_attempts set started_at = started_at - interval '24 hours' where order_id = $1",
    [id],
  );
  await sandbox.switches({ errorRate: 0 });
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  const paths = (await sandbox.requests())
    .filter((r) => r.fault === null)
    .map((r) => `${r.method} ${r.path.split('?')[0]}`);
  t.ok(paths.includes('GET /v1/payment_intents/search'), 'asked by search (no charge found), then charged');
  t.equal((await stripeCharges(id)).length, 1);
});

t.test(
  'a PaymentIntent still processing is polled on a backoff, then on the slow schedule, never every second',
  async (t) => {
    // The charge answers `processing`, and so do the next seven retrieves; then it succeeds.
    const description = `pending-${Date.now()}`;
    await sandbox.script(description, [
      'pending',
      'pending',
      'pending',
      'pending',
      'pending',
      'pending',
      'pending',
      'pending',
    ]);
    const res = await api.createOrder({ amount: 4200, currency: 'EUR', paymentMethod: visa, description });
    t.equal(res.status, 201);
    const done = await terminal(res.body.id, 30_000);
    t.match(done, { status: 'COMPLETED', providerReference: /^pi_/ });
    const calls = done.attempts as Array<{
      kind: string;
      outcome: string;
      startedAt: string;
      providerReference: string;
    }>;
    t.match(calls[0], { kind: 'charge', outcome: 'pending' });
    t.ok(
      calls.slice(1).every((c) => c.kind === 'status' && c.providerReference === done.providerReference),
      'then only retrieves of that PaymentIntent',
    );
    t.equal(calls.filter((c) => c.outcome === 'pending').length, 8);
    const gaps = calls.slice(1).map((c, i) => Date.parse(c.startedAt) - Date.parse(calls[i]?.startedAt ?? ''));
    // FAST_PROCESSING: base 50 ms, max 200 ms, PROVIDER_MAX_ATTEMPTS=4, then RECONCILE_INTERVAL_SECONDS=1.
    t.ok(
      gaps.slice(0, 3).every((gap) => gap >= 25),
      `backoff while retries last: ${gaps.slice(0, 3).join(', ')} ms`,
    );
    t.ok(
      gaps.slice(3).every((gap) => gap >= 990),
      `then the slow schedule: ${gaps.slice(3).join(', ')} ms`,
    );
    t.equal((await stripeCharges(res.body.id)).length, 1, 'one charge');
  },
);

t.test('which PaymentIntent statuses are pending, paid or declined', async (t) => {
  const { fromIntent } = await import('../src/providers/stripe.ts');
  const intent = (status: string) => ({ id: 'pi_1', status, last_payment_error: null }) as never;
  t.match(fromIntent(intent('succeeded')), { kind: 'succeeded', reference: 'pi_1' });
  for (const status of ['processing', 'requires_capture', 'requires_confirmation', 'a_status_stripe_adds_later']) {
    t.match(fromIntent(intent(status)), { kind: 'pending', reference: 'pi_1' }, `${status}: ask again later`);
  }
  t.match(fromIntent(intent('requires_payment_method')), { kind: 'declined', code: 'payment_failed' });
  t.match(fromIntent(intent('requires_action')), { kind: 'declined', code: 'authentication_required' });
  t.match(fromIntent(intent('canceled')), { kind: 'declined', code: 'canceled' });
});

t.test('the issue: a lost answer, then ten 429s (PROVIDER_MAX_ATTEMPTS=4): COMPLETED, never FAILED', async (t) => {
  // As a user would: the first call's answer is lost (the charge is made), then the sandbox starts
  // answering 429 (set after the first call: the sandbox applies rateLimitNext before loseNext).
  await sandbox.switches({ loseNext: 1, retryAfterSeconds: 0 });
  const id = await order();
  await waitFor(
    'the lost answer',
    async () =>
      (await service.database.count('provider_attempts', "order_id = $1 and outcome = 'unknown'", [id])) === 1
        ? true
        : undefined,
    { intervalMs: 5 },
  );
  await sandbox.switches({ rateLimitNext: 10 });
  const done = await terminal(id, 40_000);
  t.match(done, { status: 'COMPLETED', failure: null, reconcilingSince: null });
  const calls = done.attempts as Array<{ kind: string; outcome: string; httpStatus: number | null }>;
  t.match(calls[0], { kind: 'charge', outcome: 'unknown' });
  t.ok(
    calls.slice(1).every((c) => c.kind === 'status'),
    `every later call asks (never a fresh charge while Stripe may hold the money): ${calls.map((c) => `${c.kind}:${c.httpStatus}`).join(' ')}`,
  );
  const starts = (done.attempts as Array<{ startedAt: string }>).map((a) => Date.parse(a.startedAt));
  const gaps = starts.slice(1).map((at, i) => at - (starts[i] as number));
  t.ok(
    gaps.slice(3).every((gap) => gap >= 990),
    `once the 4 attempts were spent, reconciled on the slow schedule (1 s): ${gaps.join(', ')} ms`,
  );
  t.equal((await stripeCharges(id)).length, 1, 'the one charge that was made');
});

for (const [name, script] of [
  ['a late answer, then 401s', ['timeout', '401', '401', '401', '401', '401']],
  ['two late answers, then 429s', ['lost', 'timeout', '429', '429', '429', '429']],
  ['lost, then 5xx and 429s across the budget', ['lost', '5xx', '429', '5xx', '429', '429']],
] as const) {
  t.test(`cousins of the issue: ${name}: COMPLETED, never FAILED`, async (t) => {
    const description = `cousin-${Date.now()}-${Math.random()}`;
    await sandbox.script(description, script);
    const res = await api.createOrder({ amount: 2500, currency: 'EUR', paymentMethod: visa, description });
    const done = await terminal(res.body.id, 40_000);
    t.not(done.status, 'FAILED');
    t.equal(done.status, 'COMPLETED');
    const charges = await stripeCharges(res.body.id);
    t.equal(charges.length, 1);
    t.equal(done.providerReference, charges[0]?.id);
    t.ok(
      (done.attempts as Array<{ kind: string }>).slice(1).every((c) => c.kind === 'status'),
      'only asked after the first call',
    );
  });
}

t.test(
  'a 500 Stripe hit after charging is saved and replayed for the key: asked by search instead, charged once',
  async (t) => {
    await sandbox.switches({ failNext: 1, stripeErrorsAfterProcessing: true });
    const id = await order();
    const done = await terminal(id, 30_000);
    t.match(done, { status: 'COMPLETED', providerReference: /^pi_/ });
    const paths = (await sandbox.requests()).map((r) => `${r.method} ${r.path}`);
    t.ok(
      paths.includes('GET /v1/payment_intents/search'),
      `asked by search after the replayed 500: ${paths.join(', ')}`,
    );
    t.equal((await stripeCharges(id)).length, 1, 'one charge');
  },
);

t.test(
  'an operator cannot settle an order while a provider call for it is in flight; an answer that contradicts a settlement is flagged',
  async (t) => {
    const operator = await service.operator('race');
    // The first call's answer is lost (the charge is made); then Stripe is down for a while.
    await sandbox.switches({ loseNext: 1 });
    const id = await order();
    await waitFor('the lost answer', async () =>
      (await service.database.count('provider_attempts', "order_id = $1 and outcome = 'unknown'", [id])) === 1
        ? true
        : undefined,
    );
    await sandbox.switches({ errorRate: 1 });
    await service.database.pool.query(
      "update payment_orders set review_reason = 'outcome_unknown', review_since = now() where id = $1",
      [id],
    );
    await service.database.pool.query(
      "insert into payment_order_reviews (id, order_id, reason, detail) values ('rev_race_1', $1, 'outcome_unknown', 'test')",
      [id],
    );
    // While a slow status call is in flight, the operator's resolve waits its turn (409 order_busy).
    await sandbox.switches({ errorRate: 0, latencyMs: 700 });
    await waitFor(
      'a call in flight',
      async () =>
        (await service.database.count('provider_attempts', 'order_id = $1 and ended_at is null', [id])) > 0
          ? true
          : undefined,
      { intervalMs: 5 },
    );
    const busy = await operator.api.request('POST', `/payment-orders/${id}/resolve`, {
      body: { status: 'FAILED', note: 'looks unpaid' },
    });
    t.match(busy, { status: 409, body: { code: 'order_busy' } });
    const done = await terminal(id, 30_000);
    t.match(done, { status: 'COMPLETED', review: null }, 'the provider answered first: paid');
    await sandbox.switches({ latencyMs: 0 });
    t.match(done.reviews, [{ reason: 'outcome_unknown', resolvedBy: 'provider', resolution: 'COMPLETED' }]);
  },
);
