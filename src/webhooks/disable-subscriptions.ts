import type { Db, Tx } from '../db/connection.ts';
import { insertSubscriptionEvents } from '../db/outbox-events.repository.ts';
import {
  disableFailingSubscriptions,
  disableSubscriptions,
  type Subscription,
} from '../db/webhook-subscriptions.repository.ts';
import { subscriptionJson } from './subscription-json.ts';

/**
 * The gateway switches endpoints off, and says so: in the caller's transaction, each endpoint
 * switched (not one that was off already) gets a webhook_subscription.disabled event, whose data
 * is the subscription as it is now (off, with its reason). The relay sends it to the merchant's
 * other enabled endpoints that want it; it is in the event log and on Kafka (keyed by the
 * subscription id). A merchant's own PATCH or DELETE emits nothing: the merchant made that change.
 */
export async function disableForGone(trx: Tx, subscriptionIds: readonly string[]): Promise<Subscription[]> {
  const disabled = await disableSubscriptions(trx, subscriptionIds, 'the endpoint answered 410 Gone');
  await announceDisabled(trx, disabled);
  return disabled;
}

/**
 * One pass of the automatic disabling, in one transaction: every endpoint that failed every
 * attempt for `days` days (the rule is disableFailingSubscriptions') is switched off, and each one
 * gets its event. Returns those switched off.
 */
export async function disableFailingEndpoints(db: Db, days: number): Promise<Subscription[]> {
  const reason = `every delivery attempt failed for ${days} ${days === 1 ? 'day' : 'days'}`;
  return db.transaction().execute(async (trx) => {
    const disabled = await disableFailingSubscriptions(trx, days, reason);
    await announceDisabled(trx, disabled);
    return disabled;
  });
}

async function announceDisabled(trx: Tx, subscriptions: readonly Subscription[]): Promise<void> {
  await insertSubscriptionEvents(
    trx,
    subscriptions.map((s) => ({ id: s.id, merchantId: s.merchantId, json: subscriptionJson(s) })),
    'webhook_subscription.disabled',
  );
}
