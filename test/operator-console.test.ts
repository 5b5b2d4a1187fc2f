// The operator console's read API without a browser: GET /operator/overview's numbers against the
// database's own counts, GET /operator/payment-orders/{id}'s story, the operator-only auth, bad
// input as problem+json, and the static console with its Content-Security-Policy.
import type { AddressInfo } from 'node:net';
import express from 'express';
import { pino } from 'pino';
import t from 'tap';
import { findOperatorByKeyHash } from '../src/db/operators.repository.ts';
import { errorHandler, notFound } from '../src/http/middleware.ts';
import { operatorConsoleRoutes } from '../src/http/routes/operator-console.routes.ts';
import { arrangeConsoleState, CONSOLE_TEST_ENV, databaseCounts } from './helpers/console-fixture.ts';
import { ApiClient, startTestService } from './helpers/service.ts';

const service = await startTestService(t, CONSOLE_TEST_ENV);
const fixture = await arrangeConsoleState(service);
const operator = await service.operator('console-tester');

t.test('auth: an operator key reads; a merchant key gets 403 and no data; no key or a bad one 401', async (t) => {
  for (const path of ['/operator/overview', `/operator/payment-orders/${fixture.order.completed}`]) {
    const ok = await operator.api.get(path);
    t.equal(ok.status, 200, `${path}: operator`);

    const merchant = await fixture.acme.api.get(path);
    t.equal(merchant.status, 403, `${path}: merchant key`);
    t.match(merchant.headers.get('content-type'), /^application\/problem\+json/);
    t.equal(merchant.body.code, 'operator_key_required');
    t.notOk(/po_|evt_|whs_/.test(merchant.text), 'the refusal carries no ids');

    const none = await service.api().get(path);
    t.equal(none.status, 401, `${path}: no key`);
    t.equal(none.body.code, 'authentication_required');
    t.equal(none.headers.get('www-authenticate'), 'Bearer');

    const forged = await service.api(`op_${'x'.repeat(43)}`).get(path);
    t.equal(forged.status, 401, `${path}: unknown operator key`);
    t.equal(forged.body.code, 'invalid_api_key');
  }
});

t.test('overview: the counts are the database’s', async (t) => {
  const counts = await databaseCounts(service);
  const { status, body } = await operator.api.get('/operator/overview');
  t.equal(status, 200);
  t.equal(body.object, 'operator_overview');
  t.match(body.generatedAt, /^\d{4}-\d\d-\d\dT/);
  t.same(
    {
      pending: body.orders.pending,
      processing: body.orders.processing,
      reconciling: body.orders.reconciling,
      underReview: body.orders.underReview,
      stuck: body.orders.stuck,
      completed: body.orders.recent.byStatus.COMPLETED,
      failed: body.orders.recent.byStatus.FAILED,
      unrelayed: body.outbox.webhooks.unrelayed,
      deliveriesPending: body.outbox.webhooks.deliveriesPending,
      calls: body.providerCalls.total.calls,
      rateLimited: body.providerCalls.total.rateLimited,
    },
    {
      pending: counts.pending,
      processing: counts.processing,
      reconciling: counts.reconciling,
      underReview: counts.underReview,
      stuck: counts.stuck,
      completed: counts.completedLastHour,
      failed: counts.failedLastHour,
      unrelayed: counts.unrelayed,
      deliveriesPending: counts.deliveriesPending,
      calls: counts.callsLast10Minutes,
      rateLimited: counts.rateLimitedLast10Minutes,
    },
  );
  // The fixture's own expectations, so that a count that is right by accident (0 = 0) shows.
  t.ok(counts.pending >= 2 && counts.stuck >= 2 && counts.underReview >= 1 && counts.rateLimitedLast10Minutes >= 2);
  t.equal(body.orders.recent.minutes, 60);
  t.equal(body.outbox.kafka, null, 'no Kafka configured: no Kafka figures');
  t.same(
    body.providerCalls.limits,
    { callsPerSecond: 2, perProvider: {}, windowMs: 1040 },
    'the gate of the configuration: 2 calls per 1 s + 40 ms margin',
  );
});

