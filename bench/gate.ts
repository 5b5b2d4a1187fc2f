// `npm run bench:gate`: does the global rate gate hold where the provider counts — at the provider —
// across instances, first calls, restarts, cold connections and a busy CPU; how close does it get
// to its limit under a backlog; and how fast does an idle gateway pick a new order up?
//
// Three gateway instances (child processes, one database) and the provider sandbox (a child process
// too, stamping arrivals on its own event loop) with PROVIDER_CALLS_PER_SECOND=2. Instance k talks
// to the sandbox at 127.0.0.k, so the sandbox's arrival log tells which instance sent each call.
//   1. cold start: BENCH_ORDERS (default 60) orders as soon as the instances are up, so that every
//      instance's first provider call meets a backlog; once a third of them are done, instance 3 is
//      restarted (BENCH_RESTART=0: not), and the new process's first call meets the backlog too;
//   2. busy CPU: BENCH_BUSY_ORDERS (default 60; 0 skips) orders while BENCH_CPU_BURNERS (default:
//      one per CPU) processes spin on every core;
//   3. idle pick-up: BENCH_IDLE_ORDERS (default 20; 0 skips) orders one at a time, each once the
//      previous one is COMPLETED and its provider call is at least 600 ms old, so that the gate is
//      idle: the latency from commit to provider call, p50/p99 (target: p50 ≤ 100 ms).
// For each backlog: the achieved rate (target ≥ 1.9 calls/s), the most calls in any 1-second
// window as recorded (provider_attempts) and as the sandbox saw them arrive, and grant → arrival
// lags (each arrival paired with its call by Idempotency-Key). BENCH_SANDBOX_SWITCHES (JSON) sets
// sandbox switches for the whole run, e.g. '{"connectDelayMs":150}' (a provider slow to take new
// connections), '{"idleResetMs":300}' (idle connections reset), '{"latencyMs":1200}' (calls overlap,
// so instances open more connections). BENCH_ARRIVALS_FILE=<path> keeps the raw figures (JSON).
// Exits 1 if any 1-second window ever held more than the limit, recorded or at the sandbox (the gate
// is broken), or an order did not complete; not for a missed rate or latency target. Database as in
// bench/ingest.ts: a fresh one on DATABASE_URL's server, or a temporary embedded PostgreSQL;
// everything is stopped and dropped at the end.
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import pg from 'pg';
import type { RequestRecord } from '../sandbox/request-log.ts';
import { loadConfig } from '../src/config/config.ts';
import { freePort } from '../src/db/embedded-postgres.ts';
import {
  BENCH_ORDER,
  type Cleanup,
  createMerchant,
  formatTable,
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

const ORDERS = count('BENCH_ORDERS', 60);
const BUSY_ORDERS = count('BENCH_BUSY_ORDERS', 60);
const IDLE_ORDERS = count('BENCH_IDLE_ORDERS', 20);
const CPU_BURNERS = count('BENCH_CPU_BURNERS', availableParallelism());
const RESTART = process.env.BENCH_RESTART !== '0';
const SANDBOX_SWITCHES = process.env.BENCH_SANDBOX_SWITCHES ?? '{}';
/** If set, the sandbox's arrival log and the recorded attempts of the whole run are written there (JSON). */
const ARRIVALS_FILE = process.env.BENCH_ARRIVALS_FILE;
const INSTANCES = 3;
const CALLS_PER_SECOND = 2;
const TARGET_RATE = 1.9;
const TARGET_PICKUP_P50_MS = 100;
/**
 * Gap between an idle order's creation and the previous provider call. The gate lets a call start
 * at once when the previous call is a window / limit old and the one two places back a window old;
 * with every call at least 600 ms after the one before, both hold (at the default 1 s + 40 ms).
 */
const IDLE_GAP_MS = 600;
const IDLE_ORDER_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 30_000;

type Created = Readonly<{ id: string; receivedAtMs: number }>;
type PickupSample = Readonly<{ fromCreatedAtMs: number; from201Ms: number }>;
type Attempt = Readonly<{ orderId: string; startedAtMs: number; kind: string; outcome: string | null; grants: number }>;
type Starts = Readonly<{
  calls: number;
  rate: number;
  maxInWindow: number;
  /** Where windows held more than the limit: seconds from the start of the phase. */
  crowdedAtSeconds: number[];
}>;
/** One gateway process: its instance number, when it started, and its first call's lag. */
type ProcessStart = Readonly<{ label: string; address: string; startedAtMs: number }>;
type Backlog = Readonly<{
  name: string;
  orders: number;
  acceptSeconds: number;
  drainSeconds: number;
  statuses: ReadonlyMap<string, number>;
  attempts: Starts;
  arrivals: Starts;
  kinds: ReadonlyMap<string, number>;
  /** Sandbox arrival minus the call's recorded start (its grant), paired by Idempotency-Key. */
  lagMs: number[];
  unpaired: number;
  /** Arrivals that were the first request on their connection (cold), of all arrivals. */
  coldArrivals: number;
  /** Grants given back unused (the request could not leave in time) and asked again. */
  staleGrants: number;
  firstCalls: ReadonlyArray<Readonly<{ label: string; lagMs: number | null }>>;
  notes: readonly string[];
}>;
type WholeRun = Readonly<{ attempts: number; arrivals: number; arrivalCount: number }>;

type Instance = { process: ServiceProcess; address: string; port: number };

async function main(): Promise<void> {
  stopOnCtrlC('stopping the current phase');
  const cleanups: Cleanup[] = [];
  try {
    const database = await openBenchDatabase(cleanups);
    // The sandbox runs in a process of its own, like a real provider: its arrival stamps must not
    // wait for this process's event loop, which is busy sending the backlog's orders. It listens on
    // every address so that each instance can reach it at a loopback address of its own.
    const sandboxPort = await freePort();
    const sandbox = spawnService(
      {
        ...process.env,
        SANDBOX_HOST: '0.0.0.0',
        SANDBOX_PORT: String(sandboxPort),
        SANDBOX_SWITCHES,
        LOG_LEVEL: 'warn',
      },
      'sandbox',
      { script: 'sandbox/main.ts', port: String(sandboxPort), healthPath: '/__admin/switches' },
    );
    cleanups.push(sandbox.stop);
    await sandbox.ready;

    const env = serviceEnv(database.url);
    const processes: ProcessStart[] = [];
    const instances = await startInstances(env, sandboxPort, processes, cleanups);
    const merchant = await createMerchant(database.url);
    const pool = new pg.Pool({ connectionString: database.url, max: 2, application_name: 'bench-gate' });
    pool.on('error', () => {}); // an idle client losing its server must not crash the bench
    cleanups.push(() => pool.end());

    const marginMs = loadConfig(env).gate.marginMs;
    await printSetup(pool, marginMs);
    const backlogs: Backlog[] = [];
    if (ORDERS > 0) {
      backlogs.push(
        await runBacklog(pool, sandbox, instances, merchant.apiKey, {
          name: `cold start${RESTART ? ' + restart of instance 3' : ''}`,
          orders: ORDERS,
          processes,
          during: RESTART
            ? (ids) => restartWhenAThirdDone(pool, ids, instances, env, sandboxPort, processes)
            : undefined,
        }),
      );
    }
    if (BUSY_ORDERS > 0) {
      const burners = startCpuBurners(CPU_BURNERS);
      cleanups.push(burners.stop);
      try {
        backlogs.push(
          await runBacklog(pool, sandbox, instances, merchant.apiKey, {
            name: `busy CPU (${CPU_BURNERS} spinning processes)`,
            orders: BUSY_ORDERS,
            processes: [],
          }),
        );
      } finally {
        await burners.stop();
      }
    }
    const pickups = IDLE_ORDERS > 0 ? await measureIdlePickup(pool, sandbox, instances, merchant.apiKey) : [];
    const whole = await wholeRunMaxWindows(pool, sandbox);
    printSummary(pickups, backlogs, whole, marginMs);
    process.exitCode = verdict(backlogs, whole);
  } catch (error) {
    if (!interrupted()) throw error;
    process.stdout.write(`interrupted: ${(error as Error)?.message ?? String(error)}\n`);
    process.exitCode = 130;
  } finally {
    await runCleanups(cleanups);
  }
}

function count(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === '0') return 0;
  return Math.round(positiveNumber(name, raw, fallback));
}

