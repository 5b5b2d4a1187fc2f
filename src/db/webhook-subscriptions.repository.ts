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
 * the reason it was turned off (a 410, say); turning it off records that the merchant did.
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
      updated_at: sql<Date>`now()`,
    })
    .where('merchant_id', '=', merchantId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
  return row ? toSubscription(row) : null;
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