t.test('overview: the lists, with merchant, age and last call', async (t) => {
  const { body } = await operator.api.get('/operator/overview');
  const stuckIds = (
    await service.database.rows(
      `select id from payment_orders where status in ('PENDING', 'PROCESSING') and created_at < now() - interval '5 minutes'
       order by created_at, id`,
    )
  ).map((r) => r.id);
  t.same(
    body.stuck.data.map((o: { id: string }) => o.id),
    stuckIds,
    'stuck: sql/audit/stuck-orders.sql, oldest first',
  );
  t.same(stuckIds, [fixture.order.pendingStuck, fixture.order.underReview]);
  const stuckReview = body.stuck.data[1];
  t.match(stuckReview, {
    merchant: { id: fixture.kenya.id },
    status: 'PROCESSING',
    provider: 'mpesa',
    amount: 10_000,
    currency: 'KES',
    review: { reason: 'push_unconfirmed' },
    lastCall: { kind: 'charge', outcome: 'unknown', httpStatus: null, error: 'timeout after 10000 ms' },
  });
  t.ok(stuckReview.ageSeconds >= 20 * 60 - 5 && stuckReview.ageSeconds < 21 * 60, 'age from the database clock');
  t.equal(body.stuck.minutes, 5);

  t.same(
    body.reconciling.data.map((o: { id: string }) => o.id),
    [fixture.order.underReview, fixture.order.reconciling],
    'reconciling: longest first',
  );
  t.equal(body.reconciling.total, 2);

  t.equal(body.underReview.total, 1);
  t.match(body.underReview.data, [
    {
      id: fixture.order.underReview,
      reasons: ['push_unconfirmed'],
      detail: /no callback/,
      merchant: { id: fixture.kenya.id, name: String },
    },
  ]);
  t.ok(body.underReview.data[0].waitingSeconds >= 29);

  const narrow = await operator.api.get('/operator/overview?limit=1&stuckMinutes=25');
  t.equal(narrow.body.stuck.total, 1, 'stuckMinutes: only the order stuck for 30 minutes');
  t.same(
    narrow.body.stuck.data.map((o: { id: string }) => o.id),
    [fixture.order.pendingStuck],
  );
  t.equal(narrow.body.reconciling.data.length, 1, 'limit bounds every list');
  t.equal(narrow.body.reconciling.total, 2, '... and the totals still count them all');
});

t.test('overview: provider calls per provider and bucket, 429s, errors, the peak in any second', async (t) => {
  const { body } = await operator.api.get('/operator/overview');
  const calls = body.providerCalls;
  t.equal(calls.bucketSeconds, 10);
  t.equal(Date.parse(calls.to) - Date.parse(calls.from), 10 * 60_000);
  t.equal(Date.parse(calls.to) % 10_000, 0, 'buckets aligned on the clock');
  const perProvider = await service.database.rows<{ provider: string; calls: number; limited: number; errors: number }>(
    `select provider, count(*)::int as calls, count(*) filter (where http_status = 429)::int as limited,
            count(*) filter (where outcome in ('error', 'retry', 'unknown') and http_status is distinct from 429)::int as errors
     from provider_attempts where started_at >= $1 and started_at < $2 group by provider order by provider`,
    [calls.from, calls.to],
  );
  t.same(
    calls.providers.map((p: any) => ({
      provider: p.provider,
      calls: p.calls,
      limited: p.rateLimited,
      errors: p.errors,
    })),
    perProvider,
  );
  t.same(
    perProvider.map((p) => p.provider),
    ['mpesa', 'stripe'],
  );
  for (const p of calls.providers) {
    t.equal(p.buckets.length, 60, `${p.provider}: 60 buckets of 10 s`);
    t.equal(
      p.buckets.reduce((sum: number, b: { calls: number }) => sum + b.calls, 0),
      p.calls,
      `${p.provider}: the buckets add up`,
    );
    t.equal(p.peakInAnySecond, 1, `${p.provider}: the fixture's calls are seconds apart`);
    t.equal(p.limit, 2, `${p.provider}: the gate's limit (no limit of its own is configured)`);
  }
  // The bucket of one known call: the reconciling order's 429, 90 s ago.
  const [call] = await service.database.rows<{ started_at: Date }>(
    `select started_at from provider_attempts where order_id = $1 and http_status = 429`,
    [fixture.order.reconciling],
  );
  const index = Math.floor((call!.started_at.getTime() - Date.parse(calls.from)) / 10_000);
  const stripe = calls.providers.find((p: { provider: string }) => p.provider === 'stripe');
  t.ok(stripe.buckets[index].rateLimited >= 1, 'the 429 is in its bucket');
  t.equal(calls.total.peakInAnySecond, 1);

  const wide = await operator.api.get('/operator/overview?rateMinutes=30');
  t.equal(wide.body.providerCalls.bucketSeconds, 60, 'beyond 10 minutes: 1-minute buckets');
  t.equal(wide.body.providerCalls.providers[0].buckets.length, 30);
});

