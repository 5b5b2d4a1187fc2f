import t from 'tap';
import { startTestService, validOrder } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

const service = await startTestService(t);
const { id: merchantId, api } = await service.merchant();
const jobsFor = (orderId: string) =>
  service.database.count('pgboss.job', "name = 'payment-orders.process' and data->>'orderId' = $1", [orderId]);

t.test('same key, same body: the first response again, with Idempotent-Replayed', async (t) => {
  const first = await api.createOrder(validOrder, 'replay-1');
  t.equal(first.status, 201);
  // The same request with keys in another order and the currency in another case.
  const again = await api.createOrder(
    { paymentMethod: validOrder.paymentMethod, currency: 'USD', amount: 1050, reference: null },
    'replay-1',
  );
  t.equal(again.status, 201);
  t.equal(again.headers.get('idempotent-replayed'), 'true');
  t.equal(again.headers.get('location'), first.headers.get('location'));
  t.equal(again.text, first.text, 'byte-for-byte the first body');
  t.equal(
    await service.database.count('payment_orders', 'merchant_id = $1 and idempotency_key = $2', [
      merchantId,
      'replay-1',
    ]),
    1,
  );
  t.equal(await jobsFor(first.body.id), 1);
});

t.test('a replay answers the first response even after the order has moved on', async (t) => {
  const first = await api.createOrder(validOrder, 'replay-after-change');
  await service.database.pool.query("update payment_orders set status = 'PROCESSING' where id = $1", [first.body.id]);
  const again = await api.createOrder(validOrder, 'replay-after-change');
  t.equal(again.status, 201);
  t.equal(again.body.status, 'PENDING', 'the saved response, as Stripe does');
});

t.test('same key, different body: 422 idempotency_key_reused, nothing written', async (t) => {
  await api.createOrder(validOrder, 'reused-1');
  const orders = await service.database.count('payment_orders');
  const res = await api.createOrder({ ...validOrder, amount: 1051 }, 'reused-1');
  t.equal(res.status, 422);
  t.match(res.headers.get('content-type'), /^application\/problem\+json/);
  t.match(res.body, { status: 422, code: 'idempotency_key_reused', type: '/problems/idempotency_key_reused' });
  const metadataOnly = await api.createOrder({ ...validOrder, metadata: { a: 'b' } }, 'reused-1');
  t.equal(metadataOnly.status, 422, 'any field counts');
  t.equal(await service.database.count('payment_orders'), orders);
});

t.test('no key: 400 idempotency_key_missing', async (t) => {
  const res = await api.createOrder(validOrder, null);
  t.equal(res.status, 400);
  t.equal(res.body.code, 'idempotency_key_missing');
});

t.test('keys are scoped per merchant', async (t) => {
  const other = await service.merchant();
  const mine = await api.createOrder(validOrder, 'shared-key');
  const theirs = await other.api.createOrder(validOrder, 'shared-key');
  t.equal(mine.status, 201);
  t.equal(theirs.status, 201);
  t.not(mine.body.id, theirs.body.id);
  t.equal(theirs.headers.get('idempotent-replayed'), null);
});

t.test('50 concurrent requests with one key: one order, one job, fifty 201s with that order', async (t) => {
  const key = `concurrent-${Date.now()}`;
  const responses = await Promise.all(Array.from({ length: 50 }, () => api.createOrder(validOrder, key)));
  t.same(
    responses.map((r) => r.status),
    Array(50).fill(201),
    'every request got 201 (no 409, no 500)',
  );
  const ids = new Set(responses.map((r) => r.body.id));
  t.equal(ids.size, 1, 'all of them name the same order');
  const [id] = ids;
  t.equal(
    responses.filter((r) => r.headers.get('idempotent-replayed') === 'true').length,
    49,
    'one created, 49 replayed',
  );
  t.equal(
    await service.database.count('payment_orders', 'merchant_id = $1 and idempotency_key = $2', [merchantId, key]),
    1,
  );
  t.equal(
    await service.database.count('idempotency_keys', 'merchant_id = $1 and idempotency_key = $2', [merchantId, key]),
    1,
  );
  t.equal(await service.database.count('payment_order_transitions', 'order_id = $1', [id]), 1);
  t.equal(await jobsFor(id as string), 1);
});

