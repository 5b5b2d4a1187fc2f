// The outbox: one row per event, written in the transaction of the change it reports, read by the
// webhook relay (relayed_at), the Kafka emitter (kafka_published_at, kafka_dead_at) and the
// merchant's event log. Each consumer's progress is its own mark on the row.
import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { OutboxEvent } from '../domain/event-body.ts';
import type { EventType, OrderEventType, SubscriptionEventType } from '../domain/event-types.ts';
import { orderJson } from '../domain/order-json.ts';
import type { PaymentOrder } from '../domain/payment-order.ts';
import { newId } from '../lib/ids.ts';
import type { Db, Tx } from './connection.ts';
import type { OutboxEventsTable } from './schema.ts';

type Executor = Db | Tx;

/** The outbox trigger's NOTIFY channel (sql/003_events.sql): an event committed. */
export const OUTBOX_CHANNEL = 'outbox_events';

/**
 * An order's event, in the transaction of the change it reports (the terminal transition, a review
 * opened), carrying the order's public JSON as it is after that change.
 *
 * insert into outbox_events (id, merchant_id, order_id, type, payload) values (...)
 */
export async function insertOrderEvent(trx: Tx, order: PaymentOrder, type: OrderEventType): Promise<void> {
  await insertOrderEvents(trx, [order], type);
}

/** One event of `type` for each order, in one statement; returns the new event ids in order. */
export async function insertOrderEvents(
  trx: Tx,
  orders: readonly PaymentOrder[],
  type: OrderEventType,
): Promise<string[]> {
  if (orders.length === 0) return [];
  const ids = orders.map(() => newId('evt'));
  await trx
    .insertInto('outbox_events')
    .values(
      orders.map((order, i) => ({
        id: ids[i] as string,
        merchant_id: order.merchantId,
        order_id: order.id,
        type,
        payload: JSON.stringify(orderJson(order)),
      })),
    )
    .execute();
  return ids;
}

/** A subscription's state, as an event carries it: its public JSON, never its secret. */
export type SubscriptionEventSubject = Readonly<{ id: string; merchantId: string; json: Record<string, unknown> }>;

/**
 * One event of `type` about each subscription (webhook_subscription.disabled), in the transaction
 * of the change it reports; returns the new event ids in order. The relay sends it to the
 * merchant's other endpoints that want it, never to the subject itself (insertDeliveriesForEvents).
 *
 * insert into outbox_events (id, merchant_id, subscription_id, type, payload) values (...), ...
 */
export async function insertSubscriptionEvents(
  trx: Tx,
  subjects: readonly SubscriptionEventSubject[],
  type: SubscriptionEventType,
): Promise<string[]> {
  if (subjects.length === 0) return [];
  const ids = subjects.map(() => newId('evt'));
  await trx
    .insertInto('outbox_events')
    .values(
      subjects.map((subject, i) => ({
        id: ids[i] as string,
        merchant_id: subject.merchantId,
        subscription_id: subject.id,
        type,
        payload: JSON.stringify(subject.json),
      })),
    )
    .execute();
  return ids;
}

export function toOutboxEvent(row: Selectable<OutboxEventsTable>): OutboxEvent {
  return {
    id: row.id,
    // The check constraint admits only EVENT_TYPES (test/migrations.test.ts compares them).
    type: row.type as EventType,
    orderId: row.order_id,
    subscriptionId: row.subscription_id,
    merchantId: row.merchant_id,
    createdAt: row.created_at,
    payload: row.payload,
  };
}

/** select * from outbox_events where id = $1 */
export async function findEvent(db: Executor, id: string): Promise<OutboxEvent | null> {
  const row = await db.selectFrom('outbox_events').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toOutboxEvent(row) : null;
}

/**
 * The merchant's event log, newest first in commit order, keyset-paginated (the cursor is an event
 * id; the page continues below that event's place). Only events whose transaction is older than
 * every transaction still running are listed (sql/006_events_commit_order.sql), so an event that
 * commits late can never appear below one a poller has already seen:
 *
 *   select * from outbox_events
 *    where merchant_id = $1 and tx < pg_snapshot_xmin(pg_current_snapshot())
 *      [and type = $2] [and (tx, id) < (select tx, id from outbox_events where id = $3 and merchant_id = $1)]
 *    order by tx desc, id desc limit $4 + 1
 */