t.test('overview: outbox lag and subscriptions in trouble', async (t) => {
  const { body } = await operator.api.get('/operator/overview');
  const hooks = body.outbox.webhooks;
  t.equal(hooks.unrelayed, 1);
  t.ok(hooks.oldestUnrelayedSeconds >= 11 && hooks.oldestUnrelayedSeconds < 60, 'the unrelayed event is 12 s old');
  t.equal(hooks.deliveriesPending, 1);
  t.equal(hooks.deliveriesDue, 1);
  t.ok(hooks.oldestDueSeconds >= 29, 'due for 30 s');
  t.ok(hooks.oldestPendingSeconds >= 34);

  t.equal(body.subscriptions.total, 2, 'the failing and the disabled one; not the healthy one');
  const [disabled, failing] = body.subscriptions.data;
  t.match(disabled, {
    id: fixture.subscription.disabled,
    merchant: { id: fixture.kenya.id },
    enabled: false,
    disabledReason: 'the endpoint answered 410 Gone',
    failingDeliveries: 0,
    lastStatusCode: null,
  });
  t.match(failing, {
    id: fixture.subscription.failing,
    merchant: { id: fixture.acme.id, name: /^Acme <b id="injected">&<\/b>/ },
    url: 'http://127.0.0.1:9/failing',
    enabled: true,
    failingDeliveries: 1,
    lastStatusCode: 500,
    lastError: 'HTTP 500 <i>oops</i>',
  });
  t.notOk('secret' in failing, 'never a signing secret');
});

t.test('story: the order, history, calls, reviews, callbacks, events with deliveries and attempts', async (t) => {
  const { status, body } = await operator.api.get(`/operator/payment-orders/${fixture.order.completed}`);
  t.equal(status, 200);
  t.equal(body.object, 'payment_order_story');
  t.match(body.order, {
    id: fixture.order.completed,
    status: 'COMPLETED',
    amount: 4200,
    providerReference: 'pi_fixture_1',
    merchant: { id: fixture.acme.id },
  });
  const transitions = await service.database.count('payment_order_transitions', 'order_id = $1', [
    fixture.order.completed,
  ]);
  t.equal(body.history.length, transitions);
  t.same(
    body.history.map((h: { to: string }) => h.to),
    ['PENDING', 'PROCESSING', 'COMPLETED'],
  );
  t.match(body.attempts, [{ number: 1, kind: 'charge', outcome: 'succeeded', httpStatus: 200, gateGrants: 1 }]);
  t.equal(body.attemptsTotal, 1);
  t.equal(body.events.length, 1);
  const [event] = body.events;
  t.match(event, { id: fixture.event.completed, type: 'payment_order.completed', relayedAt: String });
  t.same(event.kafka, { publishedAt: null, deadAt: null, error: null });
  const deliveries = Object.fromEntries(event.deliveries.map((d: { id: string }) => [d.id, d]));
  t.match(deliveries[fixture.delivery.failing], {
    subscriptionId: fixture.subscription.failing,
    url: 'http://127.0.0.1:9/failing',
    status: 'pending',
    attemptCount: 2,
    lastStatusCode: 500,
    attempts: [
      { number: 1, statusCode: 500 },
      { number: 2, statusCode: 500, error: 'HTTP 500 <i>oops</i>' },
    ],
  });
  t.match(deliveries[fixture.delivery.dead], { status: 'dead', attempts: [{ number: 1, statusCode: 503 }] });

  const review = await operator.api.get(`/operator/payment-orders/${fixture.order.underReview}`);
  t.match(review.body.reviews, [{ reason: 'push_unconfirmed', resolvedAt: null }]);
  t.match(review.body.callbacks, [{ externalId: 'ws_CO_unmatched', disposition: 'unmatched', amount: 10000 }]);
  t.notOk('phone' in review.body.callbacks[0], 'callbacks leave the payer’s phone out');
  t.equal(review.body.attemptsTotal, 3);
  t.same(review.body.events, []);
  t.notOk(/callback_token|callbackToken/.test(review.text), 'never the callback token');

  const other = await operator.api.get(`/operator/payment-orders/${fixture.order.pendingFresh}`);
  t.equal(other.status, 200, 'any merchant’s order');
});

