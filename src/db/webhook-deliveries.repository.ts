// Webhook deliveries (one per event and subscription) and their attempts.
import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { OutboxEvent } from '../domain/event-body.ts';
import { newId } from '../lib/ids.ts';
import type { Db, Tx } from './connection.ts';
import { toOutboxEvent } from './outbox-events.repository.ts';
import type { WebhookDeliveriesTable } from './schema.ts';
import { noteAttemptOutcomes, type Subscription, toSubscription } from './webhook-subscriptions.repository.ts';

type Executor = Db | Tx;

/** The statuses of webhook_deliveries (its check constraint, sql/003). */
export const DELIVERY_STATUSES = ['pending', 'delivered', 'dead', 'cancelled'] as const;

export type Delivery = Readonly<{
  id: string;
  eventId: string;
  subscriptionId: string;
  status: (typeof DELIVERY_STATUSES)[number];
  attemptCount: number;
  nextAttemptAt: Date | null;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: Date | null;
  createdAt: Date;
}>;

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

/**
 * insert into webhook_deliveries ... on conflict (event_id, subscription_id) do nothing —
 * returns the new delivery's id, or null if that pair already has one.
 */
export async function insertDelivery(
  trx: Tx,
  event: Readonly<{ id: string; type: string }>,
  subscriptionId: string,
): Promise<string | null> {
  const row = await trx
    .insertInto('webhook_deliveries')
    .values({
      id: newId('whd'),
      event_id: event.id,
      event_type: event.type,
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
 * the attempt rows of the outcomes that applied, and what those attempts say to the automatic
 * disabling (each endpoint's failing streak, noteAttemptOutcomes). Returns the ids of the
 * deliveries that changed.
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
    // In this transaction: the streak must never disagree with the attempts it was computed from.
    await noteAttemptOutcomes(
      trx,
      attempts.map((o) => o.attemptId as string),
    );
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

export type DeliveryStatus = Delivery['status'];

export type DeliveryAttempt = Readonly<{
  number: number;
  at: Date;
  statusCode: number | null;
  latencyMs: number | null;
  error: string | null;
}>;

export type ListedDelivery = Delivery & Readonly<{ eventType: string; attempts: DeliveryAttempt[] }>;

export type ListDeliveriesQuery = Readonly<{
  subscriptionId: string;
  status?: DeliveryStatus | undefined;
  eventType?: string | undefined;
  /** A delivery id: the page continues below that delivery's place. */
  startingAfter?: string | undefined;
  limit: number;
}>;

/**
 * One subscription's deliveries, newest first, keyset-paginated by (created_at, id) — the id breaks
 * the ties of one relay statement's deliveries — with each one's attempts (a second query for the
 * page). A cursor that is not one of this subscription's deliveries gives an empty page.
 *
 *   select d.*, e.type from webhook_deliveries d join outbox_events e on e.id = d.event_id
 *    where d.subscription_id = $1 [and d.status = $2] [and e.type = $3]
 *      [and (d.created_at, d.id) < (select created_at, id from webhook_deliveries where id = $4 and subscription_id = $1)]
 *    order by d.created_at desc, d.id desc limit $5 + 1
 */
export async function listDeliveries(
  db: Executor,
  query: ListDeliveriesQuery,
): Promise<{ deliveries: ListedDelivery[]; hasMore: boolean }> {
  let select = db
    .selectFrom('webhook_deliveries as d')
    .selectAll('d')
    .where('d.subscription_id', '=', query.subscriptionId);
  if (query.status) select = select.where('d.status', '=', query.status);
  // One range of webhook_deliveries_subscription_type_idx.
  if (query.eventType) select = select.where('d.event_type', '=', query.eventType);
  if (query.startingAfter) {
    select = select.where(
      sql<boolean>`(d.created_at, d.id) < (select c.created_at, c.id from webhook_deliveries c
                                            where c.id = ${query.startingAfter} and c.subscription_id = ${query.subscriptionId})`,
    );
  }
  const rows = await select
    .orderBy('d.created_at', 'desc')
    .orderBy('d.id', 'desc')
    .limit(query.limit + 1)
    .execute();
  const page = rows.slice(0, query.limit);
  const attempts =
    page.length === 0
      ? []
      : await db
          .selectFrom('webhook_delivery_attempts')
          .selectAll()
          .where(
            'delivery_id',
            'in',
            page.map((d) => d.id),
          )
          .orderBy('attempt_number')
          .execute();
  const deliveries = page.map((row) => ({
    ...toDelivery(row),
    eventType: row.event_type,
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
  return { deliveries, hasMore: rows.length > query.limit };
}

/**
 * A pending delivery for every enabled subscription of the events' merchants that wants the
 * event's type, in one statement; a pair that already has one is left alone (unique (event,
 * subscription): never twice). Returns the new deliveries' ids.
 */
export async function insertDeliveriesForEvents(trx: Tx, eventIds: readonly string[]): Promise<string[]> {
  const pairs = await trx
    .selectFrom('outbox_events as e')
    .innerJoin('webhook_subscriptions as s', (join) =>
      join
        .onRef('s.merchant_id', '=', 'e.merchant_id')
        .on('s.enabled', '=', true)
        .on('s.deleted_at', 'is', null)
        .on(sql<boolean>`e.type = any(s.events)`)
        // An event about a subscription (its disabling) goes to the merchant's other endpoints: the
        // subject is off by then, and one turned back on before this relay pass must not hear it.
        .on(sql<boolean>`e.subscription_id is distinct from s.id`),
    )
    .select(['e.id as eventId', 'e.type as eventType', 's.id as subscriptionId'])
    .where('e.id', 'in', eventIds)
    .execute();
  if (pairs.length === 0) return [];
  const created = await trx
    .insertInto('webhook_deliveries')
    .values(
      pairs.map((pair) => ({
        id: newId('whd'),
        event_id: pair.eventId,
        event_type: pair.eventType,
        subscription_id: pair.subscriptionId,
        status: 'pending',
        next_attempt_at: sql<Date>`now()`,
      })),
    )
    .onConflict((conflict) => conflict.columns(['event_id', 'subscription_id']).doNothing())
    .returning('id')
    .execute();
  return created.map((delivery) => delivery.id);
}

/** update webhook_deliveries set status = 'pending', next_attempt_at = now() where id = $1 (a redelivery) */
export async function reopenDelivery(trx: Tx, id: string): Promise<void> {
  await reopenDeliveries(trx, [id]);
}

/** update webhook_deliveries set status = 'pending', next_attempt_at = now() where id = any($1) (a replay) */
export async function reopenDeliveries(trx: Tx, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await trx
    .updateTable('webhook_deliveries')
    .set({ status: 'pending', next_attempt_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
    .where('id', 'in', [...ids])
    .execute();
}

/** The delivery statuses a replay sends again: those that ended without reaching the endpoint. */
export const UNSENT_STATUSES = ['dead', 'cancelled'] as const satisfies readonly DeliveryStatus[];

export type ReplayQuery = Readonly<{
  subscriptionId: string;
  /** Events created at or after this... */
  since: Date;
  /** ...and before this, if given. */
  until?: Date | undefined;
  /** A delivery id: continue after that delivery's place (the previous page's last). */
  startingAfter?: string | undefined;
  limit: number;
}>;

/**
 * The deliveries an endpoint never had: events created in [since, until) while it was switched
 * off, which the relay matched against enabled subscriptions only. Written as `cancelled` (never
 * sent, because the endpoint was off), so that the replay takes them with the rest, oldest first.
 * Only events the relay has passed (a later relay pass gives an unrelayed one its delivery),
 * created since the subscription itself, of a type it wants now, and not about itself. At most
 * `limit` a call, oldest first; `more` says there are others (a later call writes them). The id
 * bound (ids sort by creation time, lib/ids.ts) keeps it to an index range of the merchant's
 * events; an hour of slack covers a clock between the app and the database that differs.
 */
export async function insertMissedDeliveries(
  trx: Tx,
  query: Readonly<{ subscriptionId: string; since: Date; until?: Date | undefined; limit: number }>,
): Promise<{ inserted: number; more: boolean }> {
  const idFloor = newId('evt', query.since.getTime() - 3_600_000).slice(0, 'evt_'.length + 10);
  let select = trx
    .selectFrom('outbox_events as e')
    .innerJoin('webhook_subscriptions as s', (join) =>
      join.on('s.id', '=', query.subscriptionId).onRef('s.merchant_id', '=', 'e.merchant_id'),
    )
    .select(['e.id', 'e.type'])
    .where('e.id', '>=', idFloor)
    .where('e.created_at', '>=', query.since)
    .whereRef('e.created_at', '>=', 's.created_at')
    .where('e.relayed_at', 'is not', null)
    .where(sql<boolean>`e.type = any(s.events)`)
    .where(sql<boolean>`e.subscription_id is distinct from s.id`)
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('webhook_deliveries as d')
            .select('d.id')
            .whereRef('d.event_id', '=', 'e.id')
            .where('d.subscription_id', '=', query.subscriptionId),
        ),
      ),
    );
  if (query.until) select = select.where('e.created_at', '<', query.until);
  const missed = await select
    .orderBy('e.created_at')
    .orderBy('e.id')
    .limit(query.limit + 1)
    .execute();
  const taken = missed.slice(0, query.limit);
  if (taken.length > 0) {
    await trx
      .insertInto('webhook_deliveries')
      .values(
        taken.map((event) => ({
          id: newId('whd'),
          event_id: event.id,
          event_type: event.type,
          subscription_id: query.subscriptionId,
          status: 'cancelled',
          last_error: 'not sent: the endpoint was switched off',
        })),
      )
      .onConflict((conflict) => conflict.columns(['event_id', 'subscription_id']).doNothing())
      .execute();
  }
  return { inserted: taken.length, more: missed.length > query.limit };
}

/**
 * The oldest `limit` dead or cancelled deliveries of one subscription whose events were created in
 * [since, until), oldest event first (ties by delivery id), locked for the caller's transaction,
 * with one more looked at to tell whether there are more. The row locks make two replays of one
 * endpoint at once take each delivery once: the second waits, then sees it pending and skips it.
 *
 *   select d.id, d.attempt_count from webhook_deliveries d join outbox_events e on e.id = d.event_id
 *    where d.subscription_id = $1 and d.status in ('dead', 'cancelled') and e.created_at >= $2
 *      [and e.created_at < $3] [and (e.created_at, d.id) > (the cursor's)]
 *    order by e.created_at, d.id limit $4 + 1 for update of d
 */
export async function takeDeliveriesToReplay(
  trx: Tx,
  query: ReplayQuery,
): Promise<{ deliveries: Array<{ id: string; eventId: string; attemptCount: number }>; hasMore: boolean }> {
  let select = trx
    .selectFrom('webhook_deliveries as d')
    .innerJoin('outbox_events as e', 'e.id', 'd.event_id')
    .select(['d.id', 'd.event_id', 'd.attempt_count'])
    .where('d.subscription_id', '=', query.subscriptionId)
    .where('d.status', 'in', [...UNSENT_STATUSES])
    .where('e.created_at', '>=', query.since);
  if (query.until) select = select.where('e.created_at', '<', query.until);
  if (query.startingAfter) {
    select = select.where(
      sql<boolean>`(e.created_at, d.id) > (select ce.created_at, c.id from webhook_deliveries c
                                            join outbox_events ce on ce.id = c.event_id
                                           where c.id = ${query.startingAfter} and c.subscription_id = ${query.subscriptionId})`,
    );
  }
  const rows = await select
    .orderBy('e.created_at')
    .orderBy('d.id')
    .limit(query.limit + 1)
    .forUpdate('d')
    .execute();
  return {
    deliveries: rows
      .slice(0, query.limit)
      .map((row) => ({ id: row.id, eventId: row.event_id, attemptCount: row.attempt_count })),
    hasMore: rows.length > query.limit,
  };
}
