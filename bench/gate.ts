// `npm run bench:gate`: does the global rate gate hold across instances, how close does it get to
// its limit under a backlog, and how fast does an idle gateway pick a new order up?
//
// Three gateway instances (child processes, one database) and the provider sandbox (a child process
// too, stamping arrivals on its own event loop) with PROVIDER_CALLS_PER_SECOND=2:
//   1. idle pick-up: BENCH_IDLE_ORDERS (default 20) orders one at a time, each once the previous
//      one is COMPLETED and its provider call is at least 600 ms old, so that the gate is idle;
//      the latency from commit to provider call, p50/p99 (target: p50 ≤ 100 ms);
//   2. backlog: BENCH_ORDERS (default 120) orders as fast as the three APIs take them, then the
//      provider calls' start times as recorded (provider_attempts) and as the sandbox saw them
//      arrive: the achieved rate (target ≥ 1.9 calls/s) and the most starts in any 1-second window.
// Exits 1 if any 1-second window ever held more than the limit (the gate is broken), not for a
// missed rate or latency target. Database as in bench/ingest.ts: a fresh one on DATABASE_URL's
// server, or a temporary embedded PostgreSQL; everything is stopped and dropped at the end.
import { availableParallelism } from 'node:os';
import pg from 'pg';
import type { RequestRecord } from '../sandbox/request-log.ts';
import { loadConfig } from '../src/config/config.ts';
import { freePort } from '../src/db/embedded-postgres.ts';
import {
  BENCH_ORDER,
  type Cleanup,
  createMerchant,
  interrupted,
  openBenchDatabase,
  percentile,
  positiveNumber,
  runCleanups,
  type ServiceProcess,
  sleep,
  spawnService,
  stopOnCtrlC,
} from './support.ts';

const IDLE_ORDERS = Math.round(positiveNumber('BENCH_IDLE_ORDERS', process.env.BENCH_IDLE_ORDERS, 20));
const ORDERS = Math.round(positiveNumber('BENCH_ORDERS', process.env.BENCH_ORDERS, 120));
const INSTANCES = 3;
const CALLS_PER_SECOND = 2;
const TARGET_RATE = 1.9;
const TARGET_PICKUP_P50_MS = 100;
/**
 * Gap between an idle order's creation and the previous provider call. The gate lets a call start
 * at once when the previous call is a window / limit (510 ms) old and the one two places back a
 * window (1.02 s) old; with every call at least 600 ms after the one before, both hold.
 */
const IDLE_GAP_MS = 600;
const IDLE_ORDER_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 30_000;

type Created = Readonly<{ id: string; receivedAtMs: number }>;
type PickupSample = Readonly<{ fromCreatedAtMs: number; from201Ms: number }>;
type Starts = Readonly<{
  calls: number;
  rate: number;
  maxInWindow: number;
  /** Where windows held more than the limit: seconds from the start of the backlog phase. */
  crowdedAtSeconds: number[];
}>;
type Backlog = Readonly<{
  acceptSeconds: number;
  drainSeconds: number;
  statuses: ReadonlyMap<string, number>;
  attempts: Starts;
  arrivals: Starts;
  kinds: ReadonlyMap<string, number>;
  /** Sandbox arrival minus recorded start, the i-th of each paired; null if the counts differ. */
  lagMs: number[] | null;
}>;
type WholeRun = Readonly<{ attempts: number; arrivals: number }>;

