// `npm run bench:kafka`: how fast does the gateway's Kafka emitter move committed outbox events to a
// real Apache Kafka broker, how soon after the commit does a consumer have one, and how do those
// figures stand beside the webhook relay's on the same machine and beside Kafka's own producer?
//
// One Apache Kafka broker (test/kafka/broker.ts: Kafka 4.2.2 from Maven jars, KRaft, loopback), a
// topic of BENCH_KAFKA_PARTITIONS (default 3, as compose.yaml) partitions, and one gateway (child
// process, WORKER_CONCURRENCY=0 and WEBHOOK_CONCURRENCY=0: the emitter is the only thing moving
// events) with KAFKA_BROKERS/KAFKA_TOPIC set and KAFKA_BATCH_SIZE (default 100) passed through. A
// @platformatic/kafka Consumer runs in a second child process (this file with --consumer), reads
// the topic from its start, stamps each record on arrival (performance.timeOrigin +
// performance.now(), as the bench stamps its commits: one machine, one clock) and reports
// (event-id header, time, sizes) over IPC. Events are committed as bench:relay commits them
// (support.ts commitEvents: COMPLETED orders from newOrder and their outbox rows, payload orderJson).
//   0. warm-up: BENCH_WARMUP_EVENTS (default 5) events one at a time, not measured;
//   1. idle: BENCH_IDLE_EVENTS (default 50) events one at a time, each once the previous one was
//      consumed (and 50 ms later): commit returned → record consumed, p50/p99;
//   2. backlog: BENCH_EVENTS (default 5000) events committed as fast as one connection can, in
//      transactions of BENCH_BATCH (default 100), while the emitter runs: events/s = events / (last
//      first arrival − first commit), and commit → consumed p50/p99 under that backlog;
//   3. drain: the gateway stopped, BENCH_EVENTS more committed, a new gateway started: events /
//      (gateway ready → no unmarked outbox row, polled every MARK_POLL_MS) — the pure drain rate
//      (ready: /healthz answered, or the emitter's first step began if that was earlier);
//   4. the emitter's producer alone: the drain's records (src/kafka/event-record.ts) sent by a
//      Producer with the emitter's settings, KAFKA_BATCH_SIZE per send, one send at a time, no
//      database: what the emitter's steps would reach if their database work cost nothing;
//   5. ceiling: Apache Kafka's org.apache.kafka.tools.ProducerPerformance, BENCH_CEILING_RECORDS
//      (default 50,000) records of the average event JSON size measured in 1-3, acks=all,
//      idempotent, unthrottled, on a topic set up as ours; its summary line parsed;
//   6. the webhook relay: bench/relay.ts measureRelay (warm-up, idle, backlog of BENCH_EVENTS) on a
//      fresh database of the same server, with the broker and consumer stopped (BENCH_RELAY=0 skips it).
// The database's kafka_published_at (each step's transaction start) splits the emitter's time into
// steps; CPU use per process over 2 and 3 is read from /proc. At the end every outbox row must have
// kafka_published_at and the consumer must have seen every event id (duplicates are counted).
// Exits 1 only if an event did not arrive by its deadline (BENCH_DEADLINE_SECONDS, default 300, for
// backlog and drain; 30 s per event otherwise). Database as in the other benches: a fresh one on
// DATABASE_URL's server, or a temporary embedded PostgreSQL; everything stopped and dropped at the end.
// Ctrl-C ends the current phase and prints what was measured (the database and the broker get the
// signal too, so the database's part of the report may be missing); a second Ctrl-C quits at once.
import { execFile, fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Consumer, MessagesStreamModes, stringDeserializers } from '@platformatic/kafka';
import type pg from 'pg';
import { createPool } from '../src/db/connection.ts';
import { freePort } from '../src/db/embedded-postgres.ts';
import { toOutboxEvent } from '../src/db/outbox-events.repository.ts';
import { eventRecord } from '../src/kafka/event-record.ts';
import { createProducer } from '../src/kafka/kafka-emitter.ts';
import { type KafkaBroker, kafkaClasspath, startKafkaBroker } from '../test/kafka/broker.ts';
import { measureRelay, type RelayPhaseFigures } from './relay.ts';
import {
  type ArrivalLog,
  type Cleanup,
  type CpuUse,
  commitEvents,
  cpuSnapshot,
  cpuUse,
  createArrivalLog,
  createBenchDatabase,
  createMerchant,
  formatTable,
  idleEvents,
  interrupted,
  nowMs,
  percentile,
  positiveInteger,
  positiveNumber,
  ROOT,
  runCleanups,
  type ServiceProcess,
  sleep,
  spawnService,
  startDatabaseServer,
  stopForked,
  stopOnCtrlC,
  warmUp,
} from './support.ts';

const run = promisify(execFile);
const CONSUMER_FLAG = '--consumer';

