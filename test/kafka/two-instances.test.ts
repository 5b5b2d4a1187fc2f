/**
 * Two gateway instances on one database, both with the Kafka emitter on: one publisher at a time
 * (a transaction-level advisory lock), so no event is sent by both and none is skipped; then one
 * instance stops mid-stream and the other carries on alone.
 */
import t from 'tap';
import { FAST_PROCESSING, startProcessing } from '../helpers/processing.ts';
import { startTestService } from '../helpers/service.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  anyBroker,
  compareWithTopic,
  createOrder,
  declined,
  kafkaEnv,
  kafkaMarks,
  outboxEvents,
  topicName,
  visa,
} from './suite.ts';

const published = async (url: string) => {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^kafka_events_published_total (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
};

t.test('two emitters, one publisher at a time; one stops mid-stream, the other carries on', async (t) => {
  const broker = await anyBroker(t);
  const topic = topicName('two');
  await broker.createTopic(topic);
  const env = { ...kafkaEnv(broker.brokers, topic), KAFKA_BATCH_SIZE: '5' };
  const first = await startProcessing(t, { ...env, WORKER_CONCURRENCY: '2' });
  const second = await startTestService(
    t,
    { ...env, ...FAST_PROCESSING, WORKER_CONCURRENCY: '2', STRIPE_API_URL: first.sandbox.url },
    first.service.database,
  );
  const secondApi = (await second.merchant()).api;

  const ids: string[] = [];
  for (let i = 0; i < 40; i++)
    ids.push(await createOrder(i % 2 ? secondApi : first.api, i % 5 === 4 ? declined : visa));
  await waitFor('the first 40 events published', async () => (await kafkaMarks(second.db)).published.size >= 40, {
    timeoutMs: 60_000,
  });
  const [byFirst, bySecond] = [await published(first.service.url), await published(second.url)];
  t.equal(byFirst + bySecond, 40, `each event published by one instance (first ${byFirst}, second ${bySecond})`);

  // The first instance stops; the second alone publishes what comes next.
  await first.service.stop();
  for (let i = 0; i < 20; i++) ids.push(await createOrder(secondApi, visa));
  await waitFor(
    'every event published',
    async () => {
      const marks = await kafkaMarks(second.db);
      return marks.published.size === ids.length && marks.waiting.size === 0;
    },
    { timeoutMs: 60_000 },
  );
  t.equal(await published(second.url), bySecond + 20, 'the rest by the second instance');

  const report = compareWithTopic(await outboxEvents(second.db), await broker.readTopic(topic));
  t.same(report.missing, [], 'no event skipped');
  t.same(report.duplicated, [], 'no event sent by both');
  t.same(report.mismatched, []);
});