// ---------------------------------------------------------------------------------------------
// Instances

/** What every instance shares; each gets its own PORT and sandbox address in startInstance. */
function serviceEnv(databaseUrl: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: databaseUrl,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DEMO_MERCHANT: 'false',
    PROVIDER_CALLS_PER_SECOND: String(CALLS_PER_SECOND),
    WORKER_CONCURRENCY: '4',
  };
}

/** Instance k (1-based) reaches the sandbox at 127.0.0.k: the sandbox logs the address a request came to. */
function instanceAddress(k: number): string {
  return `127.0.0.${k}`;
}

async function startInstance(
  env: NodeJS.ProcessEnv,
  k: number,
  sandboxPort: number,
  processes: ProcessStart[],
  label: string,
): Promise<Instance> {
  const port = await freePort();
  const address = instanceAddress(k);
  const sandboxUrl = `http://${address}:${sandboxPort}`;
  const child = spawnService(
    { ...env, PORT: String(port), STRIPE_API_URL: sandboxUrl, MPESA_API_URL: sandboxUrl },
    label,
  );
  processes.push({ label, address, startedAtMs: Date.now() });
  return { process: child, address, port };
}

/**
 * Spawns the instances together (their migrations meet at the advisory lock) and waits until each
 * is healthy. Their stop is registered before the wait, so a failed start still stops them all.
 */
