// `npm run bench:relay`: how fast do terminal events reach a webhook subscriber, and how soon after
// the terminal transaction commits does one arrive when the relay is idle?
//
// One gateway instance (child process, WORKER_CONCURRENCY=0: no provider processing), one webhook
// subscription created through the API, and a subscriber that answers 200 at once. The subscriber
// runs in a second child process (this file with --subscriber), so that its event loop does not
// compete with the one committing events; it stamps each request on arrival and reports
// (webhook-id, time) pairs over IPC. Events are produced as the gateway produces them: a COMPLETED
// payment_orders row and its outbox_events row (payload = orderJson of the order), committed
// together; the commit time is taken as soon as COMMIT returns. Both clocks are this machine's
// (performance.timeOrigin + performance.now(), in each process).
//   0. warm-up: BENCH_WARMUP_EVENTS (default 5) events one at a time, not measured;
//   1. idle: BENCH_IDLE_EVENTS (default 50) events one at a time, each once the previous one was
//      received (and 50 ms later): commit → received p50/p99 (target: p50 ≤ 100 ms);
//   2. throughput: BENCH_EVENTS (default 5000) events committed as fast as one connection can, in
//      transactions of BENCH_BATCH (default 100) events; deliveries/s = events / (last receipt −
//      first commit) (target ≥ 2,000/s), and commit → received p50/p99 under that backlog.
// Then webhook_deliveries must hold one delivered row per event, and the database's own timestamps
// split each event's way into relay, queue, preparation, HTTP and finishing.
// Exits 1 only if some event was not received by its deadline (BENCH_DEADLINE_SECONDS, default 300,
// for the throughput phase; 30 s per event otherwise). Database as in the other benches: a fresh one
// on DATABASE_URL's server, or a temporary embedded PostgreSQL; everything stopped and dropped at the end.
// measureRelay() runs the same phases on a database another bench owns (bench/kafka.ts prints the
// relay's figures beside the Kafka emitter's).
import { fork } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { createPool } from '../src/db/connection.ts';
import { freePort } from '../src/db/embedded-postgres.ts';
import { QUEUES } from '../src/jobs/queues.ts';
import { PGBOSS_SCHEMA } from '../src/service.ts';
import {
  type ArrivalLog,
  type Cleanup,
  type CpuUse,
  commitEvents,
  cpuSnapshot,
  cpuUse,
  createArrivalLog,
  createMerchant,
  formatTable,
  idleEvents,
  interrupted,
  nowMs,
  openBenchDatabase,
  percentile,
  positiveInteger,
  positiveNumber,
  runCleanups,
  type ServiceProcess,
  sleep,
  spawnService,
  stopForked,
  stopOnCtrlC,
  warmUp,
} from './support.ts';

const SUBSCRIBER_FLAG = '--subscriber';

const EVENTS = positiveInteger('BENCH_EVENTS', 5000);
const IDLE_EVENTS = positiveInteger('BENCH_IDLE_EVENTS', 50);
const WARMUP_EVENTS = positiveInteger('BENCH_WARMUP_EVENTS', 5);
const BATCH = positiveInteger('BENCH_BATCH', 100);
const WEBHOOK_CONCURRENCY = positiveInteger('BENCH_WEBHOOK_CONCURRENCY', 128);
const POOL_SIZE = positiveInteger('BENCH_POOL_SIZE', 20);
const DEADLINE_MS = positiveNumber('BENCH_DEADLINE_SECONDS', process.env.BENCH_DEADLINE_SECONDS, 300) * 1000;
const TARGET_RATE = 2000;
const TARGET_IDLE_P50_MS = 100;
/** After the last receipt, how long the delivered marks may take to appear. */
const SETTLE_TIMEOUT_MS = 30_000;
const SUBSCRIBER_START_TIMEOUT_MS = 30_000;
const SUBSCRIBER_STOP_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 30_000;
const PROGRESS_EVERY_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// The subscriber (child process)