t.test('story: unknown and malformed ids are 404 problems', async (t) => {
  for (const id of ['po_00000000000000000000000000', 'nope', '%27%3Cscript%3E']) {
    const { status, body, headers } = await operator.api.get(`/operator/payment-orders/${id}`);
    t.equal(status, 404, id);
    t.match(headers.get('content-type'), /^application\/problem\+json/);
    t.equal(body.code, 'resource_missing');
  }
});

t.test('bad query parameters are 400 validation_failed', async (t) => {
  for (const query of ['limit=0', 'limit=101', 'rateMinutes=61', 'stuckMinutes=abc', 'limit=1&limit=2', 'bogus=1']) {
    const { status, body } = await operator.api.get(`/operator/overview?${query}`);
    t.equal(status, 400, query);
    t.equal(body.code, 'validation_failed', query);
    t.ok(body.errors.length >= 1, query);
  }
  const unknown = await operator.api.get('/operator/overview?bogus=1');
  t.match(unknown.body.errors, [{ path: 'bogus', code: 'unknown_field' }]);
});

t.test('the console: static files without a key, with a strict Content-Security-Policy', async (t) => {
  const anonymous = service.api();
  const page = await anonymous.get('/console');
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  const csp = page.headers.get('content-security-policy') ?? '';
  t.match(csp, /default-src 'none'/);
  t.match(csp, /script-src 'self'(;|$)/);
  t.match(csp, /style-src 'self'(;|$)/);
  t.match(csp, /connect-src 'self'(;|$)/);
  t.match(csp, /frame-ancestors 'none'/);
  t.match(csp, /require-trusted-types-for 'script'/);
  t.notMatch(csp, /unsafe-/);
  t.equal(page.headers.get('x-content-type-options'), 'nosniff');
  t.match(page.text, /<script type="module" src="\/console\/console\.js"><\/script>/);
  t.notMatch(page.text, /<script>|<style>| on[a-z]+=|style="/, 'nothing inline');

  const slash = await anonymous.get('/console/');
  t.equal(slash.status, 200, '/console/ too');
  t.equal(slash.text, page.text);

  const script = await anonymous.get('/console/console.js');
  t.equal(script.status, 200);
  t.match(script.headers.get('content-type'), /javascript/);
  t.equal(script.headers.get('content-security-policy'), csp);
  t.notMatch(
    script.text,
    /\.innerHTML\s*=|insertAdjacentHTML|outerHTML\s*=|document\.write|eval\(|new Function/,
    'no HTML sinks',
  );

  const style = await anonymous.get('/console/console.css');
  t.equal(style.status, 200);
  t.match(style.headers.get('content-type'), /^text\/css/);

  const missing = await anonymous.get('/console/nope.js');
  t.equal(missing.status, 404);
  t.equal(missing.body.code, 'route_not_found');
});

t.test('with the gate settings and Kafka: the limits and the Kafka backlog', async (t) => {
  // The router alone, on a real server over the service's database, given the settings the
  // service would pass from its configuration.
  const app = express();
  app.use(
    operatorConsoleRoutes({
      db: service.db,
      lookupOperator: (hash) => findOperatorByKeyHash(service.db, hash),
      settings: { gate: { callsPerSecond: 2, perProvider: { mpesa: 1 }, marginMs: 40 }, kafka: true },
    }),
  );
  app.use(notFound);
  app.use(errorHandler(pino({ level: 'silent' })));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  const client = new ApiClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, operator.key);

  const { status, body } = await client.get('/operator/overview');
  t.equal(status, 200);
  t.same(body.providerCalls.limits, { callsPerSecond: 2, perProvider: { mpesa: 1 }, windowMs: 1040 });
  const limits = Object.fromEntries(body.providerCalls.providers.map((p: any) => [p.provider, p.limit]));
  t.same(limits, { mpesa: 1, stripe: 2 }, 'a provider’s own limit, else the whole gate’s');
  const unpublished = await service.database.count(
    'outbox_events',
    'kafka_published_at is null and kafka_dead_at is null',
  );
  t.match(body.outbox.kafka, { unpublished, deadLettered: 0 });
  t.ok(body.outbox.kafka.oldestUnpublishedSeconds >= 11, 'the failed order’s event, 12 s old');
});