async function startInstances(
  env: NodeJS.ProcessEnv,
  sandboxPort: number,
  processes: ProcessStart[],
  cleanups: Cleanup[],
): Promise<Instance[]> {
  const instances: Instance[] = [];
  for (let k = 1; k <= INSTANCES; k++) {
    instances.push(await startInstance(env, k, sandboxPort, processes, `instance ${k}`));
  }
  cleanups.push(async () => {
    await Promise.all(instances.map((instance) => instance.process.stop()));
  });
  await Promise.all(instances.map((instance) => instance.process.ready));
  return instances;
}

/** Once a third of `ids` are terminal, instance 3 stops (SIGTERM) and a new process takes its place. */
async function restartWhenAThirdDone(
  pool: pg.Pool,
  ids: readonly string[],
  instances: Instance[],
  env: NodeJS.ProcessEnv,
  sandboxPort: number,
  processes: ProcessStart[],
): Promise<string> {
  const deadline = Date.now() + (ids.length / TARGET_RATE + 60) * 1000;
  for (;;) {
    const counts = await statusCounts(pool, ids);
    if ((counts.get('COMPLETED') ?? 0) + (counts.get('FAILED') ?? 0) >= ids.length / 3) break;
    if (Date.now() > deadline || interrupted()) return 'restart skipped (the backlog did not progress)';
    await sleep(250);
  }
  const old = instances[2];
  if (!old) throw new Error('no instance 3');
  const stopAt = performance.now();
  await old.process.stop();
  const stoppedMs = performance.now() - stopAt;
  const replacement = await startInstance(env, 3, sandboxPort, processes, 'instance 3 (restarted)');
  instances[2] = replacement;
  await replacement.process.ready;
  return `instance 3 stopped (SIGTERM) in ${stoppedMs.toFixed(0)} ms and started again`;
}