type Receipt = [webhookId: string, atMs: number];
type FromSubscriber = { type: 'ready'; port: number } | { type: 'received'; receipts: Receipt[] };

/** Answers every request 200 once its body is read; reports (webhook-id, arrival) pairs to the parent. */
function runSubscriber(): void {
  const buffer: Receipt[] = [];
  let scheduled = false;
  const send = (message: FromSubscriber) => {
    if (process.connected) process.send?.(message);
  };
  // Batched per event loop turn: under load one IPC message carries many receipts.
  const flush = () => {
    scheduled = false;
    if (buffer.length > 0) send({ type: 'received', receipts: buffer.splice(0) });
  };
  const server = http.createServer((req, res) => {
    const at = nowMs();
    const id = req.headers['webhook-id'];
    buffer.push([typeof id === 'string' ? id : '', at]);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  const stop = () => {
    flush();
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  // Ctrl-C reaches the whole process group: the parent decides when this process stops.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', stop);
  process.on('disconnect', stop); // the parent is gone
  process.on('message', (message) => {
    if (message === 'stop') stop();
  });
  server.listen(0, '127.0.0.1', () => send({ type: 'ready', port: (server.address() as AddressInfo).port }));
}

type Subscriber = Readonly<{
  url: string;
  pid: number | undefined;
  /** Resolves true once every id was received at least once, false on timeout or Ctrl-C. */
  waitFor: ArrivalLog['waitFor'];
  firstReceiptMs: ArrivalLog['firstMs'];
  /** Requests received for this id beyond the first. */
  duplicates: ArrivalLog['duplicates'];
  requests: ArrivalLog['total'];
  withoutId: ArrivalLog['withoutId'];
}>;

async function startSubscriber(cleanups: Cleanup[]): Promise<Subscriber> {
  const child = fork(fileURLToPath(import.meta.url), [SUBSCRIBER_FLAG], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(`exited with ${signal ?? code}`));
    child.once('error', (error) => resolve(`failed: ${error.message}`));
  });
  cleanups.push(() => stopForked(child, exited, SUBSCRIBER_STOP_TIMEOUT_MS));

  const log = createArrivalLog();
  child.on('message', (message: FromSubscriber) => {
    if (message.type !== 'received') return;
    for (const [id, at] of message.receipts) log.record(id, at);
  });

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`subscriber not ready within ${SUBSCRIBER_START_TIMEOUT_MS} ms`)),
      SUBSCRIBER_START_TIMEOUT_MS,
    );
    child.on('message', (message: FromSubscriber) => {
      if (message.type !== 'ready') return;
      clearTimeout(timer);
      resolve(message.port);
    });
    void exited.then((reason) => {
      clearTimeout(timer);
      reject(new Error(`subscriber ${reason}`));
    });
  });

  return {
    url: `http://127.0.0.1:${port}/hook`,
    pid: child.pid,
    waitFor: log.waitFor,
    firstReceiptMs: log.firstMs,
    duplicates: log.duplicates,
    requests: log.total,
    withoutId: log.withoutId,
  };
}

// ---------------------------------------------------------------------------------------------
// Main

type Phase = Readonly<{
  name: string;
  ids: string[];
  commitMs: Map<string, number>;
  /** Events not received by the deadline. */
  missing: number;
  /** From the first commit to the last event's first receipt; null if not all were received. */
  spanMs: number | null;
  /** Throughput phase only: how long committing all events took. */
  produceMs: number | null;
  cpu: CpuUse | null;
}>;

async function main(): Promise<void> {
  stopOnCtrlC('stopping the current phase');
  const cleanups: Cleanup[] = [];
  try {
    const database = await openBenchDatabase(cleanups);
    const run = await runRelay(database.url);
    printSummary(run);
    if (interrupted()) {
      process.stdout.write('interrupted: the phases above may be incomplete\n');
      process.exitCode = 130;
    } else {
      process.exitCode = run.reports.some((report) => report.phase.missing > 0) ? 1 : 0;
    }
  } finally {
    await runCleanups(cleanups);
  }
}

