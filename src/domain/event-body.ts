import type { EventType } from './event-types.ts';

/** One committed outbox row, as the consumers of the outbox (webhook relay, Kafka emitter) see it. */
export type OutboxEvent = {
  id: string;
  type: EventType;
  /** The subject of a payment_order.* event; null for the others. */
  orderId: string | null;
  /** The subject of a webhook_subscription.* event; null for the others. */
  subscriptionId: string | null;
  merchantId: string;
  createdAt: Date;
  /** The subject's public JSON as the event saw it: the order (order-json.ts), or the subscription. */
  payload: Record<string, unknown>;
};

export type EventBody = { id: string; type: EventType; createdAt: string; data: Record<string, unknown> };

/**
 * The JSON every consumer of an event receives, the webhook body and the Kafka value alike:
 * `{ "id": "evt_...", "type": "payment_order.completed", "createdAt": "...", "data": {order} }`.
 * The event id is what consumers dedupe on (delivery is at least once everywhere).
 */
export function eventBody(event: OutboxEvent): EventBody {
  return { id: event.id, type: event.type, createdAt: event.createdAt.toISOString(), data: event.payload };
}

/**
 * What the event is about: the order, or for a webhook_subscription.* event the subscription. The
 * outbox's check constraint (sql/011) gives every event exactly one.
 */
export function eventSubjectId(event: Pick<OutboxEvent, 'id' | 'orderId' | 'subscriptionId'>): string {
  const subject = event.orderId ?? event.subscriptionId;
  if (subject === null) throw new Error(`event ${event.id} has no subject`);
  return subject;
}