export async function listEvents(
  db: Executor,
  query: { merchantId: string; type?: string | undefined; startingAfter?: string | undefined; limit: number },
): Promise<{ events: OutboxEvent[]; hasMore: boolean }> {
  let select = db
    .selectFrom('outbox_events')
    .selectAll()
    .where('merchant_id', '=', query.merchantId)
    .where(sql<boolean>`tx < pg_snapshot_xmin(pg_current_snapshot())`);
  if (query.type) select = select.where('type', '=', query.type);
  if (query.startingAfter) {
    const cursor = query.startingAfter;
    select = select.where(
      sql<boolean>`(tx, id) < (select c.tx, c.id from outbox_events c where c.id = ${cursor} and c.merchant_id = ${query.merchantId})`,
    );
  }
  const rows = await select
    .orderBy('tx', 'desc')
    .orderBy('id', 'desc')
    .limit(query.limit + 1)
    .execute();
  return { events: rows.slice(0, query.limit).map(toOutboxEvent), hasMore: rows.length > query.limit };
}

/**
 * The oldest events not yet published to Kafka, if this transaction is the one publisher:
 *
 *   select pg_try_advisory_xact_lock(hashtextextended('outbox:kafka-emitter', 0));
 *   select id, type, order_id, subscription_id, merchant_id, created_at, payload from outbox_events
 *    where kafka_published_at is null order by created_at, id limit $1
 *
 * A mark, not a cursor: a row whose transaction committed after a later row's is still unmarked,
 * so it is taken whenever it commits (see sql/003_events.sql). The advisory lock (held until this
 * transaction ends) keeps a second instance, or a step that overlaps a slow one, from sending the
 * same rows again; it returns [] when another holds it. No row locks: the relay must never wait for
 * a broker. Served by the partial index outbox_events_unpublished_idx.
 */
export async function takeUnpublishedEvents(trx: Tx, limit: number): Promise<OutboxEvent[]> {
  const { rows: lock } = await sql<{ locked: boolean }>`
    select pg_try_advisory_xact_lock(hashtextextended('outbox:kafka-emitter', 0)) as locked`.execute(trx);
  if (!lock[0]?.locked) return [];
  const { rows } = await sql<Selectable<OutboxEventsTable>>`
    select id, type, order_id, subscription_id, merchant_id, created_at, payload
      from outbox_events
     where kafka_published_at is null and kafka_dead_at is null
     order by created_at, id
     limit ${limit}`.execute(trx);
  return rows.map(toOutboxEvent);
}

/** update outbox_events set kafka_published_at = now() where id = any($1) */
export async function markPublished(trx: Tx, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`update outbox_events set kafka_published_at = now() where id = any(${ids}::text[])`.execute(trx);
}

/** update outbox_events set kafka_dead_at = now(), kafka_error = $2 where id = $1 (each) */
export async function markDeadLettered(
  trx: Tx,
  dead: readonly Readonly<{ event: OutboxEvent; error: string }>[],
): Promise<void> {
  if (dead.length === 0) return;
  await sql`
    update outbox_events e set kafka_dead_at = now(), kafka_error = d.error
      from unnest(${dead.map((entry) => entry.event.id)}::text[], ${dead.map((entry) => entry.error)}::text[]) as d(id, error)
     where e.id = d.id`.execute(trx);
}

/**
 * The oldest events not yet relayed, locked for this transaction:
 *   select id from outbox_events where relayed_at is null order by created_at, id limit $1 for update skip locked
 * skip locked: several instances relay at once, each takes rows the others are not on.
 */
export async function takeUnrelayedEventIds(trx: Tx, limit: number): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    select id from outbox_events where relayed_at is null
    order by created_at, id limit ${limit}
    for update skip locked`.execute(trx);
  return rows.map((row) => row.id);
}

/** update outbox_events set relayed_at = now() where id in (...) */
export async function markRelayed(trx: Tx, ids: readonly string[]): Promise<void> {
  await trx.updateTable('outbox_events').set({ relayed_at: sql<Date>`now()` }).where('id', 'in', ids).execute();
}
