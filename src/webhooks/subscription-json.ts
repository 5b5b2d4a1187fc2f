import type { Subscription } from '../db/webhook-subscriptions.repository.ts';

/**
 * A subscription's public JSON: what the API answers and what a webhook_subscription.* event
 * carries as its data. Never the secret (shown only on creation and rotation).
 */
export function subscriptionJson(subscription: Subscription) {
  return {
    id: subscription.id,
    object: 'webhook_subscription',
    url: subscription.url,
    events: subscription.events,
    enabled: subscription.enabled,
    disabledReason: subscription.disabledReason,
    createdAt: subscription.createdAt.toISOString(),
    updatedAt: subscription.updatedAt.toISOString(),
  };
}
