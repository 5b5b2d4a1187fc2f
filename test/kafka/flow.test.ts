/**
 * Orders through the provider sandbox → the gateway's Kafka emitter → a real Apache Kafka broker →
 * read back by Apache Kafka's own console consumer. Each event is one record: key = order id,
 * value = the webhook body's JSON (byte for byte what the webhook subscriber received), headers
 * event-id and event-type; every outbox row gets kafka_published_at.
 */
import t from 'tap';
import { waitFor } from '../helpers/wait.ts';
import {
  allFinished,
  anyBroker,
  compareWithTopic,
  createOrder,
  declined,
  gatewayWithSubscriber,
  kafkaMarks,
  outboxEvents,
  topicName,
  visa,
} from './suite.ts';

const broker = await anyBroker(t);
const topic = topicName('flow');
await broker.createTopic(topic);
const gateway = await gatewayWithSubscriber(t, broker.brokers, topic, { PROVIDER_MAX_ATTEMPTS: '4' });
const { service, api, subscriber } = gateway;

t.test('completed and failed orders of both providers: one record each, as the webhook body', async (t) => {
  const methods = [visa, declined, { type: 'mpesa', phone: '254708374149' }, { type: 'mpesa', phone: '254708371032' }];
  const ids: string[] = [];
  for (let round = 0; round < 5; round++) for (const method of methods) ids.push(await createOrder(api, method));
  await allFinished(service.db, ids);
  const finished = await Promise.all(ids.map(async (id) => (await api.get(`/payment-orders/${id}`)).body));
  const statuses = new Set(finished.map((order) => `${order.provider}:${order.status}`));
  t.same([...statuses].sort(), ['mpesa:COMPLETED', 'mpesa:FAILED', 'stripe:COMPLETED', 'stripe:FAILED']);

  await waitFor('every event published', async () => (await kafkaMarks(service.db)).waiting.size === 0, {
    timeoutMs: 30_000,
  });
  const events = await outboxEvents(service.db);
  t.equal(events.length, ids.length, 'one terminal event per order');
  const marks = await kafkaMarks(service.db);
  t.equal(marks.published.size, events.length, 'every outbox row has kafka_published_at');
  t.equal(marks.dead.size, 0);

  const records = await broker.readTopic(topic);
  const report = compareWithTopic(events, records);
  t.same(report.missing, [], 'no event missing from the topic');
  t.same(report.duplicated, [], 'no event twice (no faults here: the idempotent producer dedupes its own retries)');
  t.same(report.mismatched, [], 'key = order id, value = the webhook body, headers event-id and event-type');
  t.same(report.unknown, []);
  const types = new Set(records.map((record) => record.headers['event-type']));
  t.same([...types].sort(), ['payment_order.completed', 'payment_order.failed']);

  // Same bytes as the webhook: what the subscriber received for the event is the record's value.
  await waitFor('every webhook delivered', () => subscriber.received.length >= events.length, { timeoutMs: 30_000 });
  const webhookBodies = new Map(
    subscriber.received.map((request) => [String(request.headers['webhook-id']), request.body]),
  );
  for (const record of records) {
    const body = webhookBodies.get(record.headers['event-id'] ?? '');
    if (body !== record.value) t.fail(`record ${record.headers['event-id']}: value differs from the webhook body`);
  }
  t.pass(`${records.length} record values equal their webhook bodies`);

  // Every event of one order on one partition (the key is the order id).
  const partitions = new Map<string, Set<number>>();
  for (const record of records)
    partitions.set(record.key, (partitions.get(record.key) ?? new Set()).add(record.partition));
  t.ok(
    [...partitions.values()].every((set) => set.size === 1),
    'one partition per order',
  );

  const metrics = await (await fetch(`${service.url}/metrics`)).text();
  t.match(metrics, new RegExp(`^kafka_events_published_total ${events.length}$`, 'm'));
  t.match(metrics, /^outbox_events_unpublished 0$/m);
  t.match(metrics, /^outbox_events_kafka_dead 0$/m);
});
