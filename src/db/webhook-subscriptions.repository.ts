// Webhook subscriptions: a merchant's endpoints, their secrets (rotation) and their state.
import type { Selectable } from 'kysely';
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
 * it back on, or a new URL, restarts the automatic disabling's clock (failures_count_from): the
 * failures before the fix are not held against the fixed endpoint.
 * update webhook_subscriptions set ... where merchant_id = $1 and id = $2 and deleted_at is null
 */
export async function updateSubscription(
  db: Executor,
  merchantId: string,
  id: string,
  change: SubscriptionChange,
): Promise<Subscription | null> {
  const row = await db
    .updateTable('webhook_subscriptions')
    .set({
      ...(change.url === undefined ? {} : { url: change.url }),
      ...(change.events === undefined ? {} : { events: [...change.events] }),
      ...(change.enabled === undefined
        ? {}
        : { enabled: change.enabled, disabled_reason: change.enabled ? null : 'disabled by the merchant' }),
      // The right-hand sides see the row as it was before this update.
      failures_count_from: sql<Date>`case
        when ${change.enabled === true} and not enabled then now()
        when ${change.url ?? null}::text is not null and ${change.url ?? null}::text <> url then now()
        else failures_count_from end`,
      updated_at: sql<Date>`now()`,
    })
    .where('merchant_id', '=', merchantId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return row ? toSubscription(row) : null;
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
 * Both sides of each boundary are in test/webhook-operations-disable.test.ts.
 *
 *   update webhook_subscriptions s set enabled = false, ...
 *    where s.enabled and s.deleted_at is null and s.failures_count_from <= C
 *      and s.id in (attempts started after C, grouped by subscription, having none a 2xx)   -- 2, 3
 *      and (the last attempt of s started in [failures_count_from, C]) is not a 2xx        -- 1
 *   returning *
 *
 * Cost: one range scan of the last `days` days of attempts (webhook_delivery_attempts_started_idx),
 * then, for the few endpoints failing all of that time, one look back at their attempts before C.
 * Safe with several instances: the update takes each row's lock and re-checks `s.enabled` on the
 * row as it is then, so an endpoint is switched off, and reported, once.
 */
export async function disableFailingSubscriptions(trx: Tx, days: number, reason: string): Promise<Subscription[]> {
  const { rows } = await sql<Selectable<WebhookSubscriptionsTable>>`
    with cutoff as (select now() - make_interval(days => ${days}) as at)
    update webhook_subscriptions s
       set enabled = false, disabled_reason = ${reason}, updated_at = now()
      from cutoff
     where s.enabled and s.deleted_at is null
       and s.failures_count_from <= cutoff.at
       and s.id in (
             select d.subscription_id
               from webhook_delivery_attempts a
               join webhook_deliveries d on d.id = a.delivery_id
              where a.started_at > (select at from cutoff) and a.ended_at is not null
              group by d.subscription_id
             having not bool_or(coalesce(a.status_code between 200 and 299, false)))
       and (select not coalesce(a.status_code between 200 and 299, false)
              from webhook_delivery_attempts a
              join webhook_deliveries d on d.id = a.delivery_id
             where d.subscription_id = s.id and a.ended_at is not null
               and a.started_at <= cutoff.at and a.started_at >= s.failures_count_from
             order by a.started_at desc
             limit 1)
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
      failures_count_from: sql<Date>`case when enabled then failures_count_from else now() end`,
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return row ? toSubscription(row) : null;
}
