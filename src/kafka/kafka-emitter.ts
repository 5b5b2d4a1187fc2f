import { setTimeout as sleep } from 'node:timers/promises';
import { ProduceAcks, Producer, stringSerializers } from '@platformatic/kafka';
import type { Db } from '../db/connection.ts';
import type { Notifications } from '../db/notifications.ts';
import {
  markDeadLettered,
  markPublished,
  OUTBOX_CHANNEL,
  takeUnpublishedEvents,
} from '../db/outbox-events.repository.ts';
import type { OutboxEvent } from '../domain/event-body.ts';
import { type Backoff, backoffDelay } from '../lib/backoff.ts';
import type { Logger } from '../lib/logger.ts';
import { createWakeSignal, type WakeSignal } from '../lib/wake-signal.ts';
import { eventRecord } from './event-record.ts';

/**
 * The Kafka emitter: publishes every committed outbox event to one topic, at least once.
 *
 * Configuration (read by config.ts, passed in by main.ts; the emitter is off unless KAFKA_BROKERS
 * is set): KAFKA_BROKERS (comma-separated host:port), KAFKA_TOPIC (default `payment-orders.events`),
 * KAFKA_CLIENT_ID (default `payment-order-gateway`).
 *
 * Its progress is its own mark on each outbox row (`kafka_published_at`), independent of the
 * webhook relay's. One step, in one transaction:
 *
 *   take the publisher lock, select the oldest unmarked rows → send them, await the brokers' ack
 *   → mark exactly those rows → commit
 *
 * - If the send fails (broker down, refused, timed out, topic missing), nothing it did not
 *   acknowledge is marked; the rows are taken again after a backoff (exponential, jittered,
 *   capped). Nothing is ever dropped.
 * - If the broker rejects records for good (a record over the topic's max.message.bytes, an
 *   invalid record), the batch is split in halves and sent again, until the refused record is
 *   alone; that event is set aside (`kafka_dead_at`, with the broker's error in `kafka_error`),
 *   counted (`kafka_events_dead_lettered_total`) and logged at error level, and the events after
 *   it go on. Before, the emitter retried the same oldest batch for ever and nothing after it was
 *   published. A missing topic is not a record's fault (every event goes to that topic): it is
 *   retried with backoff, counted as `reason="topic_missing"`, and logged at error level.
 * - At least once: a crash (or a lost commit) after Kafka acknowledged and before the commit leaves
 *   the rows unmarked, and they are sent again. Consumers dedupe on the event id.
 * - One publisher at a time across instances: a step holds a transaction-level advisory lock, and
 *   an instance that cannot take it publishes nothing this time. Rows are read without row locks,
 *   so the webhook relay, which locks the same rows to mark its own column, is never held up by a
 *   slow or unreachable broker. The step's transaction and one pool connection stay open for the
 *   broker round-trip (bounded by the producer's timeout and retries below); that is what makes
 *   "marked" mean "acknowledged" with no intermediate state.
 * - Pool connections: one per step (the process's notifications connection is shared).
 */
export type KafkaEmitterOptions = Readonly<{
  db: Db;
  notifications: Notifications;
  brokers: string[];
  topic: string;
  clientId: string;
  logger: Logger;
  metrics?: KafkaMetrics;
  /** Rows per step (default 100). */
  batchSize?: number;
  /** Retry delays after a failed step (default 500 ms doubling up to 30 s, jittered). */
  backoff?: Backoff;
}>;

/** The emitter's own counters (src/metrics/metrics.ts); the backlog gauges are the database's. */
export type KafkaMetrics = Readonly<{
  kafkaPublished: { inc(value?: number): void };
  kafkaPublishFailures: { inc(labels: { reason: FailureReason }): void };
  kafkaDeadLettered: { inc(value?: number): void };
}>;

export type KafkaEmitter = { stop(): Promise<void> };

const DEFAULT_BATCH_SIZE = 100;
const DEFAULT_BACKOFF: Backoff = { baseMs: 500, maxMs: 30_000 };
/** NOTIFY is an optimisation: a notification lost while the listener reconnects costs ≤ 1 s. */
const POLL_INTERVAL_MS = 1_000;