async function printSetup(pool: pg.Pool, marginMs: number): Promise<void> {
  const version = (await pool.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v;
  const ceiling = CALLS_PER_SECOND / (1 + marginMs / 1000);
  process.stdout.write(
    `PostgreSQL ${version} (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'}), ${availableParallelism()} CPUs, ` +
      `${INSTANCES} instances × WORKER_CONCURRENCY=4, PROVIDER_CALLS_PER_SECOND=${CALLS_PER_SECOND}, ` +
      `gate window 1 s + ${marginMs} ms margin (ceiling ${ceiling.toFixed(3)} calls/s), sandbox switches ${SANDBOX_SWITCHES}\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// A busy CPU

/** `n` processes spinning on the CPU until stopped: the instances, the database and the sandbox compete with them. */
function startCpuBurners(n: number): { stop(): Promise<void> } {
  const children: ChildProcess[] = Array.from({ length: n }, () =>
    spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }),
  );
  let stopped: Promise<void> | undefined;
  return {
    stop: () => {
      stopped ??= Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGKILL');
            }),
        ),
      ).then(() => {});
      return stopped;
    },
  };
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

function instanceUrl(instances: readonly Instance[], i: number): string {
  const instance = instances[i % instances.length];
  if (!instance) throw new Error('no instances');
  return instance.process.url;
}

// ---------------------------------------------------------------------------------------------
// Backlogs

async function runBacklog(
  pool: pg.Pool,
  sandbox: ServiceProcess,
  instances: Instance[],
  apiKey: string,
  phase: Readonly<{
    name: string;
    orders: number;
    processes: readonly ProcessStart[];
    during?: ((ids: readonly string[]) => Promise<string>) | undefined;
  }>,
): Promise<Backlog> {
  // The previous phase has finished its calls: every request from here on is this phase's.
  const seen = (await sandboxRequests(sandbox)).length;
  const originMs = Date.now();
  const started = performance.now();
  const tag = phase.name.split(' ')[0];
  const created = await Promise.all(
    Array.from({ length: phase.orders }, (_, i) =>
      createOrder(instanceUrl(instances, i), apiKey, `${tag}-${originMs}-${i}`),
    ),
  );
  const acceptSeconds = (performance.now() - started) / 1000;
  const ids = created.map((order) => order.id);
  const during = phase.during?.(ids);
  const statuses = await waitForOrders(pool, ids, Date.now() + (phase.orders / TARGET_RATE + 90) * 1000, 250);
  const drainSeconds = (performance.now() - started) / 1000;
  const notes = during ? [await during] : [];

  const attempts = await attemptsOf(pool, ids);
  const arrivals = (await sandboxRequests(sandbox)).slice(seen);
  const kinds = new Map<string, number>();
  for (const attempt of attempts) {
    const label = `${attempt.kind}:${attempt.outcome ?? 'unfinished'}`;
    kinds.set(label, (kinds.get(label) ?? 0) + 1);
  }
  const { lagMs, unpaired, lagOf } = pairByKey(attempts, arrivals);
  return {
    name: phase.name,
    orders: phase.orders,
    acceptSeconds,
    drainSeconds,
    statuses,
    attempts: describeStarts(
      attempts.map((attempt) => attempt.startedAtMs),
      originMs,
    ),
    arrivals: describeStarts(
      arrivals.map((request) => request.atMs),
      originMs,
    ),
    kinds,
    lagMs,
    unpaired,
    coldArrivals: arrivals.filter((request) => request.connection?.request === 1).length,
    staleGrants: attempts.reduce((sum, attempt) => sum + attempt.grants - 1, 0),
    firstCalls: phase.processes.map((process) => {
      const first = arrivals.find(
        (request) => request.connection?.localAddress === process.address && request.atMs >= process.startedAtMs,
      );
      return { label: process.label, lagMs: first ? lagOf(first) : null };
    }),
    notes,
  };
}

/**
 * The orders' provider calls: recorded start (ms since the epoch, microsecond precision), kind,
 * outcome, and how many grants each took (provider_attempts.gate_grants, from sql/008; 1 before it).
 */
async function attemptsOf(pool: pg.Pool, ids: readonly string[] | null): Promise<Attempt[]> {
  const hasGrants = (
    await pool.query(
      "select 1 from information_schema.columns where table_name = 'provider_attempts' and column_name = 'gate_grants'",
    )
  ).rowCount;
  const { rows } = await pool.query<{
    order_id: string;
    ms: string;
    kind: string;
    outcome: string | null;
    grants: number;
  }>(
    `select order_id, extract(epoch from started_at) * 1000 as ms, kind, outcome,
            ${hasGrants ? 'gate_grants' : '1'}::int as grants
       from provider_attempts
      where $1::text[] is null or order_id = any($1)
      order by started_at`,
    [ids],
  );
  return rows.map((row) => ({
    orderId: row.order_id,
    startedAtMs: Number(row.ms),
    kind: row.kind,
    outcome: row.outcome,
    grants: row.grants,
  }));
}

/**
 * Grant → arrival for every call: the sandbox logs each request's Idempotency-Key (`<order>-charge`
 * on every Stripe create), so the n-th arrival with an order's key is that order's n-th keyed call.
 */
function pairByKey(
  attempts: readonly Attempt[],
  arrivals: readonly RequestRecord[],
): { lagMs: number[]; unpaired: number; lagOf: (arrival: RequestRecord) => number | null } {
  const startsByKey = new Map<string, number[]>();
  for (const attempt of attempts) {
    const key = `${attempt.orderId}-charge`;
    startsByKey.set(key, [...(startsByKey.get(key) ?? []), attempt.startedAtMs]);
  }
  const lags = new Map<RequestRecord, number>();
  const used = new Map<string, number>();
  let unpaired = 0;
  for (const arrival of arrivals) {
    const key = arrival.idempotencyKey;
    const n = key ? (used.get(key) ?? 0) : 0;
    const start = key ? startsByKey.get(key)?.[n] : undefined;
    if (key === null || start === undefined) {
      unpaired++;
      continue;
    }
    used.set(key, n + 1);
    lags.set(arrival, arrival.atMs - start);
  }
  return { lagMs: [...lags.values()], unpaired, lagOf: (arrival) => lags.get(arrival) ?? null };
}

/** Every provider request the sandbox has received, in arrival order (its admin API). */
async function sandboxRequests(sandbox: ServiceProcess): Promise<RequestRecord[]> {
  const response = await fetch(`${sandbox.url}/__admin/requests`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  if (!response.ok) throw new Error(`sandbox admin: HTTP ${response.status}`);
  return ((await response.json()) as { requests: RequestRecord[] }).requests;
}

/** Every call the run made (all phases), as recorded and as the sandbox saw them arrive. */
async function wholeRunMaxWindows(pool: pg.Pool, sandbox: ServiceProcess): Promise<WholeRun> {
  const attempts = await attemptsOf(pool, null);
  const arrivals = await sandboxRequests(sandbox);
  if (ARRIVALS_FILE) await writeFile(ARRIVALS_FILE, JSON.stringify({ requests: arrivals, attempts }));
  return {
    attempts: maxInAnyWindow(attempts.map((attempt) => attempt.startedAtMs)),
    arrivals: maxInAnyWindow(arrivals.map((request) => request.atMs)),
    arrivalCount: arrivals.length,
  };
}

// ---------------------------------------------------------------------------------------------
// Idle pick-up latency

async function measureIdlePickup(
  pool: pg.Pool,
  sandbox: ServiceProcess,
  instances: readonly Instance[],
  apiKey: string,
): Promise<PickupSample[]> {
  const samples: PickupSample[] = [];
  let lastCallMs = Date.now();
  for (let i = 0; i < IDLE_ORDERS; i++) {
    await sleep(Math.max(0, lastCallMs + IDLE_GAP_MS - Date.now()));
    if (interrupted()) throw new Error('during the idle pick-up phase');
    const seen = (await sandboxRequests(sandbox)).length;
    const created = await createOrder(instanceUrl(instances, i), apiKey, `idle-${Date.now()}-${i}`);
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

function printSummary(
  pickups: readonly PickupSample[],
  backlogs: readonly Backlog[],
  whole: WholeRun,
  marginMs: number,
): void {
  const out: string[] = [''];
  for (const backlog of backlogs) out.push(...backlogLines(backlog, marginMs), '');
  if (pickups.length > 0) out.push(...pickupLines(pickups), '');
  out.push(
    `Whole run: ${whole.arrivalCount} provider requests; max in any 1 s: ${whole.attempts} recorded, ` +
      `${whole.arrivals} at the sandbox (limit ${CALLS_PER_SECOND})`,
    ...verdictLines(pickups, backlogs, whole),
    '',
  );
  process.stdout.write(out.join('\n'));
}

function backlogLines(backlog: Backlog, marginMs: number): string[] {
  const lag = backlog.lagMs;
  const firstCalls = backlog.firstCalls
    .map((first) => `${first.label} ${first.lagMs === null ? 'n/a' : `${first.lagMs.toFixed(1)} ms`}`)
    .join(', ');
  return [
    `Backlog, ${backlog.name}: ${backlog.orders} orders round robin over ${INSTANCES} instances, accepted in ` +
      `${backlog.acceptSeconds.toFixed(2)} s, settled after ${backlog.drainSeconds.toFixed(1)} s: ${formatCounts(backlog.statuses)}`,
    ...backlog.notes.map((note) => `  ${note}`),
    formatTable(
      ['provider calls seen by', 'calls', 'calls/s', 'target', 'max in any 1 s', 'limit'],
      [
        startsRow('provider_attempts.started_at', backlog.attempts),
        startsRow('sandbox arrivals (atMs)', backlog.arrivals),
      ],
    ),
    ...crowdedLines(backlog),
    `  calls by kind:outcome: ${formatCounts(backlog.kinds)}`,
    lag.length === 0
      ? '  grant → sandbox arrival: no call paired'
      : `  grant → sandbox arrival (${lag.length} calls paired by Idempotency-Key${backlog.unpaired ? `, ${backlog.unpaired} not` : ''}): ` +
        `min ${Math.min(...lag).toFixed(1)} ms, p50 ${percentile(lag, 0.5).toFixed(1)} ms, ` +
        `p99 ${percentile(lag, 0.99).toFixed(1)} ms, max ${Math.max(...lag).toFixed(1)} ms ` +
        `(spread ${(Math.max(...lag) - Math.min(...lag)).toFixed(1)} ms vs the ${marginMs} ms margin)`,
    ...(firstCalls ? [`  first call of each process, grant → arrival: ${firstCalls}`] : []),
    `  arrivals on a new connection: ${backlog.coldArrivals} of ${backlog.arrivals.calls}; ` +
      `grants given back unused and asked again: ${backlog.staleGrants}`,
  ];
}

function pickupLines(pickups: readonly PickupSample[]): string[] {
  const ms = (values: number[], p: number) => `${percentile(values, p).toFixed(1)} ms`;
  const from201 = pickups.map((sample) => sample.from201Ms);
  const fromCreatedAt = pickups.map((sample) => sample.fromCreatedAtMs);
  const target = `p50 ≤ ${TARGET_PICKUP_P50_MS} ms`;
  return [
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
  ];
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
          .join(', ')}${starts.crowdedAtSeconds.length > 8 ? ', ...' : ''} from the phase's first request`,
    );
}

function startsRow(label: string, starts: Starts): string[] {
  return [
    label,
    String(starts.calls),
    starts.rate.toFixed(3),
    `≥ ${TARGET_RATE}`,
    String(starts.maxInWindow),
    String(CALLS_PER_SECOND),
  ];
}

function verdictLines(pickups: readonly PickupSample[], backlogs: readonly Backlog[], whole: WholeRun): string[] {
  const lines = [
    whole.attempts > CALLS_PER_SECOND
      ? `GATE BROKEN: ${whole.attempts} recorded call starts within one second (limit ${CALLS_PER_SECOND})`
      : `gate held on the recorded starts: at most ${whole.attempts} in any 1 s (limit ${CALLS_PER_SECOND})`,
    whole.arrivals > CALLS_PER_SECOND
      ? `GATE BROKEN AT THE PROVIDER: the sandbox saw ${whole.arrivals} calls arrive within one second (limit ${CALLS_PER_SECOND})`
      : `gate held at the provider: the sandbox saw at most ${whole.arrivals} arrive in any 1 s (limit ${CALLS_PER_SECOND})`,
  ];
  for (const backlog of backlogs) {
    const rate = Math.min(backlog.attempts.rate, backlog.arrivals.rate);
    const completed = backlog.statuses.get('COMPLETED') ?? 0;
    lines.push(
      `${backlog.name}: rate ${rate.toFixed(3)} calls/s (the lower of the two views), target ≥ ${TARGET_RATE}: ` +
        `${rate >= TARGET_RATE ? 'met' : 'MISSED'}${completed === backlog.orders ? '' : `; NOT SETTLED: only ${completed} of ${backlog.orders} orders COMPLETED in time`}`,
    );
  }
  if (pickups.length > 0) {
    const p50 = percentile(
      pickups.map((sample) => sample.from201Ms),
      0.5,
    );
    lines.push(
      `idle pick-up p50 (201 → sandbox): ${p50.toFixed(1)} ms, target ≤ ${TARGET_PICKUP_P50_MS} ms: ` +
        `${p50 <= TARGET_PICKUP_P50_MS ? 'met' : 'MISSED'}`,
    );
  }
  return lines;
}

/** 1 if more than the limit started or arrived in some second, or a backlog did not complete. */
function verdict(backlogs: readonly Backlog[], whole: WholeRun): number {
  if (whole.attempts > CALLS_PER_SECOND || whole.arrivals > CALLS_PER_SECOND) return 1;
  return backlogs.every((backlog) => (backlog.statuses.get('COMPLETED') ?? 0) === backlog.orders) ? 0 : 1;
}

function formatCounts(counts: ReadonlyMap<string, number>): string {
  return [...counts.entries()].map(([name, n]) => `${n} ${name}`).join(', ') || 'none';
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exitCode = 1;
});