/** What one run of the phases found; the gateway and the subscriber are stopped by then. */
type RelayRun = Readonly<{ reports: PhaseReport[]; requests: number; withoutId: number }>;

/** One phase's figures as another bench tabulates them (bench/kafka.ts). */
export type RelayPhaseFigures = Readonly<{
  name: string;
  events: number;
  received: number;
  duplicates: number;
  /** Events not received by the deadline. */
  missing: number;
  /** events / (last first receipt − first commit); null for the idle phase or if some did not arrive. */
  perSecond: number | null;
  /** Commit returned → first request at the subscriber, per received event. */
  latenciesMs: readonly number[];
}>;

/**
 * The relay's phases (warm-up, idle, throughput) exactly as `npm run bench:relay` runs them, with a
 * gateway and a subscriber of their own on `databaseUrl` (a fresh database the caller owns and
 * drops); both are stopped before it returns. BENCH_EVENTS and the other knobs are this file's.
 */
export async function measureRelay(databaseUrl: string): Promise<RelayPhaseFigures[]> {
  const { reports } = await runRelay(databaseUrl);
  return reports.map((r) => ({
    name: r.phase.name,
    events: r.phase.ids.length,
    received: r.received,
    duplicates: r.duplicates,
    missing: r.phase.missing,
    perSecond: r.phase.spanMs !== null ? r.phase.ids.length / (r.phase.spanMs / 1000) : null,
    latenciesMs: r.latenciesMs,
  }));
}

