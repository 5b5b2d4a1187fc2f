/**
 * The broker fails under the emitter, in sequences:
 * - killed (SIGKILL) mid-stream, restarted on the same log directory, killed again, restarted: every
 *   event arrives at least once, nothing is marked published that the broker did not acknowledge,
 *   the same producer (no gateway restart) publishes the rest; duplicates are counted per event id;
 * - down when the gateway starts, up later: the gateway starts anyway, the webhook relay delivers
 *   meanwhile, and the emitter catches up.
 */
import t from 'tap';
import { startProcessing } from '../helpers/processing.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  allFinished,
  compareWithTopic,
  createOrder,
  declined,
  finishedOrders,
  gatewayWithSubscriber,
  kafkaEnv,
  kafkaMarks,
  outboxEvents,
  ownBroker,
  topicName,
  visa,
} from './suite.ts';

const BATCH_SIZE = 20;

t.test(
  'SIGKILL mid-stream, twice, restarted on the same data: at least once, marks only what was acknowledged',
  async (t) => {
    const broker = await ownBroker(t);
    const topic = topicName('kill');
    await broker.createTopic(topic);
    const { service, api } = await startProcessing(t, {
      ...kafkaEnv(broker.brokers, topic),
      KAFKA_BATCH_SIZE: String(BATCH_SIZE),
    });
    const marks = () => kafkaMarks(service.db);

    // A stream of orders (paced by a timer: load, not correctness) until the sequence is over.
    const ids: string[] = [];
    let streaming = true;
    const stream = (async () => {
      while (streaming) {
        ids.push(await createOrder(api, ids.length % 4 === 3 ? declined : visa));
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();

    const kills: { markedBefore: Set<string>; publishedAtKill: number; endOffsets: Map<number, number> }[] = [];
    // Kill 1 mid-stream (events trickle in one by one); kill 2 during the catch-up after restart 1,
    // as soon as its first step committed, while steps of the backlog are in flight.
    for (let kill = 1; kill <= 2; kill++) {
      const before = (await marks()).published.size;
      const more = kill === 1 ? 30 : 1;
      await waitFor(
        `${more} more events published before kill ${kill}`,
        async () => {
          return (await marks()).published.size >= before + more;
        },
        { timeoutMs: 60_000, intervalMs: kill === 1 ? 50 : 5 },
      );
      // Everything marked before the kill was acknowledged; it must never be sent again. A marked row
      // may have two copies written before its mark (a step in flight at an earlier kill, resent
      // after the restart): those lie below the end offsets read here, after the marks. A copy at
      // or past them was written after the marks were read: that would be a marked row sent again.
      const markedBefore = (await marks()).published;
      const endOffsets = await broker.endOffsets(topic);
      await broker.kill();
      kills.push({ markedBefore, publishedAtKill: markedBefore.size, endOffsets });
      const eventsAtKill = (await outboxEvents(service.db)).length;
      // The stream goes on while the broker is dead: orders finish, events pile up unpublished.
      await waitFor(
        `20 more events while the broker is down (kill ${kill})`,
        async () => {
          return (await outboxEvents(service.db)).length >= eventsAtKill + 20;
        },
        { timeoutMs: 60_000 },
      );
      const whileDown = await marks();
      t.ok(
        whileDown.waiting.size > 0,
        `kill ${kill}: events wait while the broker is down (${whileDown.waiting.size})`,
      );
      await broker.start();
    }
    streaming = false;
    await stream;
    await allFinished(service.db, ids);
    await waitFor('every event published after the last restart', async () => (await marks()).waiting.size === 0, {
      timeoutMs: 60_000,
    });

    const events = await outboxEvents(service.db);
    const final = await marks();
    t.equal(events.length, ids.length, 'one event per order');
    t.equal(final.published.size, events.length, 'every outbox row marked published');
    t.equal(final.dead.size, 0);
    const records = await broker.readTopic(topic);
    const report = compareWithTopic(events, records);
    t.same(report.missing, [], 'every event is in the topic at least once (so every mark was an acknowledged write)');
    t.same(report.mismatched, [], 'records as the outbox rows');
    t.same(report.unknown, []);
    // Where duplicates come from: a send in flight at the kill that the broker appended but could not
    // acknowledge. The step failed, marked nothing, and the rows went again after the restart, under a
    // new producer id (@platformatic/kafka starts a new idempotent session after a failed send, so the
    // broker cannot recognise the resend). A row marked before the kill is never sent again.
    for (const [index, kill] of kills.entries()) {
      const resent = records
        .filter((record) => kill.markedBefore.has(record.headers['event-id'] ?? ''))
        .filter((record) => record.offset >= (kill.endOffsets.get(record.partition) ?? Number.POSITIVE_INFINITY))
        .map((record) => record.headers['event-id']);
      t.same(resent, [], `kill ${index + 1}: no event marked before the kill was sent again`);
    }
    t.ok(report.duplicated.length <= kills.length * BATCH_SIZE, 'duplicates are at most one step per kill');
    const extra = [...report.copies.values()].reduce((sum, n) => sum + n - 1, 0);
    t.comment(
      `${events.length} events, ${records.length} records: ${report.duplicated.length} events twice (${extra} extra records) after ${kills.length} kills with steps of ${BATCH_SIZE}`,
    );
    const recovered = service.logs.filter((line) => line.includes('kafka publishing recovered'));
    t.ok(recovered.length >= kills.length, `the same emitter recovered after each restart (${recovered.length} times)`);
  },
);

t.test('broker down at start, up later: the gateway starts, webhooks go out, Kafka catches up', async (t) => {
  const broker = await ownBroker(t, { startNow: false });
  const topic = topicName('late');
  const gateway = await gatewayWithSubscriber(t, broker.brokers, topic);
  const { service, subscriber } = gateway;
  const ids = await finishedOrders(gateway, 10, (i) => (i % 2 ? declined : visa));

  // The relay is not held up by the unreachable broker: every webhook arrives while it is down.
  await waitFor('every webhook delivered while Kafka is down', () => subscriber.received.length >= ids.length, {
    timeoutMs: 30_000,
  });
  t.notOk(broker.running(), 'the broker was down the whole time');
  const down = await kafkaMarks(service.db);
  t.equal(down.published.size, 0, 'nothing marked published while the broker is down');
  t.equal(down.waiting.size, ids.length);
  // A failed attempt ends after the producer's own retries (~1 s): wait for one to be counted.
  const metrics = await waitFor('a failed publish counted', async () => {
    const text = await (await fetch(`${service.url}/metrics`)).text();
    return /^kafka_publish_failures_total\{reason="broker_unavailable"\} [1-9]/m.test(text) && text;
  });
  t.match(metrics, new RegExp(`^outbox_events_unpublished ${ids.length}$`, 'm'), 'the backlog is visible');

  await broker.start();
  await broker.createTopic(topic);
  await waitFor('Kafka caught up', async () => (await kafkaMarks(service.db)).waiting.size === 0, {
    timeoutMs: 60_000,
  });
  const report = compareWithTopic(await outboxEvents(service.db), await broker.readTopic(topic));
  t.same(report.missing, []);
  t.same(report.duplicated, [], 'nothing reached the broker before it was up, so nothing twice');
  t.same(report.mismatched, []);
});
