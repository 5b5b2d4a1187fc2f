import { eventBody, eventSubjectId, type OutboxEvent } from '../domain/event-body.ts';

/**
 * One Kafka record, strings throughout (the producer uses string serialisers). Structurally a
 * `MessageToProduce<string, string, string, string>` of @platformatic/kafka.
 */
export type EventRecord = Readonly<{
  topic: string;
  /**
   * The event's subject: the order id for payment_order.* (every event of one order lands on the
   * same partition, in order), the subscription id for webhook_subscription.* (the same, per
   * endpoint). One topic for all: consumers tell them apart by the `event-type` header.
   */
  key: string;
  /** The same JSON as the webhook body. */
  value: string;
  headers: Readonly<{ 'event-id': string; 'event-type': string }>;
}>;

/** The record for one outbox event; consumers dedupe on the `event-id` header (or `value.id`). */
export function eventRecord(event: OutboxEvent, topic: string): EventRecord {
  return {
    topic,
    key: eventSubjectId(event),
    value: JSON.stringify(eventBody(event)),
    headers: { 'event-id': event.id, 'event-type': event.type },
  };
}