const EVENTS = positiveInteger('BENCH_EVENTS', 5000);
const IDLE_EVENTS = positiveInteger('BENCH_IDLE_EVENTS', 50);
const WARMUP_EVENTS = positiveInteger('BENCH_WARMUP_EVENTS', 5);
const BATCH = positiveInteger('BENCH_BATCH', 100);
const PARTITIONS = positiveInteger('BENCH_KAFKA_PARTITIONS', 3);
/** The gateway's own knob (rows per publishing step), passed through; 100 is its default too. */
const KAFKA_BATCH_SIZE = positiveInteger('KAFKA_BATCH_SIZE', 100);
/**
 * ProducerPerformance's figure grows with its run while the JVM warms up: 556-byte records on this
 * machine (2 CPUs, load average ~10) gave 1,400/s for 5,000 records, 4,200/s for 50,000 and
 * 11,800/s for 200,000 (20 s); at load ~5, 50,000 gave 11,000-11,800/s in 4-5 s. 50,000 keeps
 * the run short; a larger count may give a higher ceiling.
 */
const CEILING_RECORDS = positiveInteger('BENCH_CEILING_RECORDS', 50_000);
const WITH_RELAY = process.env.BENCH_RELAY !== '0';
const DEADLINE_MS = positiveNumber('BENCH_DEADLINE_SECONDS', process.env.BENCH_DEADLINE_SECONDS, 300) * 1000;
/** The drain's end is seen by polling the unmarked count (the partial index makes it cheap). */
const MARK_POLL_MS = 20;
/** Before the gateway is stopped, how long the last marks may take to appear. */
const SETTLE_TIMEOUT_MS = 30_000;
const CONSUMER_START_TIMEOUT_MS = 60_000;
const CONSUMER_STOP_TIMEOUT_MS = 5_000;
const CEILING_TIMEOUT_MS = 180_000;
const PROGRESS_EVERY_MS = 5_000;
const LOG4J_CONFIG = path.join(ROOT, 'test', 'kafka', 'log4j2.properties');

// ---------------------------------------------------------------------------------------------
// The consumer (child process)

type Consumed = [eventId: string, atMs: number, valueBytes: number, keyAndHeaderBytes: number];
type FromConsumer = { type: 'ready' } | { type: 'consumed'; records: Consumed[] };

/** Reads `topic` from its start in a group of its own; reports (event-id, arrival, sizes) to the parent. */
async function runConsumer(broker: string, topic: string): Promise<void> {
  const consumer = new Consumer({
    clientId: 'pog-bench-consumer',
    groupId: `pog-bench-${randomUUID()}`,
    bootstrapBrokers: [broker],
    deserializers: stringDeserializers,
  });
  const buffer: Consumed[] = [];
  let scheduled = false;
  const send = (message: FromConsumer) => {
    if (process.connected) process.send?.(message);
  };
  // Batched per event loop turn: under load one IPC message carries many records.
  const flush = () => {
    scheduled = false;
    if (buffer.length > 0) send({ type: 'consumed', records: buffer.splice(0) });
  };
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    flush();
    setTimeout(() => process.exit(0), 2_000).unref(); // a close that hangs must not keep it alive
    void consumer
      .close(true)
      .catch(() => {})
      .finally(() => process.exit(0));
  };
  // Ctrl-C reaches the whole process group: the parent decides when this process stops.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', stop);
  process.on('disconnect', stop); // the parent is gone
  process.on('message', (message) => {
    if (message === 'stop') stop();
  });
  // From the topic's start, no offsets committed: nothing produced before the assignment is missed.
  const stream = await consumer.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST, autocommit: false });
  stream.on('data', (message) => {
    const at = nowMs();
    let headerBytes = 0;
    for (const [name, value] of message.headerEntries)
      headerBytes += Buffer.byteLength(name) + Buffer.byteLength(value);
    buffer.push([
      message.headers.get('event-id') ?? '',
      at,
      Buffer.byteLength(message.value ?? ''),
      Buffer.byteLength(message.key ?? '') + headerBytes,
    ]);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  });
  stream.on('error', (error: unknown) => {
    process.stderr.write(`[consumer] ${String(error)}\n`);
    stop();
  });
  send({ type: 'ready' });
}

type KafkaConsumer = Readonly<{
  pid: number | undefined;
  log: ArrivalLog;
  /** Records consumed so far, and their value and key + header bytes in all. */
  sizes(): Readonly<{ records: number; valueBytes: number; keyAndHeaderBytes: number }>;
  stop(): Promise<void>;
}>;

