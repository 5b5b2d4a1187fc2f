import { eventBody, type OutboxEvent } from '../domain/event-body.ts';

/**
 * One Kafka record, strings throughout (the producer uses string serialisers). Structurally a
 * `MessageToProduce<string, string, string, string>` of @platformatic/kafka.
 */
export type EventRecord = Readonly<{
  topic: string;
  /** The order id: every event of one order lands on the same partition, in order. */
  key: string;
  /** The same JSON as the webhook body. */
  value: string;
  headers: Readonly<{ 'event-id': string; 'event-type': string }>;
}>;

/** The record for one outbox event; consumers dedupe on the `event-id` header (or `value.id`). */
export function eventRecord(event: OutboxEvent, topic: string): EventRecord {
  return {
    topic,
    key: event.orderId,
    value: JSON.stringify(eventBody(event)),
    headers: { 'event-id': event.id, 'event-type': event.type },
  };
}
