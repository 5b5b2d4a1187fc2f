// Rows for the webhook operations tests (test/webhook-operations*.test.ts), written straight into
// the tables with the timestamps a case needs ("5 days 1 minute" ago), instead of waiting for them.
// Times are intervals before the database's now(), the clock the code under test reads.
import type pg from 'pg';
import { createDb, type Db } from '../src/db/connection.ts';
import { noteAttemptOutcomes } from '../src/db/webhook-subscriptions.repository.ts';
import { newId } from '../src/lib/ids.ts';

type Pool = pg.Pool;

// Kysely over the test's own pool, for the repository functions the rows go through. Never
// destroyed here: that would end the pool, which belongs to the test.
const dbs = new WeakMap<Pool, Db>();
export function dbOf(pool: Pool): Db {
  const known = dbs.get(pool);
  if (known) return known;
  const db = createDb(pool);
  dbs.set(pool, db);
  return db;
}

/**
 * What the sender does after closing attempt rows: the endpoints' failing streaks are updated from
 * them (noteAttemptOutcomes, in recordAttemptOutcomes), in one transaction, in this order.
 */
export async function noteAttempts(pool: Pool, attemptIds: readonly string[]): Promise<void> {
  await dbOf(pool)
    .transaction()
    .execute((trx) => noteAttemptOutcomes(trx, attemptIds));
}

export type SeededEvent = Readonly<{ eventId: string; orderId: string }>;

/**
 * A COMPLETED (or FAILED) order and its outbox event, created `ago` before now. Marked relayed
 * unless `relayed: false`: the running relay must not make deliveries of its own for it.
 */
export async function seedOrderEvent(
  pool: Pool,
  merchantId: string,
  options: { ago?: string; type?: 'payment_order.completed' | 'payment_order.failed'; relayed?: boolean } = {},
): Promise<SeededEvent> {
  const orderId = newId('po');
  const eventId = newId('evt');
  const type = options.type ?? 'payment_order.completed';
  const status = type === 'payment_order.completed' ? 'COMPLETED' : 'FAILED';
  await pool.query(
    `insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key)
     values ($1, $2, $3, 1200, 'USD', 'stripe', $1)`,
    [orderId, merchantId, status],
  );
  await pool.query(
    `insert into outbox_events (id, merchant_id, order_id, type, payload, created_at, relayed_at)
     values ($1, $2, $3, $4, $5, now() - $6::interval, case when $7 then now() end)`,
    [
      eventId,
      merchantId,
      orderId,
      type,
      JSON.stringify({ id: orderId, object: 'payment_order', status, amount: 1200, currency: 'USD' }),
      options.ago ?? '0 seconds',
      options.relayed ?? true,
    ],
  );
  return { eventId, orderId };
}

/** A delivery of `eventId` to the subscription, in `status`, created `ago` before now. */
export async function seedDelivery(
  pool: Pool,
  eventId: string,
  subscriptionId: string,
  options: { status?: string; attemptCount?: number; ago?: string } = {},
): Promise<string> {
  const id = newId('whd');
  const status = options.status ?? 'dead';
  await pool.query(
    `insert into webhook_deliveries (id, event_id, event_type, subscription_id, status, attempt_count, delivered_at, created_at, updated_at)
     select $1, $2, e.type, $3, $4, $5, case when $4 = 'delivered' then now() end, now() - $6::interval, now()
       from outbox_events e where e.id = $2`,
    [id, eventId, subscriptionId, status, options.attemptCount ?? 0, options.ago ?? '0 seconds'],
  );
  return id;
}

/**
 * An attempt of the delivery that started `ago` before now and answered `statusCode` (null with an
 * error: a timeout or a refused connection); `ended: false` leaves it in flight. A finished one
 * goes through the streak bookkeeping the sender's does, as if recorded now, unless `note: false`
 * (a test that records it later, in an order of its choosing, with noteAttempts). Returns its id.
 */
export async function seedAttempt(
  pool: Pool,
  deliveryId: string,
  options: { ago: string; statusCode: number | null; ended?: boolean; note?: boolean },
): Promise<string> {
  const ended = options.ended ?? true;
  const { rows } = await pool.query<{ id: string }>(
    `insert into webhook_delivery_attempts (delivery_id, attempt_number, started_at, ended_at, status_code, latency_ms, error)
     select $1, coalesce(max(attempt_number), 0) + 1, now() - $2::interval,
            case when $4::boolean then now() - $2::interval + interval '1 second' end, $3::int, 1000,
            case when $3::int between 200 and 299 then null when $3::int is null then 'ECONNREFUSED' else 'HTTP ' || $3::int end
       from webhook_delivery_attempts where delivery_id = $1
     returning id`,
    [deliveryId, options.ago, options.statusCode, ended],
  );
  const id = String(rows[0]?.id);
  if (ended && options.note !== false) await noteAttempts(pool, [id]);
  return id;
}

/**
 * A subscription's history of attempts, one delivery (of its own event) per attempt: each entry is
 * [how long ago, status code or null, ended]. Recorded in the order given unless `note: false`;
 * returns the attempt ids, in that order.
 */
export async function seedHistory(
  pool: Pool,
  merchantId: string,
  subscriptionId: string,
  attempts: ReadonlyArray<readonly [ago: string, statusCode: number | null, ended?: boolean]>,
  options: { note?: boolean } = {},
): Promise<string[]> {
  const ids: string[] = [];
  for (const [ago, statusCode, ended] of attempts) {
    const { eventId } = await seedOrderEvent(pool, merchantId, { ago });
    const deliveryId = await seedDelivery(pool, eventId, subscriptionId, {
      status: statusCode !== null && statusCode < 300 ? 'delivered' : 'dead',
      attemptCount: 1,
      ago,
    });
    ids.push(
      await seedAttempt(pool, deliveryId, {
        ago,
        statusCode,
        ...(ended === undefined ? {} : { ended }),
        ...(options.note === undefined ? {} : { note: options.note }),
      }),
    );
  }
  return ids;
}
