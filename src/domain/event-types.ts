/**
 * Every event type the gateway emits: the one list (the webhook subscription filter, the event log
 * filter, the outbox writers). The outbox's check constraint (sql/007) holds the same list;
 * test/migrations.test.ts compares the two.
 */
export const EVENT_TYPES = [
  'payment_order.completed',
  'payment_order.failed',
  'payment_order.review_required',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];
