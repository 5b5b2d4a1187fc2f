import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { createDb } from '../src/db/connection.ts';
import { startWhenAllowed, tryStart } from '../src/db/rate-gate.ts';
import { testDatabase } from './helpers/database.ts';

/** Each test gets a database of its own, so its gate starts empty. */
async function fresh(t: Test) {
  const database = await testDatabase(t);
  return { database, db: createDb(database.pool) };
}
const limits = { global: 2, perProvider: { mpesa: 1 }, windowMs: 1000 };

t.test('calls are spread evenly: one per window / limit, at most `limit` per window', async (t) => {
  const { db } = await fresh(t);
  const a = await tryStart(db, 'stripe', limits);
  const b = await tryStart(db, 'stripe', limits);
  t.ok(a.started, 'the first starts at once');
  t.notOk(b.started, 'the second must wait');
  if (!a.started || b.started) return;
  t.equal(b.retryAt.getTime(), a.at.getTime() + 500, 'until the first is window / limit old');
  await sleep(Math.max(0, b.retryAt.getTime() - b.dbNow.getTime() + 1));
  const b2 = await tryStart(db, 'stripe', limits);
  t.ok(b2.started, 'then it starts');
  const c = await tryStart(db, 'stripe', limits);
  t.notOk(c.started, 'the third must wait');
  if (b2.started && !c.started) {
    t.ok(c.retryAt.getTime() >= a.at.getTime() + 1000, 'at least until the first is a window old');
    t.equal(c.retryAt.getTime(), b2.at.getTime() + 500, 'and the second window / limit old');
  }
});

t.test('a per-provider limit under the global one', async (t) => {
  const { db } = await fresh(t);
  const first = await tryStart(db, 'mpesa', limits);
  const second = await tryStart(db, 'mpesa', limits);
  const other = await tryStart(db, 'stripe', limits);
  t.ok(first.started, 'mpesa: one');
  t.notOk(second.started, 'mpesa: not two in a second');
  if (!first.started || second.started || other.started) {
    t.fail('stripe must wait for the global spacing');
    return;
  }
  t.equal(second.retryAt.getTime(), first.at.getTime() + 1000, 'mpesa waits for its own window (limit 1)');
  t.equal(
    other.retryAt.getTime(),
    first.at.getTime() + 500,
    "stripe waits only for the global spacing, not mpesa's window",
  );
  await sleep(Math.max(0, other.retryAt.getTime() - other.dbNow.getTime() + 1));
  t.ok((await tryStart(db, 'stripe', limits)).started, 'stripe then starts, while mpesa still may not');
  t.notOk((await tryStart(db, 'mpesa', limits)).started);
});

t.test('20 concurrent callers: all served, never more than 2 in any second, each start recorded', async (t) => {
  const { database, db } = await fresh(t);
  await database.pool.query("insert into merchants (id, name) values ('mch_gate', 'gate')");
  const orders = Array.from({ length: 20 }, (_, i) => `po_gate_${i}`);
  for (const id of orders) {
    await database.pool.query(
      "insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key) values ($1, 'mch_gate', 'PROCESSING', 100, 'USD', 'stripe', $1)",
      [id],
    );
  }
  const tickets = await Promise.all(
    orders.map((orderId) =>
      startWhenAllowed(db, limits, { orderId, provider: 'stripe', kind: 'charge', idempotencyKey: null }, sleep),
    ),
  );
  const ms = tickets.map((ticket) => ticket.startedAt.getTime()).sort((a, b) => a - b);
  for (let i = 2; i < ms.length; i++) {
    t.ok((ms[i] as number) - (ms[i - 2] as number) >= 1000, `start ${i} is a full second after start ${i - 2}`);
  }
  for (let i = 1; i < ms.length; i++) {
    t.ok((ms[i] as number) - (ms[i - 1] as number) >= 500, `start ${i} is half a second after start ${i - 1}`);
  }
  const rate = (ms.length - 1) / (((ms.at(-1) as number) - (ms[0] as number)) / 1000);
  t.ok(rate >= 1.9, `rate ${rate.toFixed(3)}/s`);
  const recorded = await database.rows(
    "select started_at from provider_attempts where order_id like 'po_gate_%' order by started_at",
  );
  t.same(
    recorded.map((r) => (r.started_at as Date).getTime()),
    ms,
    'each grant is its attempt row, at the granted time',
  );
});
