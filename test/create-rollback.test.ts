import t from 'tap';
import { startTestService, validOrder } from './helpers/service.ts';

/**
 * The create step is one transaction: idempotency key, order, first transition and the pg-boss job.
 * A trigger makes the last write (the job) fail; nothing of the other three may survive.
 */
const service = await startTestService(t);
const { api } = await service.merchant();
const { pool } = service.database;

const counts = async () => ({
  orders: await service.database.count('payment_orders'),
  transitions: await service.database.count('payment_order_transitions'),
  keys: await service.database.count('idempotency_keys'),
  jobs: await service.database.count('pgboss.job', "name = 'payment-orders.process'"),
});

async function failing(table: string, run: () => Promise<void>): Promise<void> {
  await pool.query(`create or replace function test_fail() returns trigger language plpgsql as $$
    begin raise exception 'injected failure on %', tg_table_name; end $$`);
  await pool.query(`create trigger test_fail before insert on ${table} for each row execute function test_fail()`);
  try {
    await run();
  } finally {
    await pool.query(`drop trigger test_fail on ${table}`);
  }
}

for (const table of ['pgboss.job', 'payment_order_transitions', 'payment_orders']) {
  t.test(`a failure inserting into ${table} rolls back the whole create`, async (t) => {
    const before = await counts();
    const key = `rollback-${table}`;
    await failing(table, async () => {
      const res = await api.createOrder(validOrder, key);
      t.equal(res.status, 500);
      t.match(res.headers.get('content-type'), /^application\/problem\+json/);
      t.match(res.body, { status: 500, code: 'internal_error' });
      t.notMatch(res.text, 'injected failure', 'no internals in the answer');
    });
    t.same(await counts(), before, 'no order, no transition, no key, no job');

    // The key was not burnt: the retry goes through, once.
    const retry = await api.createOrder(validOrder, key);
    t.equal(retry.status, 201);
    t.equal(retry.headers.get('idempotent-replayed'), null);
    t.same(await counts(), {
      orders: before.orders + 1,
      transitions: before.transitions + 1,
      keys: before.keys + 1,
      jobs: before.jobs + 1,
    });
  });
}

t.test('the failure is logged with the request id', async (t) => {
  const line = service.logs.find((l) => l.includes('injected failure'));
  t.ok(line, 'the cause is in the log');
  t.match(JSON.parse(line as string), { level: 50, requestId: /.+/ });
});
