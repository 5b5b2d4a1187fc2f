/**
 * What the broker refuses, and what it cannot take yet:
 * - a record over the topic's max.message.bytes (set low here) is refused for ever: the batch is
 *   split until that record is alone, it is set aside with the broker's error (kafka_dead_at), a
 *   metric and an error log say so, every other event goes on, and the documented remedy (raise
 *   the limit, clear the mark) publishes it;
 * - a missing topic refuses everything: nothing is set aside (it is configuration, not a record),
 *   failures are counted as topic_missing and logged at error level, webhooks go on, and the
 *   backlog is published once the topic exists.
 */
import { Admin, ConfigResourceTypes, IncrementalAlterConfigOperationTypes } from '@platformatic/kafka';
import t from 'tap';
import { startProcessing } from '../helpers/processing.ts';
import { startTestService } from '../helpers/service.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  allFinished,
  anyBroker,
  compareWithTopic,
  createOrder,
  finishedOrders,
  gatewayWithSubscriber,
  kafkaEnv,
  kafkaMarks,
  outboxEvents,
  topicName,
  visa,
} from './suite.ts';

const broker = await anyBroker(t);
/** Fits one ordinary event (~700 bytes) and a few together, not a batch of 40, not the big one. */
const MAX_MESSAGE_BYTES = 4096;
/** 40 metadata values of 200 characters: an event of ~10 KB. */
const BIG_METADATA = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`note_${i}`, 'x'.repeat(200)]));

const metricsOf = async (url: string) => (await fetch(`${url}/metrics`)).text();

t.test('a record over max.message.bytes is set aside; the others, and later ones, go on', async (t) => {
  const topic = topicName('reject');
  await broker.createTopic(topic, { configs: { 'max.message.bytes': String(MAX_MESSAGE_BYTES) } });
  // Orders finish on a gateway without Kafka first, so that the emitter then meets them as one
  // backlog: one step of 41 events, refused as a batch although 40 of them would pass alone.
  const processing = await startProcessing(t);
  const before: string[] = [];
  for (let i = 0; i < 20; i++) before.push(await createOrder(processing.api, visa));
  const big = await createOrder(processing.api, visa, { metadata: BIG_METADATA });
  for (let i = 0; i < 20; i++) before.push(await createOrder(processing.api, visa));
  await allFinished(processing.service.db, [...before, big]);

  const emitter = await startTestService(
    t,
    { ...kafkaEnv(broker.brokers, topic), WEBHOOK_CONCURRENCY: '0' },
    processing.service.database,
  );
  await waitFor('the backlog handled', async () => (await kafkaMarks(emitter.db)).waiting.size === 0, {
    timeoutMs: 30_000,
  });
  const marks = await kafkaMarks(emitter.db);
  const bigEvent = (await outboxEvents(emitter.db)).find((event) => event.orderId === big);
  t.ok(bigEvent, 'the big order has its event');
  t.same([...marks.dead.keys()], [bigEvent?.id], 'only the big event is set aside');
  t.match(marks.dead.get(bigEvent?.id ?? ''), /^MESSAGE_TOO_LARGE/, "with the broker's error");
  t.equal(marks.published.size, before.length, 'every other event published');
  const errorLog = emitter.logs.find((line) => line.includes('kafka broker rejected an event for good'));
  t.match(errorLog, /"level":50/, 'an error-level log');
  t.match(errorLog, new RegExp(`"eventId":"${bigEvent?.id}"`), 'naming the event');
  const metrics = await metricsOf(emitter.url);
  t.match(metrics, /^kafka_events_dead_lettered_total 1$/m);
  t.match(metrics, /^outbox_events_kafka_dead 1$/m, 'the alert-worthy gauge');
  t.match(metrics, /^outbox_events_unpublished 0$/m, 'a set-aside event is not backlog');

  // Later events are not held up by it.
  const later = await createOrder(processing.api, visa);
  await allFinished(processing.service.db, [later]);
  await waitFor(
    'a later event published',
    async () =>
      (await kafkaMarks(emitter.db)).waiting.size === 0 &&
      (await outboxEvents(emitter.db)).length === before.length + 2,
  );

  let records = await broker.readTopic(topic);
  let report = compareWithTopic(await outboxEvents(emitter.db), records);
  t.same(report.missing, [bigEvent?.id], 'the topic has every event but the big one');
  t.same(report.mismatched, []);
  // Splitting sends the halves of a refused request again; a partition's batch the broker took in
  // that request is then written twice (Kafka refuses per partition). At least once, as always.
  t.comment(
    `${records.length} records for ${before.length + 1} events: ${report.duplicated.length} written twice by the splitting`,
  );

  // The remedy README and sql/audit/kafka-dead-letters.sql give: raise the limit, clear the mark.
  const admin = new Admin({ clientId: 'pog-test-admin', bootstrapBrokers: [...broker.brokers] });
  await admin.incrementalAlterConfigs({
    resources: [
      {
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: topic,
        configs: [
          { name: 'max.message.bytes', configOperation: IncrementalAlterConfigOperationTypes.SET, value: '1048588' },
        ],
      },
    ],
  });
  await admin.close();
  // The broker applies a topic's new config shortly after it answers, so the first retry may be
  // refused again and set aside again: requeue, as an operator would, until it is published.
  const eventId = bigEvent?.id ?? '';
  await waitFor(
    'the set-aside event published',
    async () => {
      const now = await kafkaMarks(emitter.db);
      if (now.published.has(eventId)) return true;
      if (now.dead.has(eventId)) {
        await emitter.db
          .updateTable('outbox_events')
          .set({ kafka_dead_at: null, kafka_error: null })
          .where('id', '=', eventId)
          .execute();
      }
      return false;
    },
    { intervalMs: 200 },
  );
  records = await broker.readTopic(topic);
  report = compareWithTopic(await outboxEvents(emitter.db), records);
  t.same(report.missing, [], 'now every event is in the topic');
  t.same(report.mismatched, []);
});

t.test(
  'a missing topic: retried, counted as topic_missing, logged as an error; published once it exists',
  async (t) => {
    const topic = topicName('missing');
    const gateway = await gatewayWithSubscriber(t, broker.brokers, topic);
    const { service, subscriber } = gateway;
    const ids = await finishedOrders(gateway, 5);
    await waitFor('webhooks delivered meanwhile', () => subscriber.received.length >= ids.length);
    await waitFor('failures counted as topic_missing', async () =>
      /^kafka_publish_failures_total\{reason="topic_missing"\} [1-9]/m.test(await metricsOf(service.url)),
    );
    const marks = await kafkaMarks(service.db);
    t.equal(marks.published.size, 0, 'nothing marked');
    t.equal(marks.dead.size, 0, 'nothing set aside: a missing topic is not a record fault');
    const failure = service.logs.find(
      (line) => line.includes('kafka publish failed') && line.includes('topic_missing'),
    );
    t.match(failure, /"level":50/, 'logged at error level');

    await broker.createTopic(topic);
    await waitFor('the backlog published', async () => (await kafkaMarks(service.db)).waiting.size === 0, {
      timeoutMs: 30_000,
    });
    const report = compareWithTopic(await outboxEvents(service.db), await broker.readTopic(topic));
    t.same(report.missing, []);
    t.same(report.duplicated, []);
    t.same(report.mismatched, []);
  },
);