t.test('50 concurrent requests, one key, different bodies: one order, the rest 422', async (t) => {
  const key = `concurrent-mixed-${Date.now()}`;
  const responses = await Promise.all(
    Array.from({ length: 50 }, (_, i) => api.createOrder({ ...validOrder, amount: 2000 + (i % 2) }, key)),
  );
  const created = responses.filter((r) => r.status === 201);
  const reused = responses.filter((r) => r.status === 422);
  t.equal(created.length + reused.length, 50, 'only 201s and 422s');
  t.equal(new Set(created.map((r) => r.body.id)).size, 1);
  t.equal(
    await service.database.count('payment_orders', 'merchant_id = $1 and idempotency_key = $2', [merchantId, key]),
    1,
  );
});

t.test('keys live for the TTL, then a scheduled job sweeps them; the orders stay', async (t) => {
  const [schedule] = await service.database.rows(
    "select cron from pgboss.schedule where name = 'idempotency-keys.sweep'",
  );
  t.equal(schedule?.cron, '*/15 * * * *', 'the sweep is scheduled');

  const kept = await api.createOrder(validOrder, 'ttl-kept');
  const swept = await api.createOrder(validOrder, 'ttl-swept');
  const [row] = await service.database.rows(
    "select extract(epoch from expires_at - created_at) / 3600 as hours from idempotency_keys where idempotency_key = 'ttl-kept'",
  );
  t.equal(Number(row?.hours), 24, 'kept 24 hours by default');

  // Time passes for one key: its expiry moves into the past.
  await service.database.pool.query(
    "update idempotency_keys set expires_at = now() - interval '1 second' where idempotency_key = 'ttl-swept'",
  );
  await service.boss.send('idempotency-keys.sweep', null);
  await waitFor(
    'the sweep',
    async () => (await service.database.count('idempotency_keys', "idempotency_key = 'ttl-swept'")) === 0,
  );
  t.equal(await service.database.count('idempotency_keys', "idempotency_key = 'ttl-kept'"), 1, 'live keys stay');
  t.equal(await service.database.count('payment_orders', 'id = $1', [swept.body.id]), 1, 'the order stays');

  // After its TTL the key is free again: the same request makes a new order.
  const reusedKey = await api.createOrder(validOrder, 'ttl-swept');
  t.equal(reusedKey.status, 201);
  t.not(reusedKey.body.id, swept.body.id);
  t.equal(reusedKey.headers.get('idempotent-replayed'), null);
  const replayKept = await api.createOrder(validOrder, 'ttl-kept');
  t.equal(replayKept.body.id, kept.body.id);
});

t.test('an expired key not yet swept is treated as gone', async (t) => {
  const first = await api.createOrder(validOrder, 'expired-unswept');
  await service.database.pool.query(
    "update idempotency_keys set expires_at = now() - interval '1 second' where idempotency_key = 'expired-unswept'",
  );
  const res = await api.createOrder({ ...validOrder, amount: 777 }, 'expired-unswept');
  t.equal(res.status, 201, 'not 422: the old key no longer binds');
  t.not(res.body.id, first.body.id);
  t.equal(await service.database.count('payment_orders', 'id = $1', [first.body.id]), 1);
});

t.test('IDEMPOTENCY_KEY_TTL_HOURS sets the TTL', async (t) => {
  const longer = await startTestService(t, { IDEMPOTENCY_KEY_TTL_HOURS: '48' });
  const m = await longer.merchant();
  await m.api.createOrder(validOrder, 'ttl-48');
  const [row] = await longer.database.rows(
    "select extract(epoch from expires_at - created_at) / 3600 as hours from idempotency_keys where idempotency_key = 'ttl-48'",
  );
  t.equal(Number(row?.hours), 48);
});
