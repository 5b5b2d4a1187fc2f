/**
 * Every event type the gateway emits: the one list (the webhook subscription filter, the event log
 * filter, the outbox writers). The outbox's check constraint (sql/011) holds the same list;
 * test/migrations.test.ts compares the two.
 */
export const EVENT_TYPES = [
  'payment_order.completed',
  'payment_order.failed',
  'payment_order.review_required',
  /** The gateway switched an endpoint off (it answered 410, or failed every attempt for days). */
  'webhook_subscription.disabled',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** The events about an order: their subject is the order, and their data its public JSON. */
export type OrderEventType = Extract<EventType, `payment_order.${string}`>;

/** The events about a webhook subscription: their data is the subscription, without its secret. */
export type SubscriptionEventType = Extract<EventType, `webhook_subscription.${string}`>;

/**
 * The type of the test event sent on demand to one endpoint (POST /webhook-subscriptions/{id}/test).
 * Not an EventType: it is never written to the outbox, logged in GET /events, sent to Kafka or to
 * any other endpoint, and no one subscribes to it.
 */
export const TEST_EVENT_TYPE = 'webhook.test';
