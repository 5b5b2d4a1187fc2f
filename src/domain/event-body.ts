import type { EventType } from './event-types.ts';

/** One committed outbox row, as the consumers of the outbox (webhook relay, Kafka emitter) see it. */
export type OutboxEvent = {
  id: string;
  type: EventType;
  orderId: string;
  merchantId: string;
  createdAt: Date;
  /** The order's public JSON at the terminal transition (see order-json.ts). */
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