async function startConsumer(broker: string, topic: string, cleanups: Cleanup[]): Promise<KafkaConsumer> {
  const child = fork(fileURLToPath(import.meta.url), [CONSUMER_FLAG, broker, topic], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(`exited with ${signal ?? code}`));
    child.once('error', (error) => resolve(`failed: ${error.message}`));
  });
  const stop = () => stopForked(child, exited, CONSUMER_STOP_TIMEOUT_MS);
  cleanups.push(stop);
  const log = createArrivalLog();
  const sizes = { records: 0, valueBytes: 0, keyAndHeaderBytes: 0 };
  child.on('message', (message: FromConsumer) => {
    if (message.type !== 'consumed') return;
    for (const [id, at, valueBytes, keyAndHeaderBytes] of message.records) {
      log.record(id, at);
      sizes.records++;
      sizes.valueBytes += valueBytes;
      sizes.keyAndHeaderBytes += keyAndHeaderBytes;
    }
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`consumer not ready within ${CONSUMER_START_TIMEOUT_MS} ms`)),
      CONSUMER_START_TIMEOUT_MS,
    );
    child.on('message', (message: FromConsumer) => {
      if (message.type !== 'ready') return;
      clearTimeout(timer);
      resolve();
    });
    void exited.then((reason) => {
      clearTimeout(timer);
      reject(new Error(`consumer ${reason}`));
    });
  });
  return { pid: child.pid, log, sizes: () => ({ ...sizes }), stop };
}

// ---------------------------------------------------------------------------------------------
// Main

type Phase = Readonly<{
  name: string;
  ids: string[];
  /** When COMMIT returned, per event; the drain's commits are before the gateway started. */
  commitMs: Map<string, number>;
  /** Events not consumed by the deadline. */
  missing: number;
  /** The span events/s is computed over; null for the idle phase or if some did not arrive. */
  spanMs: number | null;
  /** Backlog: first commit; drain: the gateway ready (healthy seen, or its first step if that was earlier). */
  startMs: number;
  /** Drain: when the bench saw the new gateway healthy. */
  healthyMs: number | null;
  /** Backlog: how long committing took. */
  produceMs: number | null;
  cpu: CpuUse | null;
}>;

type Rates = Readonly<{ perSecond: number | null; latenciesMs: number[] }>;

