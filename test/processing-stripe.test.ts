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
