import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { createDb } from '../src/db/connection.ts';
import { restartWhenAllowed, sendTiming, startWhenAllowed, tryStart } from '../src/db/rate-gate.ts';
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

t.test('a start may be granted a little ahead, at the exact moment its place frees up', async (t) => {
  const { db } = await fresh(t);
  const a = await tryStart(db, 'stripe', limits);
  if (!a.started) return t.fail('the first starts at once');
  const early = await tryStart(db, 'stripe', limits, 100);
  if (early.started) return t.fail('not 500 ms ahead');
  t.equal(early.retryAt.getTime(), a.at.getTime() + 500, 'refused, with the moment its place frees up');
  // 50 ms before that moment, asking 100 ms ahead: granted, for that moment (not for now).
  await sleep(Math.max(0, early.retryAt.getTime() - early.dbNow.getTime() - 50));
  const ahead = await tryStart(db, 'stripe', limits, 100);
  if (!ahead.started) return t.fail('granted ahead');
  t.equal(ahead.at.getTime(), a.at.getTime() + 500, 'granted at the moment its place frees up');
});

/** An order for startWhenAllowed to record attempts against. */
async function orderRow(database: Awaited<ReturnType<typeof fresh>>['database'], id: string): Promise<string> {
  await database.pool.query("insert into merchants (id, name) values ('mch_gate', 'gate') on conflict (id) do nothing");
  await database.pool.query(
    "insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key) values ($1, 'mch_gate', 'PROCESSING', 100, 'USD', 'stripe', $1)",
    [id],
  );
  return id;
}

t.test('a grant given back is granted again: same attempt row, its start moves, no place lost', async (t) => {
  const { database, db } = await fresh(t);
  const first = await startWhenAllowed(
    db,
    limits,
    { orderId: await orderRow(database, 'po_back_1'), provider: 'stripe', kind: 'charge', idempotencyKey: 'k1' },
    sleep,
  );
  const again = await restartWhenAllowed(db, limits, { attemptId: first.attemptId, provider: 'stripe' }, sleep);
  t.equal(again.attemptId, first.attemptId, 'the same attempt');
  t.equal(again.attemptNumber, first.attemptNumber);
  const movedMs = again.startedAt.getTime() - first.startedAt.getTime();
  t.ok(movedMs >= 0 && movedMs < 500, `granted again at once, not a spacing later (${movedMs} ms)`);
  const [row] = await database.rows('select started_at, gate_grants, attempt_number from provider_attempts');
  t.equal((row?.started_at as Date).getTime(), again.startedAt.getTime(), 'the row starts at the grant it used');
  t.equal(row?.gate_grants, 2, 'two grants taken');
  t.equal(await database.count('provider_attempts'), 1, 'no attempt row for the grant given back');

  // Given back again, and again: each new start is further ahead (0, then 10 ms), to give a call
  // that keeps missing its window the time to be ready.
  const third = await restartWhenAllowed(db, limits, { attemptId: first.attemptId, provider: 'stripe' }, sleep);
  t.ok(
    third.startedAt.getTime() - again.startedAt.getTime() >= 10,
    `the third grant at least 10 ms ahead (${third.startedAt.getTime() - again.startedAt.getTime()} ms after the second)`,
  );
  t.equal((await database.rows('select gate_grants from provider_attempts'))[0]?.gate_grants, 3);

  const next = await startWhenAllowed(
    db,
    limits,
    { orderId: await orderRow(database, 'po_back_2'), provider: 'stripe', kind: 'charge', idempotencyKey: 'k2' },
    sleep,
  );
  t.equal(
    next.startedAt.getTime() - third.startedAt.getTime(),
    500,
    'the next call is spaced from the grant used, as if the others had never been',
  );
  const [gate] = await database.rows("select starts from provider_rate_gate where scope = 'global'");
  t.same(
    (gate?.starts as Date[]).map((d) => d.getTime()),
    [third.startedAt.getTime(), next.startedAt.getTime()],
    'the gate keeps only the starts of calls that may have gone out',
  );
});

t.test('each grant comes with its send window: a lead after the grant, a quarter of the margin wide', async (t) => {
  const { database, db } = await fresh(t);
  const withMargin = { ...limits, windowMs: 1040 };
  const timing = sendTiming(withMargin);
  t.same(timing, { leadMs: 10, windowMs: 10, aheadMs: 40 });
  for (const id of ['po_window_1', 'po_window_2']) {
    const asked = performance.now();
    const ticket = await startWhenAllowed(
      db,
      withMargin,
      { orderId: await orderRow(database, id), provider: 'stripe', kind: 'charge', idempotencyKey: null },
      sleep,
    );
    const answered = performance.now();
    t.ok(ticket.sendAfter >= asked + timing.leadMs, 'not before the lead has passed since the grant');
    // The second is granted ahead, for a moment after its answer came: by our clock (the database is
    // on this machine: its clock and ours agree to a millisecond, truncation included), that moment.
    const grantedLocal = Math.max(answered, ticket.startedAt.getTime() + 2 - performance.timeOrigin);
    t.ok(ticket.sendBy <= grantedLocal + timing.leadMs + timing.windowMs, 'gone within the window after the grant');
    t.ok(
      ticket.sendBy > ticket.sendAfter && ticket.sendBy - ticket.sendAfter <= timing.windowMs,
      `a window of at most ${timing.windowMs} ms (${(ticket.sendBy - ticket.sendAfter).toFixed(2)} ms)`,
    );
  }
});
