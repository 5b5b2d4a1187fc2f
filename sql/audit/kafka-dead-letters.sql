-- Events the Kafka broker refused for good, set aside by the emitter so that later events go on
-- (sql/009_kafka_dead_letters.sql), newest first, with the broker's error and the record's size.
-- After fixing the cause (the topic's max.message.bytes, say), put one back in line with
--   update outbox_events set kafka_dead_at = null, kafka_error = null where id = '<id>';
--   psql "$DATABASE_URL" -f sql/audit/kafka-dead-letters.sql
select e.kafka_dead_at, e.id as event_id, e.type, e.order_id, e.merchant_id, e.created_at,
       e.kafka_error, octet_length(e.payload::text) as payload_bytes, e.relayed_at
from outbox_events e
where e.kafka_dead_at is not null
order by e.kafka_dead_at desc
limit 100;