async function main(): Promise<void> {
  stopOnCtrlC('stopping the current phase');
  const cleanups: Cleanup[] = [];
  try {
    const database = await openBenchDatabase(cleanups);
    // The sandbox runs in a process of its own, like a real provider: its arrival stamps must not
    // wait for this process's event loop, which is busy sending the backlog's orders.
    const sandboxPort = await freePort();
    const sandbox = spawnService(
      { ...process.env, SANDBOX_HOST: '127.0.0.1', SANDBOX_PORT: String(sandboxPort), LOG_LEVEL: 'warn' },
      'sandbox',
      { script: 'sandbox/main.ts', port: String(sandboxPort), healthPath: '/__admin/switches' },
    );
    cleanups.push(sandbox.stop);
    await sandbox.ready;

    const env = serviceEnv(database.url, sandbox.url);
    const instances = await startInstances(env, cleanups);
    const merchant = await createMerchant(database.url);
    const pool = new pg.Pool({ connectionString: database.url, max: 2, application_name: 'bench-gate' });
    pool.on('error', () => {}); // an idle client losing its server must not crash the bench
    cleanups.push(() => pool.end());

    const marginMs = loadConfig(env).gate.marginMs;
    await printSetup(pool, marginMs);
    const pickups = await measureIdlePickup(pool, sandbox, instances, merchant.apiKey);
    const backlog = await runBacklog(pool, sandbox, instances, merchant.apiKey);
    const whole = await wholeRunMaxWindows(pool, sandbox);
    printSummary(pickups, backlog, whole, marginMs);
    process.exitCode = verdict(backlog, whole);
  } catch (error) {
    if (!interrupted()) throw error;
    process.stdout.write(`interrupted: ${(error as Error)?.message ?? String(error)}\n`);
    process.exitCode = 130;
  } finally {
    await runCleanups(cleanups);
  }
}

// ---------------------------------------------------------------------------------------------
// Instances

/** What every instance shares; each gets its own PORT in startInstances. */
function serviceEnv(databaseUrl: string, sandboxUrl: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: databaseUrl,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DEMO_MERCHANT: 'false',
    STRIPE_API_URL: sandboxUrl,
    MPESA_API_URL: sandboxUrl,
    PROVIDER_CALLS_PER_SECOND: String(CALLS_PER_SECOND),
    WORKER_CONCURRENCY: '4',
  };
}

/**
 * Spawns the instances together (their migrations meet at the advisory lock) and waits until each
 * is healthy. Their stop is registered before the wait, so a failed start still stops them all.
 */
async function startInstances(env: NodeJS.ProcessEnv, cleanups: Cleanup[]): Promise<ServiceProcess[]> {
  const ports = new Set<number>();
  while (ports.size < INSTANCES) ports.add(await freePort());
  const instances = [...ports].map((port, i) => spawnService({ ...env, PORT: String(port) }, `instance ${i + 1}`));
  cleanups.push(async () => {
    await Promise.all(instances.map((instance) => instance.stop()));
  });
  await Promise.all(instances.map((instance) => instance.ready));
  return instances;
}

