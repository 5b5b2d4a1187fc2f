/**
 * What the Kafka tests share: a broker per test (or the one KAFKA_BROKERS names, for the tests
 * that do not kill it), orders through the provider sandbox, and the comparison of the outbox with
 * what Apache Kafka's own consumer reads back from the topic.
 */
import { randomUUID } from 'node:crypto';
import type { Test as TapTest, Test } from 'tap';
import type { Db } from '../../src/db/connection.ts';
import { toOutboxEvent } from '../../src/db/outbox-events.repository.ts';
import { eventBody, type OutboxEvent } from '../../src/domain/event-body.ts';
import { type ProcessingHarness, startProcessing } from '../helpers/processing.ts';
import type { ApiClient } from '../helpers/service.ts';
import { startSubscriber } from '../helpers/subscriber.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  type BrokerOptions,
  type ConsumedRecord,
  createTopic,
  type KafkaBroker,
  kafkaClasspath,
  readTopic,
  startKafkaBroker,
} from './broker.ts';

/** A broker of this test's own, destroyed (stopped, log deleted) at teardown. */
export async function ownBroker(t: Test, options: BrokerOptions = {}): Promise<KafkaBroker> {
  const broker = await startKafkaBroker(options);
  t.teardown(() => broker.destroy());
  return broker;
}

export type TopicHost = Readonly<{
  brokers: readonly string[];
  createTopic(name: string, options?: Parameters<KafkaBroker['createTopic']>[1]): Promise<void>;
  readTopic(topic: string): Promise<ConsumedRecord[]>;
}>;

/**
 * The broker for tests that leave it running: KAFKA_BROKERS when set (any Kafka-compatible broker;
 * the topic is still read with Apache Kafka's console consumer, so Java is needed either way),
 * else a broker of this test's own.
 */
export async function anyBroker(t: Test): Promise<TopicHost> {
  const external = process.env.KAFKA_BROKERS?.split(',').map((broker) => broker.trim());
  if (!external) return ownBroker(t);
  const [first] = external;
  if (!first) throw new Error('KAFKA_BROKERS is empty');
  const classpath = await kafkaClasspath();
  return {
    brokers: external,
    createTopic: (name, options) => createTopic(external, name, options),
    readTopic: (topic) => readTopic(classpath, first, topic),
  };
}

/** Every outbox row, oldest first, as the emitter reads them. */
export async function outboxEvents(db: Db): Promise<OutboxEvent[]> {
  const rows = await db.selectFrom('outbox_events').selectAll().orderBy('created_at').orderBy('id').execute();
  return rows.map(toOutboxEvent);
}

/** Outbox ids by Kafka state. */
export async function kafkaMarks(
  db: Db,
): Promise<{ published: Set<string>; dead: Map<string, string>; waiting: Set<string> }> {
  const rows = await db
    .selectFrom('outbox_events')
    .select(['id', 'kafka_published_at', 'kafka_dead_at', 'kafka_error'])
    .execute();
  return {
    published: new Set(rows.filter((row) => row.kafka_published_at !== null).map((row) => row.id)),
    dead: new Map(rows.filter((row) => row.kafka_dead_at !== null).map((row) => [row.id, row.kafka_error ?? ''])),
    waiting: new Set(
      rows.filter((row) => row.kafka_published_at === null && row.kafka_dead_at === null).map((row) => row.id),
    ),
  };
}

/** A topic name of this test's own (several test files share an external broker). */
export const topicName = (label: string) => `pog-test-${label}-${randomUUID().slice(0, 8)}`;

/** The environment that turns the emitter on, with short backoffs so that recovery is quick. */
export function kafkaEnv(brokers: readonly string[], topic: string): Record<string, string> {
  return {
    KAFKA_BROKERS: brokers.join(','),
    KAFKA_TOPIC: topic,
    // Retries at most 1 s apart (30 s in production), so that recovery after a restart is quick.
    KAFKA_RETRY_MAX_DELAY_MS: '1000',
    // The test services' pool of 5 (test/helpers/service.ts) is for services without Kafka: the
    // emitter holds a connection per step (for the broker's round trip), beside four order locks
    // and LISTEN (config.ts assertPoolLargeEnough), and the webhook sender needs some too.
    DATABASE_POOL_SIZE: '10',
  };
}