export async function startKafkaEmitter(options: KafkaEmitterOptions): Promise<KafkaEmitter> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  if (options.brokers.length === 0) throw new Error('the Kafka emitter needs at least one broker');
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`bad Kafka batch size ${batchSize}`);
  const logger = options.logger.child({ component: 'kafka-emitter' });
  const stopping = new AbortController();
  const wake = createWakeSignal();
  await options.notifications.subscribe(OUTBOX_CHANNEL, wake.notify);
  const producer = createProducer(options.brokers, options.clientId);
  const send = (events: readonly OutboxEvent[]) =>
    producer.send({ messages: events.map((event) => eventRecord(event, options.topic)) }).then(() => {});
  const publish = () => publishStep(options.db, send, batchSize, logger, options.metrics);
  const loop = runLoop(publish, {
    batchSize,
    backoff,
    logger,
    wake,
    signal: stopping.signal,
    metrics: options.metrics,
  });
  logger.info({ brokers: options.brokers, topic: options.topic }, 'kafka emitter started');

  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        stopping.abort();
        wake.notify();
        // Closing the producer fails a send in flight (and its retries) at once; that step rolls
        // back and its rows are sent again by the next run: at least once, nothing lost.
        await producer.close(true).catch((error: unknown) => logger.warn({ err: error }, 'closing the producer'));
        await loop;
        logger.info('kafka emitter stopped');
      })();
      return stopped;
    },
  };
}

/** The emitter's producer (exported for bench:kafka's "producer alone" row, so that it cannot drift). */
export function createProducer(brokers: string[], clientId: string): Producer<string, string, string, string> {
  return new Producer({
    clientId,
    bootstrapBrokers: brokers,
    serializers: stringSerializers,
    // Idempotent: the broker drops the duplicates of the producer's own retries (one in-flight
    // request per connection, sequence numbers), and needs acks = all: every in-sync replica has
    // the record before send() resolves.
    idempotent: true,
    acks: ProduceAcks.ALL,
    // An idempotent producer otherwise retries forever inside send() (retries ≤ 1 is turned into
    // Number.MAX_SAFE_INTEGER), which would hold the step's transaction open while the broker is
    // down. A few quick retries cover a leader change; beyond that send() fails, the step rolls
    // back, and the emitter's own backoff takes over.
    retries: 3,
    retryDelay: 250,
    // Compression is left off: a record is one small JSON document and batches are ≤ batchSize.
  });
}

export type SendEvents = (events: readonly OutboxEvent[]) => Promise<void>;

/** What one step did; `failure` is a send error that ended it (after its successes were marked). */
export type StepOutcome = Readonly<{ published: number; deadLettered: number; failure?: unknown }>;

/**
 * One step, in one transaction: takes up to `limit` unpublished events, sends them (splitting
 * around records the broker rejects), marks what the broker acknowledged and sets aside what it
 * refused, and commits. A send that fails otherwise ends the step: what was acknowledged before it
 * is still marked (so it is not sent twice), the rest stays unmarked, and the loop backs off.
 */
export async function publishStep(
  db: Db,
  send: SendEvents,
  limit: number,
  logger: Logger,
  metrics?: KafkaMetrics,
): Promise<StepOutcome> {
  const outcome = await db.transaction().execute(async (trx) => {
    const events = await takeUnpublishedEvents(trx, limit);
    if (events.length === 0) return { published: [], dead: [] } satisfies SendOutcome;
    const sent = await sendSplittingRejects(send, events);
    // A crash here, after the ack and before the commit, sends these rows again: at least once.
    await markPublished(
      trx,
      sent.published.map((event) => event.id),
    );
    await markDeadLettered(trx, sent.dead);
    return sent;
  });
  for (const { event, error } of outcome.dead) {
    logger.error(
      { eventId: event.id, eventType: event.type, orderId: event.orderId, brokerError: error },
      'kafka broker rejected an event for good; set aside (kafka_dead_at), later events go on',
    );
  }
  metrics?.kafkaPublished.inc(outcome.published.length);
  if (outcome.dead.length > 0) metrics?.kafkaDeadLettered.inc(outcome.dead.length);
  return { published: outcome.published.length, deadLettered: outcome.dead.length, failure: outcome.failure };
}

type DeadLetter = Readonly<{ event: OutboxEvent; error: string }>;
type SendOutcome = Readonly<{ published: OutboxEvent[]; dead: DeadLetter[]; failure?: unknown }>;

/**
 * Sends `events`; when the broker rejects records of a batch for good, sends each half on its own,
 * down to single records: a batch can be refused as a whole (Kafka applies max.message.bytes to a
 * record batch) while each of its records would pass. A single refused record is dead. Halves go
 * in order, so events of one order keep their order. Any other failure stops here.
 */
