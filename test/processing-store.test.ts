import t from 'tap';
import { createDb, createPool } from '../src/db/connection.ts';
import { ensureMerchant } from '../src/db/merchants.repository.ts';
import { insertOrder, insertTransition } from '../src/db/payment-orders.repository.ts';
import { createProcessingStore } from '../src/db/processing-store.ts';
import { newOrder } from '../src/domain/create-payment-order.ts';
import type { Decision } from '../src/domain/decide.ts';
import { testDatabase } from './helpers/database.ts';

/**
 * A step on an instance without the order's provider moves the order out of PENDING and applies
 * its decision in one transaction (apply's fromPending): a failure between the two, here a trigger
 * refusing the terminal event, must leave the order PENDING with its one transition, never a
 * PROCESSING order whose step never ran.
 */
const database = await testDatabase(t);
const pool = createPool(database.url, 2, 'test-processing-store');
const db = createDb(pool);
t.teardown(() => db.destroy());

const store = createProcessingStore({
  db,
  pool,
  enqueue: async () => {},
  gate: { global: 2, perProvider: {}, windowMs: 1100 },
});
const merchant = await ensureMerchant(db, 'processing-store');

async function pendingOrder() {
  const order = newOrder(
    merchant.id,
    'mpesa',
    { amount: 100, currency: 'KES', paymentMethod: { type: 'mpesa', phone: '254708374149' } },
    new Date(),
  );
  await db.transaction().execute(async (trx) => {
    await insertOrder(trx, order, `key-${order.id}`);
    await insertTransition(trx, order.id, null, 'PENDING', 'accepted');
  });
  return order;
}

const fail: Decision = {
  type: 'fail',
  failure: { code: 'provider_not_configured', message: 'No mpesa adapter on this instance.' },
  reason: 'provider not configured',
};

const statusOf = async (id: string) =>
  (await database.rows('select status from payment_orders where id = $1', [id]))[0]?.status;
const transitionsOf = async (id: string) =>
  (
    await database.rows(
      'select from_status, to_status from payment_order_transitions where order_id = $1 order by id',
      [id],
    )
  ).map((r) => `${r.from_status ?? '-'}→${r.to_status}`);

t.test('a failure writing the decision leaves the order PENDING, not PROCESSING', async (t) => {
  const order = await pendingOrder();
  await database.pool.query(`create or replace function test_fail() returns trigger language plpgsql as $$
    begin raise exception 'injected failure on %', tg_table_name; end $$`);
  await database.pool.query(
    'create trigger test_fail before insert on outbox_events for each row execute function test_fail()',
  );
  try {
    await t.rejects(store.apply(order, 0, fail, undefined, { fromPending: 'picked up' }), /injected failure/);
  } finally {
    await database.pool.query('drop trigger test_fail on outbox_events');
  }
  t.equal(await statusOf(order.id), 'PENDING');
  t.same(await transitionsOf(order.id), ['-→PENDING'], 'the move to PROCESSING rolled back with the decision');
  t.equal(await database.count('outbox_events', 'order_id = $1', [order.id]), 0);

  // The retried step goes through as one: PENDING → PROCESSING → FAILED with its event.
  await store.apply(order, 0, fail, undefined, { fromPending: 'picked up' });
  t.equal(await statusOf(order.id), 'FAILED');
  t.same(await transitionsOf(order.id), ['-→PENDING', 'PENDING→PROCESSING', 'PROCESSING→FAILED']);
  t.same(
    (await database.rows('select type from outbox_events where order_id = $1', [order.id])).map((r) => r.type),
    ['payment_order.failed'],
  );
});
