// Webhook subscriptions: a merchant's endpoints, their secrets (rotation) and their state.
import type { RawBuilder, Selectable } from 'kysely';
import { sql } from 'kysely';
import { newId } from '../lib/ids.ts';
import type { Db, Tx } from './connection.ts';
import type { WebhookSubscriptionsTable } from './schema.ts';

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

export type SubscriptionChange = Readonly<{ url?: string; events?: readonly string[]; enabled?: boolean }>;

/**
 * A merchant's change to its endpoint: the URL, the event types, or on/off. Turning it on clears
 * the reason it was turned off (a 410, say); turning it off records that the merchant did. Turning
 * it back on, or a new URL, restarts the automatic disabling's clock (failures_count_from, and the
 * state kept since it, see noteAttemptOutcomes): the failures before the fix are not held against
 * the fixed endpoint.
 * update webhook_subscriptions set ... where merchant_id = $1 and id = $2 and deleted_at is null
 */
export async function updateSubscription(
  db: Executor,
  merchantId: string,
  id: string,
  change: SubscriptionChange,
): Promise<Subscription | null> {
  // The right-hand sides see the row as it was before this update.
  const restart = sql<boolean>`((${change.enabled === true} and not enabled)
    or coalesce(${change.url ?? null}::text <> url, false))`;
  const row = await db
    .updateTable('webhook_subscriptions')
    .set({
      ...(change.url === undefined ? {} : { url: change.url }),
      ...(change.events === undefined ? {} : { events: [...change.events] }),
      ...(change.enabled === undefined
        ? {}
        : { enabled: change.enabled, disabled_reason: change.enabled ? null : 'disabled by the merchant' }),
      ...restartClock(restart),
      updated_at: sql<Date>`now()`,
    })
    .where('merchant_id', '=', merchantId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return row ? toSubscription(row) : null;
}

/** When `restart` holds: the clock starts now, with nothing yet held for or against the endpoint. */
function restartClock(restart: RawBuilder<boolean>) {
  return {
    failures_count_from: sql<Date>`case when ${restart} then now() else failures_count_from end`,
    failing_since: sql<Date | null>`case when ${restart} then null else failing_since end`,
    last_success_at: sql<Date | null>`case when ${restart} then null else last_success_at end`,
    last_failure_at: sql<Date | null>`case when ${restart} then null else last_failure_at end`,
  };
}

/**
 * The gateway switches endpoints off (a 410): returns those it switched, so that the caller writes
 * their webhook_subscription.disabled events in the same transaction. One already off (a second
 * 410 in the batch, a concurrent check) is not returned: one event per switch.
 * update webhook_subscriptions set enabled = false, disabled_reason = $2, updated_at = now()
 *  where id = any($1) and enabled and deleted_at is null returning *
 */
export async function disableSubscriptions(trx: Tx, ids: readonly string[], reason: string): Promise<Subscription[]> {
  if (ids.length === 0) return [];
  const rows = await trx
    .updateTable('webhook_subscriptions')
    .set({ enabled: false, disabled_reason: reason, updated_at: sql<Date>`now()` })
    .where('id', 'in', [...ids])
    .where('enabled', '=', true)
    .where('deleted_at', 'is', null)
    .returningAll()
    .execute();
  return rows.map((row) => toSubscription(row));
}

/**
 * Keeps the automatic disabling's state of the endpoints of these just-closed attempts, in the
 * transaction that records their outcomes (recordAttemptOutcomes). Counted: finished attempts
 * started at or after the endpoint's failures_count_from; a success is a 2xx, anything else
 * (another status, a timeout, a refused connection) a failure. All times are attempt START times,
 * and attempts end in any order (one endpoint's deliveries run in several batches at once): the
 * state is about start times, and whatever order outcomes are recorded in keeps its invariant:
 *   last_success_at = the latest 2xx start, last_failure_at = the latest failure start;
 *   S. a 2xx started at or after failing_since ends that streak: failing_since becomes
 *      last_failure_at if that is later than every 2xx (a failure that started after this 2xx but
 *      was recorded before it), else null;
 *   F. a failure started after every 2xx sets failing_since to its start if that is earlier (or
 *      failing_since was null); one started before a 2xx is not a streak.
 * Invariant: failing_since is null exactly when no failure started after the last 2xx; otherwise
 * it is the start of such a failure, so last_success_at < failing_since <= last_failure_at. The
 * exact streak start E (the earliest failure after the last 2xx) is therefore <= failing_since:
 * the state may start a streak late (rule S's stand-in started after the 2xx and was recorded
 * before it: late by at most the 2xx's start-to-commit, about a request timeout), never early, so
 * an endpoint is never switched off before the rule of disableFailingSubscriptions says so.
 *
 * Concurrency: the endpoints' rows are locked first, in id order (as disableFailingSubscriptions
 * locks its candidates: two batches, or a batch and the check, never deadlock), and the update runs
 * in a later statement, whose snapshot sees every outcome committed before the lock was granted:
 * the rules are applied one transaction at a time, each on the state the last one committed. A
 * 2xx racing a failure thus cannot miss a failing_since written by an uncommitted transaction.
 * Cost: one lock and one (HOT, as only unindexed columns change but at a streak's start or end)
 * row update per endpoint per batch.
 */
export async function noteAttemptOutcomes(trx: Tx, attemptIds: readonly string[]): Promise<void> {
  if (attemptIds.length === 0) return;
  const ids = sql`${[...attemptIds]}::bigint[]`;
  await sql`
    select s.id from webhook_subscriptions s
     where s.id in (select d.subscription_id
                      from webhook_delivery_attempts a join webhook_deliveries d on d.id = a.delivery_id
                     where a.id = any(${ids}))
     order by s.id
       for no key update`.execute(trx);
  // A new statement, so a new snapshot: the rows are ours now, and what the CTE reads of them is
  // what the last holder committed (an UPDATE that waited for the lock itself would re-read the
  // row, but not what its CTE computed from the older snapshot).
  await sql`
    with counted as (
      select s.id,
             greatest(s.last_success_at, max(a.started_at) filter (where o.ok)) as success_at,
             max(a.started_at) filter (where not o.ok) as failure_at,
             array_agg(a.started_at) filter (where not o.ok) as failures
        from webhook_delivery_attempts a
        join webhook_deliveries d on d.id = a.delivery_id
        join webhook_subscriptions s on s.id = d.subscription_id
        cross join lateral (select coalesce(a.status_code between 200 and 299, false) as ok) o
       where a.id = any(${ids}) and a.ended_at is not null and a.started_at >= s.failures_count_from
       group by s.id
    )
    update webhook_subscriptions s
       set last_success_at = c.success_at,
           last_failure_at = greatest(s.last_failure_at, c.failure_at),
           -- A batch applies its 2xx first (rule S), then its failures (rule F): the order that
           -- loses least of the streak, and any order keeps the invariant.
           failing_since = least(
             case when s.failing_since > coalesce(c.success_at, '-infinity') then s.failing_since
                  when s.last_failure_at > coalesce(c.success_at, '-infinity') then s.last_failure_at end,
             (select min(f) from unnest(c.failures) f where f > coalesce(c.success_at, '-infinity')))
      from counted c
     where s.id = c.id`.execute(trx);
}

/**
 * Switches off every enabled endpoint that has failed every attempt for `days` days, and returns
 * them (their events are the caller's, in this transaction). With C = now() - `days` days, an
 * endpoint is switched off when all three hold, judging only finished attempts (ended_at set: a
 * crash mid-send is no evidence) started at or after its failures_count_from (created, turned back
 * on, or given a new URL), and counting as a success a 2xx answer only:
 *   1. the streak began at least `days` days ago: its last attempt started at or before C failed
 *      (so failures_count_from <= C too);
 *   2. none of its attempts started after C succeeded;
 *   3. at least one attempt started after C (and so failed): it is still being tried. An endpoint
 *      that failed once long ago and has had nothing to receive since is not judged on that.
 * 1 and 2 together say that the failures since the last 2xx began at or before C: failing_since
 * <= C (noteAttemptOutcomes keeps it, never earlier than that beginning); then the latest attempt
 * is a failure, and 3 says last_failure_at > C. Both sides of each boundary are in
 * test/webhook-operations-disable.test.ts.
 *
 *   update webhook_subscriptions s set enabled = false, ...
 *    where s.enabled and s.deleted_at is null and s.failing_since <= C and s.last_failure_at > C
 *   returning *
 *
 * Cost: the endpoints failing at all, from webhook_subscriptions_failing_idx; no attempt is read.
 * Safe with several instances and with the senders: the candidates are locked in id order (as
 * noteAttemptOutcomes locks, so neither deadlocks the other), and a row changed meanwhile is
 * locked as it is then and judged again (an endpoint a 2xx has just cleared is left alone; one a
 * concurrent check has switched off is not enabled any more): switched off, and reported, once.
 */
export async function disableFailingSubscriptions(trx: Tx, days: number, reason: string): Promise<Subscription[]> {
  const { rows } = await sql<Selectable<WebhookSubscriptionsTable>>`
    with cutoff as (select now() - make_interval(days => ${days}) as at),
    candidates as (
      select s.id
        from webhook_subscriptions s, cutoff
       where s.enabled and s.deleted_at is null
         and s.failing_since <= cutoff.at and s.last_failure_at > cutoff.at
       order by s.id
         for no key update of s)
    update webhook_subscriptions s
       set enabled = false, disabled_reason = ${reason}, updated_at = now()
      from candidates c
     where s.id = c.id
    returning s.*`.execute(trx);
  return rows.map((row) => toSubscription(row));
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
 * An operator turns an endpoint back on, whichever merchant's it is (after a 410 or automatic
 * disabling, once the subscriber is fixed): enabled again, its disabled reason cleared. One
 * statement; null when there is no such subscription (or it was deleted).
 * update webhook_subscriptions set enabled = true, disabled_reason = null, updated_at = now()
 *   where id = $1 and deleted_at is null returning *
 */
export async function reenableSubscription(db: Executor, id: string): Promise<Subscription | null> {
  const row = await db
    .updateTable('webhook_subscriptions')
    .set({
      enabled: true,
      disabled_reason: null,
      // Back on: the automatic disabling's clock starts again (see updateSubscription).
      ...restartClock(sql<boolean>`not enabled`),
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return row ? toSubscription(row) : null;
}