async function main(): Promise<void> {
  stopOnCtrlC('stopping the current phase');
  const cleanups: Cleanup[] = [];
  const loadBefore = loadavg()[0] ?? 0;
  try {
    const server = await startDatabaseServer();
    cleanups.push(server.stop);
    const database = await createBenchDatabase(server.adminUrl);
    cleanups.push(database.drop);

    const classpath = await kafkaClasspath();
    const broker = await startKafkaBroker();
    cleanups.push(() => broker.destroy());
    const topic = `bench-events-${randomBytes(4).toString('hex')}`;
    await broker.createTopic(topic, { partitions: PARTITIONS });
    const consumer = await startConsumer(broker.address, topic, cleanups);

    let gateway = await startGateway(database.url, broker.address, topic, 'gateway');
    cleanups.push(gateway.stop);
    await gateway.ready; // migrated, emitter running
    const merchant = await createMerchant(database.url);
    const pool = createPool(database.url, 2, 'bench-kafka');
    cleanups.push(() => pool.end());

    const version = (await pool.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v;
    process.stdout.write(
      `Apache Kafka ${await kafkaVersion(classpath)} (one KRaft broker, ${broker.address}), topic of ${PARTITIONS} partitions; ` +
        `PostgreSQL ${version} (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'}); ${availableParallelism()} CPUs, ` +
        `load average ${loadBefore.toFixed(2)}; one gateway (WORKER_CONCURRENCY=0, WEBHOOK_CONCURRENCY=0, ` +
        `KAFKA_BATCH_SIZE=${KAFKA_BATCH_SIZE}); consumer in its own process\n`,
    );

    const phases: Phase[] = [];
    await warmUp(pool, merchant.id, consumer.log, WARMUP_EVENTS);
    phases.push(await runIdle(pool, merchant.id, consumer.log));
    if (!interrupted()) phases.push(await runBacklog(pool, merchant.id, consumer, gateway));
    if (!interrupted()) {
      await waitUntilAllMarked(pool, SETTLE_TIMEOUT_MS);
      await gateway.stop();
      const drain = await unlessInterrupted(() =>
        runDrain(pool, merchant.id, consumer, async () => {
          const next = await startGateway(database.url, broker.address, topic, 'gateway-2');
          cleanups.push(next.stop);
          return next;
        }),
      );
      if (drain) {
        gateway = drain.gateway;
        phases.push(drain.phase);
        await waitUntilAllMarked(pool, SETTLE_TIMEOUT_MS);
      }
    }
    await gateway.stop();

    const steps = new Map<string, StepStats>();
    for (const phase of phases.slice(1)) {
      const stats = await unlessInterrupted(() => stepStats(pool, phase.ids));
      if (stats) steps.set(phase.name, stats);
    }
    const check = await unlessInterrupted(() => verify(pool, consumer.log));
    const sizes = consumer.sizes();
    await consumer.stop();
    const recordSize = Math.max(1, Math.round(sizes.valueBytes / Math.max(1, sizes.records)));

    const drainIds = phases.find((phase) => phase.name === DRAIN)?.ids ?? [];
    const alone = interrupted() || drainIds.length === 0 ? null : await producerAlone(pool, broker, drainIds);
    const ceiling = interrupted() ? null : await producerPerformance(classpath, broker, recordSize);
    await broker.destroy(); // the relay runs on a machine as quiet as bench:relay's

    let relay: RelayPhaseFigures[] = [];
    if (WITH_RELAY && !interrupted()) {
      const relayDatabase = await createBenchDatabase(server.adminUrl);
      cleanups.push(relayDatabase.drop);
      process.stdout.write('webhook relay, as bench:relay measures it:\n');
      relay = await measureRelay(relayDatabase.url);
    }

    printSummary({
      phases,
      consumer: consumer.log,
      steps,
      check,
      sizes,
      recordSize,
      alone,
      ceiling,
      relay,
      loadBefore,
    });
    if (interrupted()) {
      process.stdout.write('interrupted: the phases above may be incomplete\n');
      process.exitCode = 130;
    } else {
      const missing = phases.some((phase) => phase.missing > 0) || relay.some((phase) => phase.missing > 0);
      process.exitCode = missing ? 1 : 0;
    }
  } finally {
    await runCleanups(cleanups);
  }
}

/**
 * `work`'s result; after Ctrl-C its failure is null instead: Ctrl-C reaches the whole process group,
 * so the embedded PostgreSQL and the broker shut down too, and what is left is printed from memory.
 */
async function unlessInterrupted<T>(work: () => Promise<T>): Promise<T | null> {
  try {
    return await work();
  } catch (error) {
    if (interrupted()) return null;
    throw error;
  }
}

async function startGateway(databaseUrl: string, broker: string, topic: string, name: string): Promise<ServiceProcess> {
  return spawnService(
    {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      DEMO_MERCHANT: 'false',
      WORKER_CONCURRENCY: '0',
      WEBHOOK_CONCURRENCY: '0',
      KAFKA_BROKERS: broker,
      KAFKA_TOPIC: topic,
      KAFKA_BATCH_SIZE: String(KAFKA_BATCH_SIZE),
    },
    name,
  );
}

/** The version in the classpath's kafka-clients jar name (kafka-clients-4.2.2.jar). */
async function kafkaVersion(classpath: string): Promise<string> {
  const jars = await readdir(path.dirname(classpath)).catch(() => []);
  const clients = jars.find((name) => /^kafka-clients-.*\.jar$/.test(name));
  return clients?.slice('kafka-clients-'.length, -'.jar'.length) ?? '(unknown version)';
}

// ---------------------------------------------------------------------------------------------
// Phases

const IDLE = 'idle, one at a time';
const BACKLOG = 'backlog, committed while it runs';
const DRAIN = 'drain, committed before start';

async function runIdle(pool: pg.Pool, merchantId: string, log: ArrivalLog): Promise<Phase> {
  const { ids, commitMs, missing } = await idleEvents(pool, merchantId, log, IDLE_EVENTS);
  const startMs = Math.min(...commitMs.values());
  return { name: IDLE, ids, commitMs, missing, spanMs: null, startMs, healthyMs: null, produceMs: null, cpu: null };
}

async function runBacklog(
  pool: pg.Pool,
  merchantId: string,
  consumer: KafkaConsumer,
  gateway: ServiceProcess,
): Promise<Phase> {
  const ids: string[] = [];
  const commitMs = new Map<string, number>();
  const pids = [process.pid, gateway.pid, consumer.pid];
  const cpuBefore = cpuSnapshot(pids);
  const started = nowMs();
  while (ids.length < EVENTS && !interrupted()) {
    const committed = await commitEvents(pool, merchantId, Math.min(BATCH, EVENTS - ids.length));
    for (const id of committed.ids) {
      ids.push(id);
      commitMs.set(id, committed.committedAtMs);
    }
  }
  const produceMs = nowMs() - started;
  process.stdout.write(
    `  kafka backlog: ${ids.length} events committed in ${(produceMs / 1000).toFixed(2)} s ` +
      `(${Math.round(ids.length / (produceMs / 1000))} events/s, ${BATCH} per transaction); waiting for the consumer\n`,
  );
  const firstCommit = Math.min(...commitMs.values());
  const missing = await waitForAll(consumer.log, ids, firstCommit, 'kafka backlog');
  const cpu = cpuUse(cpuBefore, cpuSnapshot(pids));
  return {
    name: BACKLOG,
    ids,
    commitMs,
    missing,
    spanMs: missing === 0 && ids.length > 0 ? lastArrival(consumer.log, ids) - firstCommit : null,
    startMs: firstCommit,
    healthyMs: null,
    produceMs,
    cpu,
  };
}

/**
 * BENCH_EVENTS committed while no gateway runs, then a gateway started: from the moment it is ready
 * to the moment no outbox row is unmarked. Ready = /healthz answered, as the bench sees it (polled
 * every 100 ms) — unless the emitter's first step began earlier (it starts right after the HTTP
 * server listens, so it often does): then that step's start (its kafka_published_at).
 */
async function runDrain(
  pool: pg.Pool,
  merchantId: string,
  consumer: KafkaConsumer,
  start: () => Promise<ServiceProcess>,
): Promise<{ phase: Phase; gateway: ServiceProcess }> {
  const ids: string[] = [];
  const commitMs = new Map<string, number>();
  while (ids.length < EVENTS && !interrupted()) {
    const committed = await commitEvents(pool, merchantId, Math.min(BATCH, EVENTS - ids.length));
    for (const id of committed.ids) {
      ids.push(id);
      commitMs.set(id, committed.committedAtMs);
    }
  }
  process.stdout.write(`  kafka drain: ${ids.length} events committed with no gateway running; starting one\n`);
  const gateway = await start();
  await gateway.ready;
  const healthyMs = nowMs();
  const pids = [process.pid, gateway.pid, consumer.pid];
  const cpuBefore = cpuSnapshot(pids);
  const markedMs = await waitUntilAllMarked(pool, DEADLINE_MS);
  const cpu = cpuUse(cpuBefore, cpuSnapshot(pids));
  const firstStep = await firstMarkMs(pool, ids);
  const readyMs = firstStep === null ? healthyMs : Math.min(healthyMs, firstStep);
  const missing = await waitForAll(consumer.log, ids, readyMs, 'kafka drain');
  return {
    gateway,
    phase: {
      name: DRAIN,
      ids,
      commitMs,
      missing,
      spanMs: markedMs !== null ? markedMs - readyMs : null,
      startMs: readyMs,
      healthyMs,
      produceMs: null,
      cpu,
    },
  };
}

/** select min(kafka_published_at) from outbox_events where id = any($1), in ms since the epoch */
async function firstMarkMs(pool: pg.Pool, ids: readonly string[]): Promise<number | null> {
  const { rows } = await pool.query<{ at_ms: string | null }>(
    'select extract(epoch from min(kafka_published_at)) * 1000 as at_ms from outbox_events where id = any($1)',
    [ids],
  );
  const at = rows[0]?.at_ms;
  return at === null || at === undefined ? null : Number(at);
}

/** Waits (to `startMs` + DEADLINE_MS) until the consumer has every id; returns how many it has not. */
async function waitForAll(log: ArrivalLog, ids: readonly string[], startMs: number, what: string): Promise<number> {
  const deadline = startMs + DEADLINE_MS;
  let all = false;
  while (!all && !interrupted() && nowMs() < deadline) {
    all = await log.waitFor(ids, Math.min(PROGRESS_EVERY_MS, Math.max(0, deadline - nowMs())));
    if (!all && !interrupted()) {
      const consumed = ids.filter((id) => log.firstMs(id) !== undefined).length;
      process.stdout.write(
        `  ${what}: ${consumed} of ${ids.length} consumed after ${((nowMs() - startMs) / 1000).toFixed(1)} s\n`,
      );
    }
  }
  return ids.filter((id) => log.firstMs(id) === undefined).length;
}

function lastArrival(log: ArrivalLog, ids: readonly string[]): number {
  return Math.max(...ids.map((id) => log.firstMs(id) ?? 0));
}

/**
 * Polls until no outbox row waits for Kafka; returns when that was seen (null on timeout or Ctrl-C).
 *
 *   select count(*) from outbox_events where kafka_published_at is null and kafka_dead_at is null
 *
 * Served by the partial index the emitter reads by (sql/009), so a poll every MARK_POLL_MS costs
 * the emitter little.
 */
async function waitUntilAllMarked(pool: pg.Pool, timeoutMs: number): Promise<number | null> {
  const deadline = nowMs() + timeoutMs;
  while (!interrupted() && nowMs() < deadline) {
    const { rows } = await pool.query<{ n: number }>(
      'select count(*)::int as n from outbox_events where kafka_published_at is null and kafka_dead_at is null',
    );
    if ((rows[0]?.n ?? 1) === 0) return nowMs();
    await sleep(MARK_POLL_MS);
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// What the database says about the emitter's steps

type StepStats = Readonly<{
  /** Steps (distinct kafka_published_at: each step marks its rows with its transaction's start). */
  steps: number;
  rowsPerStep: number[];
  /** Start → next start of steps that took a full batch (the emitter goes again at once after one). */
  fullStepMs: number[];
  /** First step start → last step start, and the last step's start. */
  firstStepMs: number | null;
  lastStepMs: number | null;
}>;

/** select kafka_published_at, count(*) from outbox_events where id = any($1) group by 1 order by 1 */
async function stepStats(pool: pg.Pool, ids: readonly string[]): Promise<StepStats> {
  const { rows } = await pool.query<{ at_ms: string; n: number }>(
    `select extract(epoch from kafka_published_at) * 1000 as at_ms, count(*)::int as n
       from outbox_events where id = any($1) and kafka_published_at is not null
      group by kafka_published_at order by kafka_published_at`,
    [ids],
  );
  const starts = rows.map((row) => Number(row.at_ms));
  const fullStepMs: number[] = [];
  for (let i = 0; i + 1 < rows.length; i++) {
    const [at, next] = [starts[i], starts[i + 1]];
    if (rows[i]?.n === KAFKA_BATCH_SIZE && at !== undefined && next !== undefined) fullStepMs.push(next - at);
  }
  return {
    steps: rows.length,
    rowsPerStep: rows.map((row) => row.n),
    fullStepMs,
    firstStepMs: starts[0] ?? null,
    lastStepMs: starts.at(-1) ?? null,
  };
}

type Check = Readonly<{ rows: number; unmarked: number; dead: number; notConsumed: number; duplicates: number }>;

/** Every outbox row marked, every event id consumed at least once; how many more than once. */
async function verify(pool: pg.Pool, log: ArrivalLog): Promise<Check> {
  const { rows } = await pool.query<{ id: string; published: boolean; dead: boolean }>(
    `select id, kafka_published_at is not null as published, kafka_dead_at is not null as dead from outbox_events`,
  );
  return {
    rows: rows.length,
    unmarked: rows.filter((row) => !row.published).length,
    dead: rows.filter((row) => row.dead).length,
    notConsumed: rows.filter((row) => log.firstMs(row.id) === undefined).length,
    duplicates: rows.reduce((sum, row) => sum + log.duplicates(row.id), 0),
  };
}

// ---------------------------------------------------------------------------------------------
// Without the gateway: its producer alone, and Apache Kafka's own

type Alone = Readonly<{ records: number; perSecond: number; sendMs: number[] }>;

/**
 * The drain's events as the emitter builds their records (toOutboxEvent, eventRecord), sent to a
 * topic of their own by a Producer with the emitter's settings (src/kafka/kafka-emitter.ts
 * createProducer: idempotent, acks=all, retries 3 every 250 ms), KAFKA_BATCH_SIZE records per
 * send, each send awaited before the next, as the emitter's steps do: its steps minus the database.
 */
async function producerAlone(pool: pg.Pool, broker: KafkaBroker, ids: readonly string[]): Promise<Alone> {
  const topic = `bench-producer-${randomBytes(4).toString('hex')}`;
  await broker.createTopic(topic, { partitions: PARTITIONS });
  const { rows } = await pool.query(
    `select id, type, order_id, merchant_id, created_at, payload from outbox_events
      where id = any($1) order by created_at, id`,
    [ids],
  );
  const records = rows.map((row) => eventRecord(toOutboxEvent(row), topic));
  const producer = createProducer([...broker.brokers], 'pog-bench-producer');
  try {
    const sendMs: number[] = [];
    const started = nowMs();
    for (let at = 0; at < records.length && !interrupted(); at += KAFKA_BATCH_SIZE) {
      const before = nowMs();
      await producer.send({ messages: records.slice(at, at + KAFKA_BATCH_SIZE) });
      sendMs.push(nowMs() - before);
    }
    return { records: records.length, perSecond: records.length / ((nowMs() - started) / 1000), sendMs };
  } finally {
    await producer.close();
  }
}

type Ceiling = Readonly<{
  records: number;
  recordSize: number;
  perSecond: number;
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}>;

/**
 * java -cp <classpath> org.apache.kafka.tools.ProducerPerformance --topic <t> --num-records N
 *   --record-size S --throughput -1 --producer-props bootstrap.servers=<addr> acks=all enable.idempotence=true
 * Its last line: "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency,
 * P ms 50th, Q ms 95th, S ms 99th, T ms 99.9th." (latency = send → ack, per record).
 */
async function producerPerformance(classpath: string, broker: KafkaBroker, recordSize: number): Promise<Ceiling> {
  const topic = `bench-ceiling-${randomBytes(4).toString('hex')}`;
  await broker.createTopic(topic, { partitions: PARTITIONS });
  process.stdout.write(
    `  ceiling: ProducerPerformance, ${CEILING_RECORDS} records of ${recordSize} bytes to a topic of ${PARTITIONS} partitions\n`,
  );
  const { stdout } = await run(
    'java',
    [
      '-Xmx256m',
      `-Dlog4j2.configurationFile=${LOG4J_CONFIG}`,
      '-cp',
      classpath,
      'org.apache.kafka.tools.ProducerPerformance',
      '--topic',
      topic,
      '--num-records',
      String(CEILING_RECORDS),
      '--record-size',
      String(recordSize),
      '--throughput',
      '-1',
      '--producer-props',
      `bootstrap.servers=${broker.address}`,
      'acks=all',
      'enable.idempotence=true',
    ],
    { timeout: CEILING_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
  );
  const summary =
    /(\d+) records sent, ([\d.]+) records\/sec \([\d.]+ MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, \d+ ms 95th, (\d+) ms 99th/.exec(
      stdout,
    );
  if (!summary) throw new Error(`ProducerPerformance printed no summary line:\n${stdout}`);
  const [, records, perSecond, avgMs, maxMs, p50Ms, p99Ms] = summary.map(Number);
  return {
    records: records ?? 0,
    recordSize,
    perSecond: perSecond ?? 0,
    avgMs: avgMs ?? 0,
    p50Ms: p50Ms ?? 0,
    p99Ms: p99Ms ?? 0,
    maxMs: maxMs ?? 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Report

type Summary = Readonly<{
  phases: readonly Phase[];
  consumer: ArrivalLog;
  steps: ReadonlyMap<string, StepStats>;
  check: Check | null;
  sizes: ReturnType<KafkaConsumer['sizes']>;
  recordSize: number;
  alone: Alone | null;
  ceiling: Ceiling | null;
  relay: readonly RelayPhaseFigures[];
  loadBefore: number;
}>;

function printSummary(s: Summary): void {
  const ms = (values: readonly number[], p: number) => (values.length > 0 ? percentile(values, p).toFixed(1) : '—');
  const rate = (perSecond: number | null) => (perSecond === null ? '—' : perSecond.toFixed(0));
  const share = (perSecond: number | null) =>
    perSecond === null || !s.ceiling ? '—' : `${((perSecond / s.ceiling.perSecond) * 100).toFixed(0)} %`;
  const rows: string[][] = [];
  for (const phase of s.phases) {
    const { perSecond, latenciesMs } = kafkaRates(phase, s.consumer);
    const latencies = phase.name === DRAIN ? [] : latenciesMs;
    const arrived = phase.ids.length - phase.missing;
    rows.push([
      `Kafka emitter: ${phase.name}`,
      String(phase.ids.length),
      String(arrived),
      String(phase.ids.reduce((sum, id) => sum + s.consumer.duplicates(id), 0)),
      rate(perSecond),
      share(perSecond),
      ms(latencies, 0.5),
      ms(latencies, 0.99),
      ms(latencies, 1),
    ]);
  }
  for (const phase of s.relay) {
    const name = phase.name.startsWith('idle') ? IDLE : BACKLOG;
    rows.push([
      `webhook relay: ${name}`,
      String(phase.events),
      String(phase.received),
      String(phase.duplicates),
      rate(phase.perSecond),
      '—',
      ms(phase.latenciesMs, 0.5),
      ms(phase.latenciesMs, 0.99),
      ms(phase.latenciesMs, 1),
    ]);
  }
  if (s.alone) {
    rows.push([
      `emitter's producer alone: ${KAFKA_BATCH_SIZE} per send ¹`,
      String(s.alone.records),
      '—',
      '—',
      rate(s.alone.perSecond),
      share(s.alone.perSecond),
      ms(s.alone.sendMs, 0.5),
      ms(s.alone.sendMs, 0.99),
      ms(s.alone.sendMs, 1),
    ]);
  }
  if (s.ceiling) {
    rows.push([
      `ceiling: Kafka's ProducerPerformance ²`,
      String(s.ceiling.records),
      '—',
      '—',
      rate(s.ceiling.perSecond),
      '100 %',
      s.ceiling.p50Ms.toFixed(1),
      s.ceiling.p99Ms.toFixed(1),
      s.ceiling.maxMs.toFixed(1),
    ]);
  }
  const overhead = s.sizes.records > 0 ? Math.round(s.sizes.keyAndHeaderBytes / s.sizes.records) : 0;
  const out: string[] = [
    '',
    `Outbox → consumer on one machine: latency = commit returned → record at the consumer (Kafka) or request at ` +
      `the subscriber (webhook), ms; ${EVENTS} events per backlog, committed ${BATCH} per transaction`,
    formatTable(['path: phase', 'events', 'arrived', 'dups', 'events/s', 'of ceiling', 'p50', 'p99', 'max'], rows),
    '  events/s: backlog = events / (last first arrival − first commit); drain = events / (gateway ready → no unmarked',
    `  outbox row, polled every ${MARK_POLL_MS} ms; ready = /healthz answered or the first step began, whichever was first);`,
    '  dups = arrivals beyond the first per event id',
    `  ¹ the drain's records (eventRecord), a Producer with the emitter's settings, one send at a time, no database;`,
    '    latency = one send → its ack',
    `  ² ${s.ceiling ? `${s.ceiling.records} records of ${s.ceiling.recordSize} bytes` : 'records of the average event size'}, ` +
      `acks=all, idempotent, --throughput -1; latency = send → ack per record` +
      (s.ceiling ? ` (avg ${s.ceiling.avgMs.toFixed(1)} ms)` : '') +
      ', which, unthrottled, is mostly the wait in its own buffer',
    '',
    `records: event JSON (the value) ${s.recordSize} bytes on average, plus ${overhead} bytes of key and headers ` +
      `(ProducerPerformance's records have the value's size and neither)`,
  ];
  for (const phase of s.phases.slice(1)) {
    const steps = s.steps.get(phase.name);
    if (steps) out.push(stepLine(phase, steps, s.alone));
    if (phase.cpu) out.push(cpuLine(phase.cpu));
  }
  const { check } = s;
  out.push(
    '',
    check
      ? `outbox: ${check.rows} rows (warm-up included), ${check.rows - check.unmarked} with kafka_published_at, ` +
          `${check.dead} set aside; consumer: ${s.consumer.total()} records, ${check.notConsumed} event ids never seen, ` +
          `${check.duplicates} duplicates, ${s.consumer.withoutId()} without an event-id header`
      : `outbox not checked (interrupted); consumer: ${s.consumer.total()} records`,
    `load average (1 min): ${s.loadBefore.toFixed(2)} at the start, ${(loadavg()[0] ?? 0).toFixed(2)} at the end, ` +
      `on ${availableParallelism()} CPUs (other work on the machine shows in every figure)`,
    '',
    ...verdictLines(s),
    '',
  );
  process.stdout.write(out.join('\n'));
}

/** events/s and commit → consumed latencies of one Kafka phase. */
function kafkaRates(phase: Phase, log: ArrivalLog): Rates {
  const latenciesMs: number[] = [];
  for (const id of phase.ids) {
    const at = log.firstMs(id);
    const committed = phase.commitMs.get(id);
    if (at !== undefined && committed !== undefined) latenciesMs.push(at - committed);
  }
  const perSecond = phase.spanMs !== null && phase.spanMs > 0 ? phase.ids.length / (phase.spanMs / 1000) : null;
  return { perSecond, latenciesMs };
}

function stepLine(phase: Phase, steps: StepStats, alone: Alone | null): string {
  const full = steps.fullStepMs;
  const fullP50 = percentile(full, 0.5);
  // Mostly partial steps: each step took what had been committed since the last one.
  const keptUp = phase.produceMs !== null && full.length < steps.steps / 2;
  const parts = [
    `  ${phase.name}: ${steps.steps} steps (median ${percentile(steps.rowsPerStep, 0.5)} rows)`,
    full.length > 0
      ? `a full step of ${KAFKA_BATCH_SIZE} every ${fullP50.toFixed(1)} ms p50 (${(KAFKA_BATCH_SIZE / (fullP50 / 1000)).toFixed(0)} rows/s)`
      : 'no full steps',
  ];
  if (alone && full.length > 0) {
    const sendP50 = percentile(alone.sendMs, 0.5);
    parts.push(
      `of which ~${sendP50.toFixed(1)} ms is the send (producer alone), ~${(fullP50 - sendP50).toFixed(1)} ms the rest`,
    );
  }
  if (steps.firstStepMs !== null && steps.lastStepMs !== null) {
    parts.push(
      phase.healthyMs !== null
        ? `first step began ${(steps.firstStepMs - phase.healthyMs).toFixed(0)} ms after /healthz was seen answering`
        : `last step began ${((steps.lastStepMs - phase.startMs) / 1000).toFixed(2)} s after the first commit` +
            (phase.produceMs !== null
              ? ` (committing took ${(phase.produceMs / 1000).toFixed(2)} s, ` +
                `${(phase.ids.length / (phase.produceMs / 1000)).toFixed(0)} events/s)`
              : '') +
            (keptUp ? ' — the emitter kept up with the commits: this events/s is the committing rate' : ''),
    );
  }
  return parts.join('; ');
}

function cpuLine(cpu: CpuUse): string {
  const [bench, gateway, consumer] = cpu.perPid;
  const pct = (value: number | null | undefined) =>
    value === null || value === undefined ? 'n/a' : `${(value * 100).toFixed(0)} %`;
  const known = [bench, gateway, consumer].reduce<number>((sum, value) => sum + (value ?? 0), 0);
  return (
    `    CPU (${cpu.seconds.toFixed(1)} s, ${availableParallelism() * 100} % = all CPUs): machine busy ${pct(cpu.machineBusy)} — ` +
    `gateway ${pct(gateway)}, consumer ${pct(consumer)}, bench ${pct(bench)}, ` +
    `the rest (PostgreSQL, the broker, anything else) ${pct(cpu.machineBusy - known)}`
  );
}

function verdictLines(s: Summary): string[] {
  const lines: string[] = [];
  for (const phase of s.phases) {
    if (phase.missing > 0) lines.push(`NOT CONSUMED: ${phase.missing} Kafka ${phase.name} event(s) by the deadline`);
  }
  for (const phase of s.relay) {
    if (phase.missing > 0) lines.push(`NOT DELIVERED: ${phase.missing} webhook ${phase.name} event(s) by the deadline`);
  }
  if (s.check && s.check.unmarked > 0) {
    lines.push(`NOT MARKED: ${s.check.unmarked} outbox row(s) without kafka_published_at`);
  }
  if (s.check && s.check.notConsumed > 0) {
    lines.push(`NOT SEEN: ${s.check.notConsumed} event id(s) the consumer never received`);
  }
  if (lines.length === 0 && s.check) lines.push('every event consumed, every outbox row marked');
  return lines;
}

if (import.meta.main) {
  if (process.argv[2] === CONSUMER_FLAG) {
    runConsumer(process.argv[3] ?? '', process.argv[4] ?? '').catch((error: unknown) => {
      process.stderr.write(`[consumer] failed: ${(error as Error)?.stack ?? String(error)}\n`);
      process.exit(1);
    });
  } else {
    main().catch((error: unknown) => {
      process.stderr.write(`bench failed: ${(error as Error)?.stack ?? String(error)}\n`);
      process.exitCode = 1;
    });
  }
}