async function runRelay(databaseUrl: string): Promise<RelayRun> {
  const cleanups: Cleanup[] = [];
  try {
    const subscriber = await startSubscriber(cleanups);

    const service = spawnService(
      {
        ...process.env,
        DATABASE_URL: databaseUrl,
        PORT: String(await freePort()),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        DEMO_MERCHANT: 'false',
        WORKER_CONCURRENCY: '0',
        WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
        WEBHOOK_CONCURRENCY: String(WEBHOOK_CONCURRENCY),
        DATABASE_POOL_SIZE: String(POOL_SIZE),
      },
      'gateway',
    );
    cleanups.push(service.stop);
    await service.ready; // migrated, queues created, relay and webhook workers running

    const merchant = await createMerchant(databaseUrl);
    const subscriptionId = await createSubscription(service.url, merchant.apiKey, subscriber.url);
    const pool = createPool(databaseUrl, 2, 'bench-relay');
    cleanups.push(() => pool.end());

    const version = (await pool.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v;
    process.stdout.write(
      `PostgreSQL ${version} (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'}), ${availableParallelism()} CPUs, ` +
        `one gateway (WORKER_CONCURRENCY=0, WEBHOOK_CONCURRENCY=${WEBHOOK_CONCURRENCY}, DATABASE_POOL_SIZE=${POOL_SIZE}), ` +
        `subscription ${subscriptionId} → ${subscriber.url} (subscriber in its own process)\n`,
    );

    await warmUp(pool, merchant.id, subscriber, WARMUP_EVENTS);
    const phases: Phase[] = [];
    const idle = await runIdle(pool, merchant.id, subscriber);
    phases.push(idle);
    if (!interrupted()) phases.push(await runThroughput(pool, merchant.id, subscriber, [service, subscriber]));

    const reports: PhaseReport[] = [];
    for (const phase of phases) reports.push(await describePhase(pool, phase, subscriber));
    return { reports, requests: subscriber.requests(), withoutId: subscriber.withoutId() };
  } finally {
    await runCleanups(cleanups);
  }
}

/** POST /webhook-subscriptions through the API, as a merchant would; returns its id. */
async function createSubscription(baseUrl: string, apiKey: string, url: string): Promise<string> {
  const { status, body } = await postJson(new URL('/webhook-subscriptions', baseUrl), apiKey, { url });
  const id = (JSON.parse(body) as { id?: unknown }).id;
  if (status !== 201 || typeof id !== 'string') throw new Error(`creating the subscription: HTTP ${status} ${body}`);
  return id;
}

function postJson(url: URL, apiKey: string, payload: unknown): Promise<{ status: number; body: string }> {
  const body = JSON.stringify(payload);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: false,
        timeout: REQUEST_TIMEOUT_MS,
        headers: {
          Authorization: `Bearer ${apiKey}`,
          'Content-Type': 'application/json',
          'Content-Length': String(Buffer.byteLength(body)),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Producing terminal events

// ---------------------------------------------------------------------------------------------
// Phases

async function runIdle(pool: pg.Pool, merchantId: string, subscriber: Subscriber): Promise<Phase> {
  const { ids, commitMs, missing } = await idleEvents(pool, merchantId, subscriber, IDLE_EVENTS);
  return { name: 'idle (one at a time)', ids, commitMs, missing, spanMs: null, produceMs: null, cpu: null };
}

async function runThroughput(
  pool: pg.Pool,
  merchantId: string,
  subscriber: Subscriber,
  children: readonly Pick<ServiceProcess, 'pid'>[],
): Promise<Phase> {
  const ids: string[] = [];
  const commitMs = new Map<string, number>();
  const pids = [process.pid, ...children.map((child) => child.pid)];
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
    `  throughput: ${ids.length} events committed in ${(produceMs / 1000).toFixed(2)} s ` +
      `(${Math.round(ids.length / (produceMs / 1000))} events/s, ${BATCH} per transaction); waiting for the deliveries\n`,
  );
  const firstCommit = Math.min(...commitMs.values());
  const deadline = firstCommit + DEADLINE_MS;
  let all = false;
  while (!all && !interrupted() && nowMs() < deadline) {
    all = await subscriber.waitFor(ids, Math.min(PROGRESS_EVERY_MS, Math.max(0, deadline - nowMs())));
    if (!all && !interrupted()) {
      const received = ids.filter((id) => subscriber.firstReceiptMs(id) !== undefined).length;
      process.stdout.write(
        `  throughput: ${received} of ${ids.length} received after ${((nowMs() - firstCommit) / 1000).toFixed(1)} s\n`,
      );
    }
  }
  const cpu = cpuUse(cpuBefore, cpuSnapshot(pids));
  const receipts = ids.map((id) => subscriber.firstReceiptMs(id));
  const missing = receipts.filter((at) => at === undefined).length;
  const lastReceipt = Math.max(...receipts.map((at) => at ?? 0));
  return {
    name: 'throughput (all at once)',
    ids,
    commitMs,
    missing,
    spanMs: missing === 0 && ids.length > 0 ? lastReceipt - firstCommit : null,
    produceMs,
    cpu,
  };
}

// ---------------------------------------------------------------------------------------------
// What the database says about each phase

type Segments = Readonly<Record<SegmentName, number[]>>;
type SegmentName = 'relay' | 'queue' | 'prepare' | 'http' | 'finish';
const SEGMENTS: readonly [SegmentName, string][] = [
  ['relay', 'commit → relay pass began (outbox_events.relayed_at)'],
  ['queue', 'relay pass began → delivery job fetched (pg-boss started_on)'],
  ['prepare', 'job fetched → attempt row written (attempt started_at)'],
  ['http', 'attempt started_at → request at the subscriber'],
  ['finish', 'request at the subscriber → attempt marked (ended_at)'],
];

type PhaseReport = Readonly<{
  phase: Phase;
  latenciesMs: number[];
  received: number;
  duplicates: number;
  statuses: Map<string, number>;
  attempts: number;
  failedAttempts: number;
  segments: Segments;
  relayPasses: number;
  largestPass: number;
  /** First commit → the last relay pass's start. */
  relayDoneMs: number | null;
  /** Events relayed per second: all but the last pass's, over first pass start → last pass start. */
  relayRate: number | null;
  /** First attempt start → last attempt end. */
  sendSpanMs: number | null;
  /** First attempts per second while relay passes were still starting, and after the last one began. */
  sendRates: Readonly<{ whileRelaying: number; afterRelay: number }> | null;
}>;

async function describePhase(pool: pg.Pool, phase: Phase, subscriber: Subscriber): Promise<PhaseReport> {
  const latenciesMs: number[] = [];
  let duplicates = 0;
  for (const id of phase.ids) {
    const at = subscriber.firstReceiptMs(id);
    const committed = phase.commitMs.get(id);
    if (at !== undefined && committed !== undefined) latenciesMs.push(at - committed);
    duplicates += subscriber.duplicates(id);
  }
  const statuses = await settledStatuses(pool, phase.ids, phase.ids.length - phase.missing);
  const { rows } = await pool.query<{
    event_id: string;
    relayed_ms: string | null;
    fetched_ms: string | null;
    attempt_ms: string | null;
    ended_ms: string | null;
  }>(
    `select e.id as event_id,
            extract(epoch from e.relayed_at) * 1000 as relayed_ms,
            extract(epoch from j.started_on) * 1000 as fetched_ms,
            extract(epoch from a.started_at) * 1000 as attempt_ms,
            extract(epoch from a.ended_at) * 1000 as ended_ms
       from outbox_events e
       left join webhook_deliveries d on d.event_id = e.id
       left join webhook_delivery_attempts a on a.delivery_id = d.id and a.attempt_number = 1
       left join ${PGBOSS_SCHEMA}.job j
         on j.name = $2 and j.data->>'deliveryId' = d.id and (j.data->>'attempt')::int = 1
      where e.id = any($1)`,
    [phase.ids, QUEUES.deliverWebhook],
  );
  const segments: Record<SegmentName, number[]> = { relay: [], queue: [], prepare: [], http: [], finish: [] };
  const num = (value: string | null) => (value === null ? null : Number(value));
  const passes = new Map<number, number>();
  const attemptStarts: number[] = [];
  const attemptEnds: number[] = [];
  for (const row of rows) {
    const commit = phase.commitMs.get(row.event_id);
    const received = subscriber.firstReceiptMs(row.event_id);
    const relayed = num(row.relayed_ms);
    const fetched = num(row.fetched_ms);
    const attempt = num(row.attempt_ms);
    const ended = num(row.ended_ms);
    if (relayed !== null) passes.set(relayed, (passes.get(relayed) ?? 0) + 1);
    if (attempt !== null) attemptStarts.push(attempt);
    if (ended !== null) attemptEnds.push(ended);
    if (commit === undefined || received === undefined) continue;
    if (relayed === null || fetched === null || attempt === null || ended === null) continue;
    segments.relay.push(relayed - commit);
    segments.queue.push(fetched - relayed);
    segments.prepare.push(attempt - fetched);
    segments.http.push(received - attempt);
    segments.finish.push(ended - received);
  }
  const attemptCounts = await pool.query<{ n: number; failed: number }>(
    `select count(*)::int as n,
            count(*) filter (where a.status_code is null or a.status_code not between 200 and 299)::int as failed
       from webhook_delivery_attempts a join webhook_deliveries d on d.id = a.delivery_id
      where d.event_id = any($1)`,
    [phase.ids],
  );
  const firstCommit = phase.ids.length > 0 ? Math.min(...phase.commitMs.values()) : 0;
  const passStarts = [...passes.keys()].toSorted((a, b) => a - b);
  const firstPass = passStarts[0];
  const lastPass = passStarts.at(-1);
  const relayRate =
    firstPass !== undefined && lastPass !== undefined && lastPass > firstPass
      ? (phase.ids.length - (passes.get(lastPass) ?? 0)) / ((lastPass - firstPass) / 1000)
      : null;
  let sendRates: PhaseReport['sendRates'] = null;
  if (lastPass !== undefined && attemptStarts.length > 0) {
    const firstAttempt = Math.min(...attemptStarts);
    const lastEnd = Math.max(...attemptEnds);
    const during = attemptStarts.filter((at) => at <= lastPass).length;
    if (lastPass > firstAttempt && lastEnd > lastPass) {
      sendRates = {
        whileRelaying: during / ((lastPass - firstAttempt) / 1000),
        afterRelay: (attemptStarts.length - during) / ((lastEnd - lastPass) / 1000),
      };
    }
  }
  return {
    phase,
    latenciesMs,
    received: latenciesMs.length,
    duplicates,
    statuses,
    attempts: attemptCounts.rows[0]?.n ?? 0,
    failedAttempts: attemptCounts.rows[0]?.failed ?? 0,
    segments,
    relayPasses: passes.size,
    largestPass: Math.max(0, ...passes.values()),
    relayDoneMs: lastPass !== undefined ? lastPass - firstCommit : null,
    relayRate,
    sendRates,
    sendSpanMs: attemptStarts.length > 0 ? Math.max(...attemptEnds) - Math.min(...attemptStarts) : null,
  };
}

/** webhook_deliveries statuses of the events, once `expected` are delivered or SETTLE_TIMEOUT_MS passed. */
async function settledStatuses(pool: pg.Pool, ids: readonly string[], expected: number): Promise<Map<string, number>> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  for (;;) {
    const { rows } = await pool.query<{ status: string; n: number }>(
      'select status, count(*)::int as n from webhook_deliveries where event_id = any($1) group by status',
      [ids],
    );
    const counts = new Map(rows.map((row) => [row.status, row.n]));
    if ((counts.get('delivered') ?? 0) >= expected || Date.now() > deadline || interrupted()) return counts;
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function printSummary({ reports, requests, withoutId }: RelayRun): void {
  const ms = (values: readonly number[], p: number) => (values.length > 0 ? percentile(values, p).toFixed(1) : 'n/a');
  const out: string[] = [
    '',
    `Terminal → received (commit returned → request at the subscriber), ms; events committed ${BATCH} per transaction in the throughput phase`,
    formatTable(
      ['phase', 'events', 'received', 'dups', 'deliveries/s', 'p50', 'p99', 'max', 'target'],
      reports.map((r) => [
        r.phase.name,
        String(r.phase.ids.length),
        String(r.received),
        String(r.duplicates),
        r.phase.spanMs !== null ? (r.phase.ids.length / (r.phase.spanMs / 1000)).toFixed(0) : 'n/a',
        ms(r.latenciesMs, 0.5),
        ms(r.latenciesMs, 0.99),
        ms(r.latenciesMs, 1),
        r.phase.produceMs === null ? `p50 ≤ ${TARGET_IDLE_P50_MS} ms` : `≥ ${TARGET_RATE.toLocaleString('en')}/s`,
      ]),
    ),
    '  deliveries/s = events / (last event first received − first commit); dups = requests beyond the first per webhook-id',
  ];
  for (const r of reports) {
    out.push(
      '',
      `${r.phase.name}: webhook_deliveries ${formatCounts(r.statuses)} (expected ${r.phase.ids.length} delivered); ` +
        `${r.attempts} attempts, ${r.failedAttempts} not 2xx`,
      `  relay: ${r.relayPasses} pass(es), largest ${r.largestPass} events` +
        (r.relayDoneMs !== null && r.phase.produceMs !== null
          ? `, last pass began ${fmtMs(r.relayDoneMs)} after the first commit` +
            (r.relayRate !== null ? ` (~${r.relayRate.toFixed(0)} events/s relayed)` : '')
          : ''),
      ...(r.sendSpanMs !== null && r.phase.produceMs !== null
        ? [
            `  senders: first attempt start → last attempt end ${fmtMs(r.sendSpanMs)} ` +
              `(${(r.attempts / (r.sendSpanMs / 1000)).toFixed(0)} attempts/s)` +
              (r.sendRates
                ? `; ${r.sendRates.whileRelaying.toFixed(0)}/s while relay passes were starting, ` +
                  `${r.sendRates.afterRelay.toFixed(0)}/s after the last one began`
                : ''),
          ]
        : []),
      formatTable(
        ['where the time goes (per event, ms)', 'p50', 'p99', 'max'],
        SEGMENTS.map(([key, label]) => [
          label,
          ms(r.segments[key], 0.5),
          ms(r.segments[key], 0.99),
          ms(r.segments[key], 1),
        ]),
      ),
    );
    if (r.phase.cpu) out.push(cpuLine(r.phase.cpu));
  }
  out.push(
    '',
    '  (relayed_at and pg-boss started_on are transaction start times by the database clock; the receipt is the',
    "   subscriber's clock and the commit the bench's: all this machine's, so a segment can read slightly negative)",
    `  subscriber: ${requests} requests in all (warm-up included), ${withoutId} without a webhook-id`,
    '',
    ...verdictLines(reports),
    '',
  );
  process.stdout.write(out.join('\n'));
}

function cpuLine(cpu: CpuUse): string {
  const [bench, gateway, subscriber] = cpu.perPid;
  const pct = (share: number | null | undefined) =>
    share === null || share === undefined ? 'n/a' : `${(share * 100).toFixed(0)} %`;
  const known = [bench, gateway, subscriber].reduce<number>((sum, share) => sum + (share ?? 0), 0);
  return (
    `  CPU over the phase (${cpu.seconds.toFixed(1)} s, ${availableParallelism()} CPUs = ${availableParallelism() * 100} %): ` +
    `machine busy ${pct(cpu.machineBusy)} — gateway ${pct(gateway)}, subscriber ${pct(subscriber)}, bench ${pct(bench)}, ` +
    `the rest (mostly PostgreSQL) ${pct(cpu.machineBusy - known)}`
  );
}

function verdictLines(reports: readonly PhaseReport[]): string[] {
  const lines: string[] = [];
  for (const r of reports) {
    const p50 = percentile(r.latenciesMs, 0.5);
    if (r.phase.produceMs === null) {
      lines.push(
        `idle p50 ${p50.toFixed(1)} ms, target ≤ ${TARGET_IDLE_P50_MS} ms: ${p50 <= TARGET_IDLE_P50_MS && r.received > 0 ? 'met' : 'MISSED'}`,
      );
    } else {
      const rate = r.phase.spanMs !== null ? r.phase.ids.length / (r.phase.spanMs / 1000) : 0;
      lines.push(
        `throughput ${rate.toFixed(0)} deliveries/s, target ≥ ${TARGET_RATE}: ${rate >= TARGET_RATE ? 'met' : 'MISSED'}`,
      );
    }
    if (r.phase.missing > 0) lines.push(`NOT DELIVERED: ${r.phase.missing} ${r.phase.name} event(s) by the deadline`);
    const delivered = r.statuses.get('delivered') ?? 0;
    if (delivered !== r.phase.ids.length) {
      lines.push(`webhook_deliveries: ${delivered} delivered of ${r.phase.ids.length} (${formatCounts(r.statuses)})`);
    }
  }
  return lines;
}

function fmtMs(value: number): string {
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(0)} ms`;
}

function formatCounts(counts: ReadonlyMap<string, number>): string {
  return [...counts.entries()].map(([name, n]) => `${n} ${name}`).join(', ') || 'none';
}

// Run as a script (not when bench/kafka.ts imports measureRelay).
if (import.meta.main) {
  if (process.argv[2] === SUBSCRIBER_FLAG) {
    runSubscriber();
  } else {
    main().catch((error: unknown) => {
      process.stderr.write(`bench failed: ${(error as Error)?.stack ?? String(error)}\n`);
      process.exitCode = 1;
    });
  }
}
