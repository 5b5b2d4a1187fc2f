import t from 'tap';
import { startTestService, validOrder } from './helpers/service.ts';

/**
 * Group commit of POST /payment-orders (db/create-order-store.ts): concurrent creates share a
 * transaction, and each request still gets its own answer and its own failure. One batch at a
 * time here, so that concurrent requests are sure to be written together.
 */
const service = await startTestService(t, { CREATE_BATCHES_IN_FLIGHT: '1', CREATE_BATCH_MAX: '50' });
const { id: merchantId, api } = await service.merchant();
const { pool } = service.database;

const transactionsOf = async (ids: readonly string[]) =>
  Number(
    (await pool.query('select count(distinct xmin::text)::int as n from payment_orders where id = any($1)', [ids]))
      .rows[0].n,
  );
const rowsOf = async (ids: readonly string[]) => ({
  orders: await service.database.count('payment_orders', 'id = any($1)', [ids]),
  transitions: await service.database.count(
    'payment_order_transitions',
    "order_id = any($1) and to_status = 'PENDING'",
    [ids],
  ),
  keys: await service.database.count('idempotency_keys', 'order_id = any($1) and response_status = 201', [ids]),
  jobs: await service.database.count('pgboss.job', "name = 'payment-orders.process' and data->>'orderId' = any($1)", [
    ids,
  ]),
});

t.test('concurrent creates share transactions, and every row of each is written', async (t) => {
  const answers = await Promise.all(
    Array.from({ length: 40 }, (_, i) => api.createOrder({ ...validOrder, reference: `batch-${i}` })),
  );
  t.same(
    answers.map((res) => res.status),
    Array(40).fill(201),
  );
  const ids = answers.map((res) => res.body.id as string);
  t.equal(new Set(ids).size, 40);
  t.same(await rowsOf(ids), { orders: 40, transitions: 40, keys: 40, jobs: 40 });
  const transactions = await transactionsOf(ids);
  t.ok(transactions < 40, `40 orders in ${transactions} transactions`);
  // Each answer is that order's, and is what its key replays.
  for (const [i, res] of answers.entries()) {
    t.equal(res.body.reference, `batch-${i}`);
    const saved = await pool.query('select response_body from idempotency_keys where order_id = $1', [res.body.id]);
    t.equal(saved.rows[0].response_body, res.text, `order ${i}: the saved answer is the one given`);
  }
});

t.test('one request that fails inside a batch fails alone; its key is not burnt', async (t) => {
  await pool.query(`create or replace function test_poison() returns trigger language plpgsql as $$
    begin if new.reference = 'poison' then raise exception 'injected failure'; end if; return new; end $$`);
  await pool.query(
    'create trigger test_poison before insert on payment_orders for each row execute function test_poison()',
  );
  let answers: Awaited<ReturnType<typeof api.createOrder>>[];
  try {
    answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        api.createOrder({ ...validOrder, reference: i === 17 ? 'poison' : `ok-${i}` }, `poison-test-${i}`),
      ),
    );
  } finally {
    await pool.query('drop trigger test_poison on payment_orders');
  }
  t.equal(answers[17]?.status, 500);
  t.equal(answers[17]?.body.code, 'internal_error');
  const ok = answers.filter((_, i) => i !== 17);
  t.same(
    ok.map((res) => res.status),
    Array(29).fill(201),
    'the other 29 are accepted',
  );
  const ids = ok.map((res) => res.body.id as string);
  t.same(await rowsOf(ids), { orders: 29, transitions: 29, keys: 29, jobs: 29 });
  t.equal(
    await service.database.count('idempotency_keys', "merchant_id = $1 and idempotency_key = 'poison-test-17'", [
      merchantId,
    ]),
    0,
  );
  const retry = await api.createOrder({ ...validOrder, reference: 'poison' }, 'poison-test-17');
  t.equal(retry.status, 201, 'the retry goes through');
  t.equal(retry.headers.get('idempotent-replayed'), null);
});

t.test('one key sent many times among other creates: one order for it, every answer that order', async (t) => {
  const key = `mixed-${Date.now()}`;
  const requests = Array.from({ length: 40 }, (_, i) =>
    i % 4 === 0 ? api.createOrder(validOrder, key) : api.createOrder({ ...validOrder, reference: `other-${i}` }),
  );
  const answers = await Promise.all(requests);
  t.same(
    answers.map((res) => res.status),
    Array(40).fill(201),
  );
  const same = answers.filter((_, i) => i % 4 === 0);
  t.equal(new Set(same.map((res) => res.text)).size, 1, 'byte for byte one answer');
  t.equal(same.filter((res) => res.headers.get('idempotent-replayed') === null).length, 1, 'one first, nine replays');
  t.equal(
    await service.database.count('payment_orders', 'merchant_id = $1 and idempotency_key = $2', [merchantId, key]),
    1,
  );
  const others = answers.filter((_, i) => i % 4 !== 0).map((res) => res.body.id as string);
  t.same(await rowsOf([...others, same[0]?.body.id]), { orders: 31, transitions: 31, keys: 31, jobs: 31 });
});

t.test('a key reused with another body inside a burst: 422 for it, the rest accepted', async (t) => {
  const key = `reused-in-burst-${Date.now()}`;
  const first = await api.createOrder(validOrder, key);
  t.equal(first.status, 201);
  const answers = await Promise.all([
    api.createOrder({ ...validOrder, amount: 999 }, key),
    ...Array.from({ length: 10 }, () => api.createOrder(validOrder)),
  ]);
  t.equal(answers[0]?.status, 422);
  t.equal(answers[0]?.body.code, 'idempotency_key_reused');
  t.same(
    answers.slice(1).map((res) => res.status),
    Array(10).fill(201),
  );
});
