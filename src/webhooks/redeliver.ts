import type { Db } from '../db/connection.ts';
import { findDeliveryFor, insertDelivery, reopenDelivery } from '../db/webhook-deliveries.repository.ts';
import { findSubscription, matchingSubscriptions } from '../db/webhook-subscriptions.repository.ts';
import { NotFoundError } from '../domain/errors.ts';
import type { OutboxEvent } from '../domain/event-body.ts';
import type { EnqueueDelivery } from '../outbox/relay.ts';

/**
 * Sends an event again, now, to one subscription or to every enabled one that wants its type: the
 * delivery (created if there was none) goes back to pending with the next attempt number, and its
 * job is enqueued, in one transaction. An older retry job for it turns stale. Returns the ids.
 */
export async function redeliverEvent(
  deps: Readonly<{ db: Db; enqueue: EnqueueDelivery }>,
  event: OutboxEvent,
  subscriptionId?: string,
): Promise<string[]> {
  const { db } = deps;
  // An event about a subscription (its disabling) goes to the merchant's other endpoints, as the
  // relay sends it, unless that one is named.
  const targets = subscriptionId
    ? [await findSubscription(db, event.merchantId, subscriptionId)].filter((s) => s !== null)
    : (await matchingSubscriptions(db, event.merchantId, event.type)).filter((s) => s.id !== event.subscriptionId);
  if (subscriptionId && targets.length === 0) throw new NotFoundError('webhook subscription', subscriptionId);
  return db.transaction().execute(async (trx) => {
    const ids: string[] = [];
    for (const subscription of targets) {
      const created = await insertDelivery(trx, event, subscription.id);
      if (created) {
        await deps.enqueue(trx, created, 1, 0);
        ids.push(created);
        continue;
      }
      const existing = await findDeliveryFor(trx, event.id, subscription.id);
      if (!existing) continue;
      await reopenDelivery(trx, existing.id);
      await deps.enqueue(trx, existing.id, existing.attemptCount + 1, 0);
      ids.push(existing.id);
    }
    return ids;
  });
}
