import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { OutboxEvent } from '../domain/event-body.ts';
import { newId } from '../lib/ids.ts';
import type { Db, Tx } from './connection.ts';
import type { OutboxEventsTable, WebhookDeliveriesTable, WebhookSubscriptionsTable } from './schema.ts';

type Executor = Db | Tx;

export type Subscription = Readonly<{
  id: string;
  merchantId: string;
  url: string;
  events: readonly string[];
  enabled: boolean;
  disabledReason: string | null;
  /** The secrets that sign now: the current one, and during a rotation the previous one. */
  signingSecrets: readonly string[];
  createdAt: Date;
  updatedAt: Date;
}>;

export type Delivery = Readonly<{
  id: string;
  eventId: string;
  subscriptionId: string;
  status: 'pending' | 'delivered' | 'dead' | 'cancelled';
  attemptCount: number;
  nextAttemptAt: Date | null;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: Date | null;
  createdAt: Date;
}>;

export function toSubscription(row: Selectable<WebhookSubscriptionsTable>, now = new Date()): Subscription {
  const previousLive =
    row.previous_secret !== null && row.previous_secret_expires_at !== null && row.previous_secret_expires_at > now;
  return {
    id: row.id,
    merchantId: row.merchant_id,
    url: row.url,
    events: row.events,
    enabled: row.enabled,
    disabledReason: row.disabled_reason,
    signingSecrets: previousLive ? [row.secret, row.previous_secret as string] : [row.secret],
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toOutboxEvent(row: Selectable<OutboxEventsTable>): OutboxEvent {
  return {
    id: row.id,
    type: row.type,
    orderId: row.order_id,
    merchantId: row.merchant_id,
    createdAt: row.created_at,
    payload: row.payload,
  };
}

function toDelivery(row: Selectable<WebhookDeliveriesTable>): Delivery {
  return {
    id: row.id,
    eventId: row.event_id,
    subscriptionId: row.subscription_id,
    status: row.status as Delivery['status'],
    attemptCount: row.attempt_count,
    nextAttemptAt: row.next_attempt_at,
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    deliveredAt: row.delivered_at,
    createdAt: row.created_at,
  };
}

export async function insertSubscription(
  db: Executor,
  merchantId: string,
  url: string,
  events: readonly string[],
  secret: string,
): Promise<Subscription> {
  const row = await db
    .insertInto('webhook_subscriptions')
    .values({ id: newId('whs'), merchant_id: merchantId, url, events: [...events], secret })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toSubscription(row);
}

export async function findSubscription(db: Executor, merchantId: string, id: string): Promise<Subscription | null> {
  const row = await db
    .selectFrom('webhook_subscriptions')
    .selectAll()
    .where('merchant_id', '=', merchantId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return row ? toSubscription(row) : null;
}

export async function listSubscriptions(db: Executor, merchantId: string): Promise<Subscription[]> {
  const rows = await db
    .selectFrom('webhook_subscriptions')
    .selectAll()
    .where('merchant_id', '=', merchantId)
    .where('deleted_at', 'is', null)
    .orderBy('id', 'desc')
    .execute();
  return rows.map((row) => toSubscription(row));
}

/** Soft delete: it never delivers again, its delivery history stays. */
export async function deleteSubscription(db: Executor, merchantId: string, id: string): Promise<boolean> {
  const result = await db
    .updateTable('webhook_subscriptions')
    .set({ deleted_at: sql<Date>`now()`, enabled: false, updated_at: sql<Date>`now()` })
    .where('merchant_id', '=', merchantId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** The new secret signs from now on; the current one keeps signing for `overlapMs`. */
export async function rotateSecret(
  db: Executor,
  merchantId: string,
  id: string,
  secret: string,
  overlapMs: number,
): Promise<Subscription | null> {
  const row = await db
    .updateTable('webhook_subscriptions')
    .set({
      previous_secret: sql<string>`secret`,
      previous_secret_expires_at: sql<Date>`now() + make_interval(secs => ${overlapMs / 1000})`,
      secret,
      updated_at: sql<Date>`now()`,
    })
    .where('merchant_id', '=', merchantId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return row ? toSubscription(row) : null;
}

/** The secret itself, for the one answer that shows it (create and rotate). */
export async function currentSecret(db: Executor, id: string): Promise<string> {
  const row = await db
    .selectFrom('webhook_subscriptions')
    .select('secret')
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return row.secret;
}

export async function disableSubscription(db: Executor, id: string, reason: string): Promise<void> {
  await db
    .updateTable('webhook_subscriptions')
    .set({ enabled: false, disabled_reason: reason, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .execute();
}

/** Enabled, not deleted subscriptions of a merchant that want this event type. */
export async function matchingSubscriptions(db: Executor, merchantId: string, type: string): Promise<Subscription[]> {
  const rows = await db
    .selectFrom('webhook_subscriptions')
    .selectAll()
    .where('merchant_id', '=', merchantId)
    .where('enabled', '=', true)
    .where('deleted_at', 'is', null)
    .where(sql<boolean>`${type} = any(events)`)
    .execute();
  return rows.map((row) => toSubscription(row));
}

/**
 * insert into webhook_deliveries ... on conflict (event_id, subscription_id) do nothing —
 * returns the new delivery's id, or null if that pair already has one.
 */
export async function insertDelivery(trx: Tx, eventId: string, subscriptionId: string): Promise<string | null> {
  const row = await trx
    .insertInto('webhook_deliveries')
    .values({
      id: newId('whd'),
      event_id: eventId,
      subscription_id: subscriptionId,
      status: 'pending',
      next_attempt_at: sql<Date>`now()`,
    })
    .onConflict((conflict) => conflict.columns(['event_id', 'subscription_id']).doNothing())
    .returning('id')
    .executeTakeFirst();
  return row?.id ?? null;
}

/** A delivery with what sending it needs: its subscription (with `deleted`) and its event. */
export type DeliveryToSend = Readonly<{
  delivery: Delivery;
  subscription: Subscription & { deleted: boolean };
  event: OutboxEvent;
}>;

/** Deliveries by id with their subscriptions and events: three queries for the whole batch. */
export async function findDeliveriesToSend(db: Executor, ids: readonly string[]): Promise<Map<string, DeliveryToSend>> {
  if (ids.length === 0) return new Map();
  const deliveries = await db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('id', 'in', [...ids])
    .execute();
  if (deliveries.length === 0) return new Map();
  const [subscriptions, events] = await Promise.all([
    db
      .selectFrom('webhook_subscriptions')
      .selectAll()
      .where('id', 'in', [...new Set(deliveries.map((d) => d.subscription_id))])
      .execute(),
    db
      .selectFrom('outbox_events')
      .selectAll()
      .where('id', 'in', [...new Set(deliveries.map((d) => d.event_id))])
      .execute(),
  ]);
  const subscriptionById = new Map(subscriptions.map((row) => [row.id, row]));
  const eventById = new Map(events.map((row) => [row.id, row]));
  const found = new Map<string, DeliveryToSend>();
  for (const row of deliveries) {
    const subscription = subscriptionById.get(row.subscription_id);
    const event = eventById.get(row.event_id);
    // Foreign keys guarantee both; a miss would be a bug, and the batch is retried.
    if (!subscription || !event) throw new Error(`delivery ${row.id} names a missing subscription or event`);
    found.set(row.id, {
      delivery: toDelivery(row),
      subscription: { ...toSubscription(subscription), deleted: subscription.deleted_at !== null },
      event: toOutboxEvent(event),
    });
  }
  return found;
}

/**
 * One attempt row per delivery, numbered after its last, stamped before the request goes out: a
 * crash mid-send leaves a started attempt with no end, visible in the delivery's history.
 * Returns the attempt row id per delivery id; a delivery missing from it is being attempted by
 * another worker right now (two jobs for one attempt, e.g. a redeliver racing a due retry).
 */
export async function startAttempts(db: Executor, deliveryIds: readonly string[]): Promise<Map<string, string>> {
  if (deliveryIds.length === 0) return new Map();
  const { rows } = await sql<{ id: string; delivery_id: string }>`
    insert into webhook_delivery_attempts (delivery_id, attempt_number, started_at)
    select x.id,
           coalesce((select max(a.attempt_number) from webhook_delivery_attempts a where a.delivery_id = x.id), 0) + 1,
           clock_timestamp()
      from unnest(${[...deliveryIds]}::text[]) as x(id)
    on conflict (delivery_id, attempt_number) do nothing
    returning id, delivery_id`.execute(db);
  return new Map(rows.map((row) => [row.delivery_id, String(row.id)]));
}

export type AttemptOutcome = Readonly<{
  deliveryId: string;
  /** The attempt this was: applies only if the delivery is still pending with attempt - 1 made. */
  attempt: number;
  status: Delivery['status'];
  statusCode: number | null;
  error: string | null;
  /** For status pending: when the next attempt is due. */
  delayMs: number | null;
  /** The started attempt row to close, if a request was made. */
  attemptId: string | null;
  latencyMs: number | null;
}>;

/**
 * Records outcomes in the caller's transaction: each delivery's new state, guarded so that an
 * outcome applies only to the attempt it was for (a stale or repeated job changes nothing), then
 * the attempt rows of the outcomes that applied. Returns the ids of the deliveries that changed.
 */
export async function recordAttemptOutcomes(trx: Tx, outcomes: readonly AttemptOutcome[]): Promise<Set<string>> {
  if (outcomes.length === 0) return new Set();
  const { rows } = await sql<{ id: string }>`
    update webhook_deliveries d
       set status = r.status,
           attempt_count = r.attempt,
           last_status_code = r.status_code,
           last_error = r.error,
           next_attempt_at = case when r.delay_ms is null then null
                                  else now() + make_interval(secs => r.delay_ms / 1000.0) end,
           delivered_at = case when r.status = 'delivered' then now() end,
           updated_at = now()
      from unnest(${outcomes.map((o) => o.deliveryId)}::text[],
                  ${outcomes.map((o) => o.status)}::text[],
                  ${outcomes.map((o) => o.attempt)}::int[],
                  ${outcomes.map((o) => o.statusCode)}::int[],
                  ${outcomes.map((o) => o.error)}::text[],
                  ${outcomes.map((o) => o.delayMs)}::float8[])
           as r(id, status, attempt, status_code, error, delay_ms)
     where d.id = r.id and d.status = 'pending' and d.attempt_count = r.attempt - 1
    returning d.id`.execute(trx);
  const applied = new Set(rows.map((row) => row.id));
  const attempts = outcomes.filter((o) => o.attemptId !== null && applied.has(o.deliveryId));
  if (attempts.length > 0) {
    await sql`
      update webhook_delivery_attempts a
         set ended_at = clock_timestamp(), status_code = r.status_code, latency_ms = r.latency_ms, error = r.error
        from unnest(${attempts.map((o) => o.attemptId)}::bigint[],
                    ${attempts.map((o) => o.statusCode)}::int[],
                    ${attempts.map((o) => (o.latencyMs === null ? null : Math.round(o.latencyMs)))}::int[],
                    ${attempts.map((o) => o.error)}::text[])
             as r(id, status_code, latency_ms, error)
       where a.id = r.id`.execute(trx);
  }
  return applied;
}

export async function findDeliveryFor(db: Executor, eventId: string, subscriptionId: string): Promise<Delivery | null> {
  const row = await db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('event_id', '=', eventId)
    .where('subscription_id', '=', subscriptionId)
    .executeTakeFirst();
  return row ? toDelivery(row) : null;
}

export async function listDeliveries(
  db: Executor,
  subscriptionId: string,
  limit: number,
): Promise<
  Array<
    Delivery & {
      attempts: Array<{
        number: number;
        at: Date;
        statusCode: number | null;
        latencyMs: number | null;
        error: string | null;
      }>;
    }
  >
> {
  const deliveries = await db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('subscription_id', '=', subscriptionId)
    .orderBy('created_at', 'desc')
    .limit(limit)
    .execute();
  const attempts =
    deliveries.length === 0
      ? []
      : await db
          .selectFrom('webhook_delivery_attempts')
          .selectAll()
          .where(
            'delivery_id',
            'in',
            deliveries.map((d) => d.id),
          )
          .orderBy('attempt_number')
          .execute();
  return deliveries.map((row) => ({
    ...toDelivery(row),
    attempts: attempts
      .filter((a) => a.delivery_id === row.id)
      .map((a) => ({
        number: a.attempt_number,
        at: a.started_at,
        statusCode: a.status_code,
        latencyMs: a.latency_ms,
        error: a.error,
      })),
  }));
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
