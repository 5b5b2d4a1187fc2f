-- Kafka: an event the broker rejects for good no longer stops every later one. Before, the emitter
-- retried its oldest batch for ever when the broker refused a record in it (a record over the
-- topic's max.message.bytes, say): nothing after it was ever published. Now the emitter splits a
-- rejected batch in halves until the record the broker refuses is alone, and sets that one event
-- aside with the broker's error (src/kafka/kafka-emitter.ts); the others go on.
--
-- An event set aside is not lost: its row is here, its webhooks are unaffected, and
--   update outbox_events set kafka_dead_at = null, kafka_error = null where id = '...';
-- puts it back in line once the cause is fixed (sql/audit/kafka-dead-letters.sql lists them).
alter table outbox_events
  add column kafka_dead_at timestamptz,
  add column kafka_error text,
  add constraint outbox_events_kafka_dead_check
    check ((kafka_dead_at is null) = (kafka_error is null) and (kafka_dead_at is null or kafka_published_at is null));

-- The emitter's backlog: unpublished and not set aside, in the emitter's order.
drop index outbox_events_unpublished_idx;
create index outbox_events_unpublished_idx on outbox_events (created_at, id)
  where kafka_published_at is null and kafka_dead_at is null;
create index outbox_events_kafka_dead_idx on outbox_events (kafka_dead_at) where kafka_dead_at is not null;