async function printSetup(pool: pg.Pool, marginMs: number): Promise<void> {
  const version = (await pool.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v;
  const ceiling = CALLS_PER_SECOND / (1 + marginMs / 1000);
  process.stdout.write(
    `PostgreSQL ${version} (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'}), ${availableParallelism()} CPUs, ` +
      `${INSTANCES} instances × WORKER_CONCURRENCY=4, PROVIDER_CALLS_PER_SECOND=${CALLS_PER_SECOND}, ` +
      `gate window 1 s + ${marginMs} ms margin (ceiling ${ceiling.toFixed(3)} calls/s)\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// Orders through the API

async function createOrder(baseUrl: string, apiKey: string, idempotencyKey: string): Promise<Created> {
  const response = await fetch(`${baseUrl}/payment-orders`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${apiKey}`,
      'Content-Type': 'application/json',
      'Idempotency-Key': idempotencyKey,
    },
    body: JSON.stringify(BENCH_ORDER),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  // fetch resolves on the response head: the service has committed the order by now.
  const receivedAtMs = Date.now();
  const body = (await response.json()) as { id?: unknown };
  if (response.status !== 201 || typeof body.id !== 'string') {
    throw new Error(`POST /payment-orders answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return { id: body.id, receivedAtMs };
}

/** Statuses of the given orders, counted. */
async function statusCounts(pool: pg.Pool, ids: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ status: string; n: number }>(
    'select status, count(*)::int as n from payment_orders where id = any($1) group by status',
    [ids],
  );
  return new Map(rows.map((row) => [row.status, row.n]));
}

/**
 * Polls until every order is COMPLETED or FAILED, or the deadline passes; returns the last counts.
 * Throws on Ctrl-C, so that nothing half-measured is printed.
 */
async function waitForOrders(
  pool: pg.Pool,
  ids: readonly string[],
  deadlineMs: number,
  intervalMs: number,
): Promise<Map<string, number>> {
  for (;;) {
    const counts = await statusCounts(pool, ids);
    const terminal = (counts.get('COMPLETED') ?? 0) + (counts.get('FAILED') ?? 0);
    if (terminal === ids.length || Date.now() > deadlineMs) return counts;
    if (interrupted()) throw new Error('while waiting for orders to complete');
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 1: idle pick-up latency

async function measureIdlePickup(
  pool: pg.Pool,
  sandbox: ServiceProcess,
  instances: readonly ServiceProcess[],
  apiKey: string,
): Promise<PickupSample[]> {
  const samples: PickupSample[] = [];
  let lastCallMs = 0;
  for (let i = 0; i < IDLE_ORDERS; i++) {
    await sleep(Math.max(0, lastCallMs + IDLE_GAP_MS - Date.now()));
    if (interrupted()) throw new Error('during the idle pick-up phase');
    const seen = (await sandboxRequests(sandbox)).length;
    const created = await createOrder(instanceUrl(instances, i), apiKey, `idle-${i}`);
    const counts = await waitForOrders(pool, [created.id], Date.now() + IDLE_ORDER_TIMEOUT_MS, 10);
    if (counts.get('COMPLETED') !== 1) {
      throw new Error(`idle order ${created.id} did not complete: ${JSON.stringify(Object.fromEntries(counts))}`);
    }
    // One order at a time: the requests the sandbox logged since are this order's.
    const calls = (await sandboxRequests(sandbox)).slice(seen);
    const charge = calls.find((request) => request.kind === 'charge');
    if (!charge) throw new Error(`idle order ${created.id}: the sandbox saw no charge`);
    samples.push({
      fromCreatedAtMs: await createdToFirstStartMs(pool, created.id),
      from201Ms: charge.atMs - created.receivedAtMs,
    });
    lastCallMs = Math.max(...calls.map((request) => request.atMs));
  }
  return samples;
}

/** First provider_attempts.started_at minus payment_orders.created_at, both from the database. */
async function createdToFirstStartMs(pool: pg.Pool, orderId: string): Promise<number> {
  const { rows } = await pool.query<{ ms: string }>(
    `select extract(epoch from min(a.started_at) - o.created_at) * 1000 as ms
       from payment_orders o join provider_attempts a on a.order_id = o.id
      where o.id = $1
      group by o.created_at`,
    [orderId],
  );
  const ms = rows[0]?.ms;
  if (ms === undefined) throw new Error(`order ${orderId} has no provider attempt`);
  return Number(ms);
}

function instanceUrl(instances: readonly ServiceProcess[], i: number): string {
  const instance = instances[i % instances.length];
  if (!instance) throw new Error('no instances');
  return instance.url;
}

// ---------------------------------------------------------------------------------------------
// Phase 2: backlog

async function runBacklog(
  pool: pg.Pool,
  sandbox: ServiceProcess,
  instances: readonly ServiceProcess[],
  apiKey: string,
): Promise<Backlog> {
  // The idle phase has finished its calls: every request from here on is the backlog's.
  const seen = (await sandboxRequests(sandbox)).length;
  const originMs = Date.now();
  const started = performance.now();
  const created = await Promise.all(
    Array.from({ length: ORDERS }, (_, i) => createOrder(instanceUrl(instances, i), apiKey, `backlog-${i}`)),
  );
  const acceptSeconds = (performance.now() - started) / 1000;
  const ids = created.map((order) => order.id);
  const statuses = await waitForOrders(pool, ids, Date.now() + (ORDERS / TARGET_RATE + 60) * 1000, 250);
  const drainSeconds = (performance.now() - started) / 1000;

  const { startsMs, kinds } = await attemptStarts(pool, ids);
  const arrivalsMs = (await sandboxRequests(sandbox)).slice(seen).map((request) => request.atMs);
  return {
    acceptSeconds,
    drainSeconds,
    statuses,
    attempts: describeStarts(startsMs, originMs),
    arrivals: describeStarts(arrivalsMs, originMs),
    kinds,
    lagMs: pairedLags(startsMs, arrivalsMs),
  };
}

/** Start times of the orders' provider calls (ms since the epoch, microsecond precision), and their kinds. */
async function attemptStarts(
  pool: pg.Pool,
  ids: readonly string[] | null,
): Promise<{ startsMs: number[]; kinds: Map<string, number> }> {
  const { rows } = await pool.query<{ ms: string; kind: string; outcome: string | null }>(
    `select extract(epoch from started_at) * 1000 as ms, kind, outcome
       from provider_attempts
      where $1::text[] is null or order_id = any($1)
      order by started_at`,
    [ids],
  );
  const kinds = new Map<string, number>();
  for (const row of rows) {
    const label = `${row.kind}:${row.outcome ?? 'unfinished'}`;
    kinds.set(label, (kinds.get(label) ?? 0) + 1);
  }
  return { startsMs: rows.map((row) => Number(row.ms)), kinds };
}

/** Every provider request the sandbox has received, in arrival order (its admin API). */
async function sandboxRequests(sandbox: ServiceProcess): Promise<RequestRecord[]> {
  const response = await fetch(`${sandbox.url}/__admin/requests`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  if (!response.ok) throw new Error(`sandbox admin: HTTP ${response.status}`);
  return ((await response.json()) as { requests: RequestRecord[] }).requests;
}

/** Every call the run made (idle and backlog), as recorded and as the sandbox saw them arrive. */
async function wholeRunMaxWindows(pool: pg.Pool, sandbox: ServiceProcess): Promise<WholeRun> {
  const { startsMs } = await attemptStarts(pool, null);
  return {
    attempts: maxInAnyWindow(startsMs),
    arrivals: maxInAnyWindow((await sandboxRequests(sandbox)).map((request) => request.atMs)),
  };
}

// ---------------------------------------------------------------------------------------------
// Figures and report

/** Rate = (calls − 1) / (last start − first start): the intervals between starts, per second. */
function describeStarts(startsMs: readonly number[], originMs: number): Starts {
  const sorted = startsMs.toSorted((a, b) => a - b);
  const spanSeconds = ((sorted.at(-1) ?? 0) - (sorted[0] ?? 0)) / 1000;
  const windows = windowCounts(sorted);
  return {
    calls: sorted.length,
    rate: sorted.length > 1 && spanSeconds > 0 ? (sorted.length - 1) / spanSeconds : 0,
    maxInWindow: Math.max(0, ...windows.map((window) => window.count)),
    crowdedAtSeconds: windows
      .filter((window) => window.count > CALLS_PER_SECOND)
      .map((window) => (window.startMs - originMs) / 1000),
  };
}

/** The most starts in any window [s, s + 1000 ms) that begins at a start s. */
function maxInAnyWindow(startsMs: readonly number[]): number {
  const windows = windowCounts(startsMs.toSorted((a, b) => a - b));
  return Math.max(0, ...windows.map((window) => window.count));
}

/** For each start s of a sorted list, how many starts fall in [s, s + 1000 ms). */
function windowCounts(sorted: readonly number[]): { startMs: number; count: number }[] {
  const windows: { startMs: number; count: number }[] = [];
  for (let i = 0, j = 0; i < sorted.length; i++) {
    const startMs = sorted[i] ?? 0;
    while (j < sorted.length && (sorted[j] ?? 0) < startMs + 1000) j++;
    windows.push({ startMs, count: j - i });
  }
  return windows;
}

/**
 * How long after its recorded start each call reached the sandbox. The sandbox does not log which
 * order a request is for, so the i-th start is paired with the i-th arrival: calls a third of a
 * second apart do not overtake each other. Null when the counts differ (pairing would be wrong).
 */
function pairedLags(startsMs: readonly number[], arrivalsMs: readonly number[]): number[] | null {
  if (startsMs.length !== arrivalsMs.length) return null;
  const starts = startsMs.toSorted((a, b) => a - b);
  const arrivals = arrivalsMs.toSorted((a, b) => a - b);
  return starts.map((start, i) => (arrivals[i] ?? 0) - start);
}

function printSummary(pickups: readonly PickupSample[], backlog: Backlog, whole: WholeRun, marginMs: number): void {
  const ms = (values: number[], p: number) => `${percentile(values, p).toFixed(1)} ms`;
  const from201 = pickups.map((sample) => sample.from201Ms);
  const fromCreatedAt = pickups.map((sample) => sample.fromCreatedAtMs);
  const target = `p50 ≤ ${TARGET_PICKUP_P50_MS} ms`;
  const out: string[] = [
    '',
    `Idle pick-up: ${pickups.length} orders, one at a time, gate idle`,
    formatTable(
      ['from → to', 'p50', 'p99', 'max', 'target'],
      [
        ['201 at the client → charge at the sandbox', ms(from201, 0.5), ms(from201, 0.99), ms(from201, 1), target],
        [
          'created_at → first started_at',
          ms(fromCreatedAt, 0.5),
          ms(fromCreatedAt, 0.99),
          ms(fromCreatedAt, 1),
          target,
        ],
      ],
    ),
    '  (created_at is stamped by the gateway inside the create transaction, before its inserts and commit:',
    '   that row overstates the pick-up slightly; the 201 row starts after the commit and the response.)',
    '',
    `Backlog: ${ORDERS} orders round robin over ${INSTANCES} instances, accepted in ${backlog.acceptSeconds.toFixed(2)} s, ` +
      `settled after ${backlog.drainSeconds.toFixed(1)} s: ${formatCounts(backlog.statuses)}`,
    formatTable(
      ['provider calls seen by', 'calls', 'calls/s', 'target', 'max in any 1 s', 'limit'],
      [
        startsRow('provider_attempts.started_at', backlog.attempts, CALLS_PER_SECOND),
        startsRow('sandbox arrivals (atMs)', backlog.arrivals, CALLS_PER_SECOND),
      ],
    ),
    ...crowdedLines(backlog),
    `  calls by kind:outcome: ${formatCounts(backlog.kinds)}`,
    lagLine(backlog.lagMs, marginMs),
    `  long-run rate ceiling, ${CALLS_PER_SECOND} per 1 s + ${marginMs} ms: ` +
      `${(CALLS_PER_SECOND / (1 + marginMs / 1000)).toFixed(3)} calls/s (one start per 500 ms + half the margin)`,
    '  per-instance share: not measurable (neither provider_attempts nor the sandbox records the instance)',
    '',
    `Whole run (idle + backlog), max starts in any 1 s: ${whole.attempts} recorded, ${whole.arrivals} at the sandbox ` +
      `(limit ${CALLS_PER_SECOND})`,
    ...verdictLines(pickups, backlog, whole),
    '',
  ];
  process.stdout.write(out.join('\n'));
}

/** Where the limit was exceeded, so that the rows can be found in provider_attempts. */
function crowdedLines(backlog: Backlog): string[] {
  const views = [
    ['recorded', backlog.attempts],
    ['at the sandbox', backlog.arrivals],
  ] as const;
  return views
    .filter(([, starts]) => starts.crowdedAtSeconds.length > 0)
    .map(
      ([view, starts]) =>
        `  over the limit (${view}): ${starts.crowdedAtSeconds.length} window(s), starting at ` +
        `${starts.crowdedAtSeconds
          .slice(0, 8)
          .map((s) => `+${s.toFixed(3)} s`)
          .join(', ')}${starts.crowdedAtSeconds.length > 8 ? ', ...' : ''} from the first backlog request`,
    );
}

/** The spread of start → arrival lags is what the margin must absorb for the provider to see the limit held. */
function lagLine(lagMs: readonly number[] | null, marginMs: number): string {
  if (!lagMs) return '  recorded start → sandbox arrival: not paired (the counts differ)';
  const spread = Math.max(...lagMs) - Math.min(...lagMs);
  return (
    `  recorded start → sandbox arrival (i-th with i-th): min ${Math.min(...lagMs).toFixed(1)} ms, ` +
    `p50 ${percentile(lagMs, 0.5).toFixed(1)} ms, p99 ${percentile(lagMs, 0.99).toFixed(1)} ms, ` +
    `max ${Math.max(...lagMs).toFixed(1)} ms; spread ${spread.toFixed(1)} ms vs the ${marginMs} ms margin`
  );
}

function startsRow(label: string, starts: Starts, limit: number): string[] {
  return [
    label,
    String(starts.calls),
    starts.rate.toFixed(3),
    `≥ ${TARGET_RATE}`,
    String(starts.maxInWindow),
    String(limit),
  ];
}

function verdictLines(pickups: readonly PickupSample[], backlog: Backlog, whole: WholeRun): string[] {
  const p50 = percentile(
    pickups.map((sample) => sample.from201Ms),
    0.5,
  );
  const max = whole.attempts;
  const rate = Math.min(backlog.attempts.rate, backlog.arrivals.rate);
  const completed = backlog.statuses.get('COMPLETED') ?? 0;
  return [
    max > CALLS_PER_SECOND
      ? `GATE BROKEN: ${max} recorded call starts within one second (limit ${CALLS_PER_SECOND})`
      : `gate held: at most ${max} recorded call starts in any 1 s (limit ${CALLS_PER_SECOND})`,
    // Arrival = grant + the call's own way to the provider (client code, event loop, network):
    // the gate's margin absorbs the usual part of it, not an event-loop stall.
    `at the provider (sandbox arrivals): at most ${whole.arrivals} in any 1 s${whole.arrivals > CALLS_PER_SECOND ? ' — over the limit: a grant-to-send delay exceeded the margin' : ''}`,
    `rate: ${rate.toFixed(3)} calls/s (the lower of the two views), target ≥ ${TARGET_RATE}: ${rate >= TARGET_RATE ? 'met' : 'MISSED'}`,
    `idle pick-up p50 (201 → sandbox): ${p50.toFixed(1)} ms, target ≤ ${TARGET_PICKUP_P50_MS} ms: ` +
      `${p50 <= TARGET_PICKUP_P50_MS ? 'met' : 'MISSED'}`,
    ...(completed === ORDERS ? [] : [`NOT SETTLED: only ${completed} of ${ORDERS} backlog orders COMPLETED in time`]),
  ];
}

/** 1 if the gate granted more than its limit in some second, or the backlog did not complete. */
function verdict(backlog: Backlog, whole: WholeRun): number {
  if (whole.attempts > CALLS_PER_SECOND) return 1;
  return (backlog.statuses.get('COMPLETED') ?? 0) === ORDERS ? 0 : 1;
}

function formatCounts(counts: ReadonlyMap<string, number>): string {
  return [...counts.entries()].map(([name, n]) => `${n} ${name}`).join(', ') || 'none';
}

/** The first column left-aligned, the others right-aligned, indented by two spaces. */
function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]?.length ?? 0)));
  const format = (cells: readonly string[]) =>
    `  ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ')}`;
  return [format(header), ...rows.map(format)].join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exitCode = 1;
});