export async function sendSplittingRejects(send: SendEvents, events: readonly OutboxEvent[]): Promise<SendOutcome> {
  const published: OutboxEvent[] = [];
  const dead: DeadLetter[] = [];
  const pending: (readonly OutboxEvent[])[] = [events];
  for (let batch = pending.shift(); batch !== undefined; batch = pending.shift()) {
    try {
      await send(batch);
      published.push(...batch);
    } catch (error) {
      const rejection = recordRejection(error);
      if (rejection === null) return { published, dead, failure: error };
      const [first] = batch;
      if (batch.length === 1 && first) dead.push({ event: first, error: rejection });
      else {
        const half = Math.ceil(batch.length / 2);
        pending.unshift(batch.slice(0, half), batch.slice(half));
      }
    }
  }
  return { published, dead };
}

/**
 * Kafka protocol errors that mean "this record (or batch) will never be accepted as it is": sending
 * it again cannot succeed. Everything else (network, timeouts, leadership changes, a missing topic,
 * authorisation) may pass later and is retried.
 */
const RECORD_REJECTIONS = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'INVALID_TIMESTAMP',
]);

/** The broker's reason when `error` (from @platformatic/kafka, possibly nested) is a record rejection. */
export function recordRejection(error: unknown): string | null {
  const found = findError(error, (candidate) => RECORD_REJECTIONS.has(String(candidate.apiId)));
  if (!found) return null;
  const detail = typeof found.serverErrorMessage === 'string' ? `: ${found.serverErrorMessage}` : '';
  return `${String(found.apiId)} (${String(found.message)})${detail}`;
}

export type FailureReason = 'topic_missing' | 'broker_unavailable' | 'other';

/** A bounded label for a failed step, for the failures counter and the log. */
export function failureReason(error: unknown): FailureReason {
  const missing = (candidate: ErrorLike) =>
    candidate.apiId === 'UNKNOWN_TOPIC_OR_PARTITION' || /^Unknown topic /.test(String(candidate.message));
  if (findError(error, missing)) return 'topic_missing';
  const network = (candidate: ErrorLike) =>
    candidate.code === 'PLT_KFK_NETWORK' ||
    /connect to any broker|ECONNREFUSED|timed? ?out/i.test(String(candidate.message));
  if (findError(error, network)) return 'broker_unavailable';
  return 'other';
}

type ErrorLike = Readonly<Record<string, unknown>>;

/** Depth-first through AggregateError-style `errors` (the client nests them) and `cause`. */
function findError(error: unknown, matches: (candidate: ErrorLike) => boolean, depth = 0): ErrorLike | null {
  if (typeof error !== 'object' || error === null || depth > 8) return null;
  const candidate = error as ErrorLike;
  if (matches(candidate)) return candidate;
  const nested = [...(Array.isArray(candidate.errors) ? candidate.errors : []), candidate.cause];
  for (const inner of nested) {
    const found = findError(inner, matches, depth + 1);
    if (found) return found;
  }
  return null;
}

type LoopContext = Readonly<{
  metrics?: KafkaMetrics;
  batchSize: number;
  backoff: Backoff;
  logger: Logger;
  wake: WakeSignal;
  signal: AbortSignal;
}>;

async function runLoop(publish: () => Promise<StepOutcome>, context: LoopContext): Promise<void> {
  const { signal, logger } = context;
  let failures = 0;
  while (!signal.aborted) {
    let failure: unknown;
    let taken = 0;
    try {
      const step = await publish();
      failure = step.failure;
      taken = step.published + step.deadLettered;
      if (taken > 0) logger.debug({ published: step.published, deadLettered: step.deadLettered }, 'kafka step');
    } catch (error) {
      // The step's transaction itself failed (the database): nothing was marked.
      failure = error;
    }
    if (failure === undefined) {
      if (failures > 0) logger.info({ failedAttempts: failures }, 'kafka publishing recovered');
      failures = 0;
      // A full batch means more may be waiting: go again at once.
      if (taken < context.batchSize) await context.wake.wait(POLL_INTERVAL_MS);
      continue;
    }
    if (signal.aborted) break;
    failures += 1;
    const reason = failureReason(failure);
    context.metrics?.kafkaPublishFailures.inc({ reason });
    const retryInMs = backoffDelay(failures, context.backoff);
    // A missing topic is a configuration error that waiting alone will not fix: say so loudly.
    const level = reason === 'topic_missing' ? 'error' : 'warn';
    logger[level](
      { err: failure, reason, attempt: failures, retryInMs },
      'kafka publish failed; nothing unacknowledged marked published, will retry',
    );
    await sleep(retryInMs, undefined, { signal }).catch(() => {});
  }
}