export const visa = { type: 'card', token: 'pm_card_visa' } as const;
export const declined = { type: 'card', token: 'pm_card_chargeDeclined' } as const;

/** Creates one order through the API; returns its id. */
export async function createOrder(
  api: ApiClient,
  paymentMethod: unknown = visa,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const currency = (paymentMethod as { type?: string }).type === 'mpesa' ? 'KES' : 'EUR';
  const res = await api.createOrder({ amount: 2500, currency, paymentMethod, ...extra });
  if (res.status !== 201) throw new Error(`POST /payment-orders answered ${res.status}: ${res.text}`);
  return res.body.id as string;
}

export type TopicReport = Readonly<{
  /** Event id → how many records carry it. */
  copies: ReadonlyMap<string, number>;
  missing: string[];
  duplicated: string[];
  /** Records whose key, value or headers differ from the outbox row they carry. */
  mismatched: string[];
  unknown: string[];
}>;

/** Compares the outbox rows with the topic's records: every event there, exactly as the webhook body. */
export function compareWithTopic(events: readonly OutboxEvent[], records: readonly ConsumedRecord[]): TopicReport {
  const byId = new Map(events.map((event) => [event.id, event]));
  const copies = new Map<string, number>();
  const mismatched: string[] = [];
  const unknown: string[] = [];
  for (const record of records) {
    const id = record.headers['event-id'] ?? '';
    const event = byId.get(id);
    if (!event) {
      unknown.push(id);
      continue;
    }
    copies.set(id, (copies.get(id) ?? 0) + 1);
    const same =
      record.key === event.orderId &&
      record.headers['event-type'] === event.type &&
      JSON.stringify(JSON.parse(record.value)) === JSON.stringify(eventBody(event));
    if (!same) mismatched.push(id);
  }
  return {
    copies,
    missing: events.filter((event) => !copies.has(event.id)).map((event) => event.id),
    duplicated: [...copies].filter(([, n]) => n > 1).map(([id]) => id),
    mismatched,
    unknown,
  };
}

/**
 * A processing gateway with the emitter on `topic`, and a webhook subscriber subscribed to every
 * event (so that a test can see the relay go on whatever Kafka does).
 */
export async function gatewayWithSubscriber(
  t: TapTest,
  brokers: readonly string[],
  topic: string,
  env: Record<string, string> = {},
): Promise<ProcessingHarness & { subscriber: Awaited<ReturnType<typeof startSubscriber>> }> {
  const subscriber = await startSubscriber(t);
  const harness = await startProcessing(t, {
    ...kafkaEnv(brokers, topic),
    WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
    ...env,
  });
  const res = await harness.api.request('POST', '/webhook-subscriptions', { body: { url: subscriber.url } });
  if (res.status !== 201) throw new Error(`POST /webhook-subscriptions answered ${res.status}: ${res.text}`);
  return { ...harness, subscriber };
}

/** `count` orders created one after another (`method(i)` pays for the i-th), all waited to the end. */
export async function finishedOrders(
  harness: ProcessingHarness,
  count: number,
  method: (i: number) => unknown = () => visa,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await createOrder(harness.api, method(i)));
  await allFinished(harness.service.db, ids);
  return ids;
}

/**
 * Waits until every order of `ids` is COMPLETED or FAILED, with one query per poll (hundreds of
 * GETs every 50 ms would load the gateway under test); on timeout, says where the rest stand.
 */
export async function allFinished(db: Db, ids: readonly string[], timeoutMs = 90_000): Promise<void> {
  const open = () =>
    db
      .selectFrom('payment_orders')
      .select(['id', 'status', 'processing_generation', 'next_attempt_at', 'updated_at'])
      .where('id', 'in', ids)
      .where('status', 'not in', ['COMPLETED', 'FAILED'])
      .execute();
  try {
    await waitFor('every order finished', async () => (await open()).length === 0, { timeoutMs, intervalMs: 200 });
  } catch (error) {
    const rows = await open();
    throw new Error(`${rows.length} of ${ids.length} orders not finished: ${JSON.stringify(rows.slice(0, 5))}`, {
      cause: error,
    });
  }
}
