// What the benchmarks share: a throwaway database (on DATABASE_URL's server or a temporary embedded
// PostgreSQL), a merchant with an API key, terminal events committed as the gateway commits them,
// the service in child processes, arrivals reported by a child process, Ctrl-C handling and cleanup
// in reverse order, CPU use, tables, and a few small numeric helpers.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createDb, createPool, type Db } from '../src/db/connection.ts';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts';
import { ensureMerchant, insertApiKey } from '../src/db/merchants.repository.ts';
import { insertOrderEvents } from '../src/db/outbox-events.repository.ts';
import { insertOrders } from '../src/db/payment-orders.repository.ts';
import { newApiKey } from '../src/domain/api-key.ts';
import { newOrder } from '../src/domain/create-payment-order.ts';
import type { NewPaymentOrder, PaymentOrder } from '../src/domain/payment-order.ts';
import { createLogger } from '../src/lib/logger.ts';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
const STARTUP_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
/** An embedded server's fast shutdown takes well under a second here; past this it is taken as gone. */
const EMBEDDED_STOP_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Ctrl-C and cleanup

let interruptedFlag = false;

/** True once Ctrl-C was pressed: loops end early, cleanup still runs. */
export function interrupted(): boolean {
  return interruptedFlag;
}

/** The first Ctrl-C asks the bench to wrap up and clean up; a second one quits at once. */
export function stopOnCtrlC(what: string): void {
  process.on('SIGINT', () => {
    if (interruptedFlag) process.exit(130);
    interruptedFlag = true;
    process.stderr.write(`\ninterrupted: ${what} and cleaning up (Ctrl-C again to quit now)\n`);
  });
}

export type Cleanup = () => Promise<void>;

/** Runs the cleanups last-in first-out; one failing does not stop the others. */
export async function runCleanups(cleanups: Cleanup[]): Promise<void> {
  for (const cleanup of cleanups.toReversed()) {
    await cleanup().catch((error: unknown) => process.stderr.write(`cleanup failed: ${String(error)}\n`));
  }
}

// ---------------------------------------------------------------------------------------------
// Database server and bench database

export type DatabaseServer = Readonly<{ adminUrl: string; stop(): Promise<void> }>;

export async function startDatabaseServer(): Promise<DatabaseServer> {
  if (process.env.DATABASE_URL) return { adminUrl: process.env.DATABASE_URL, stop: async () => {} };
  const dir = await mkdtemp(path.join(tmpdir(), 'pog-bench-'));
  const removeDir = () => rm(dir, { recursive: true, force: true });
  try {
    // mkdtemp makes the directory 0700; as root the server runs as `postgres`, which must enter it.
    await chmod(dir, 0o755);
    const embedded = await startEmbeddedPostgres({ dataDir: dir, port: 0, logger: createLogger('warn') });
    return {
      adminUrl: embedded.url,
      stop: async () => {
        // Ctrl-C reaches the server too (same process group) and it shuts down by itself; then
        // embedded-postgres's stop() waits for an exit that has already happened, for ever (and the
        // bench would end there, silently, without removing the directory).
        await withDeadline(embedded.stop(), EMBEDDED_STOP_TIMEOUT_MS);
        await removeDir();
      },
    };
  } catch (error) {
    await removeDir();
    throw error;
  }
}

export async function createBenchDatabase(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `pog_bench_${randomBytes(4).toString('hex')}`;
  await withClient(adminUrl, (client) => client.query(`create database "${name}"`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    // force: a connection the service failed to close must not keep the database alive.
    drop: () =>
      withClient(adminUrl, (client) => client.query(`drop database if exists "${name}" with (force)`)).then(() => {}),
  };
}

/** A fresh database for one bench run, on DATABASE_URL's server or a temporary embedded one; its cleanups registered. */
export async function openBenchDatabase(cleanups: Cleanup[]): Promise<{ url: string }> {
  const server = await startDatabaseServer();
  cleanups.push(server.stop);
  const database = await createBenchDatabase(server.adminUrl);
  cleanups.push(database.drop);
  return database;
}

export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  // A server going away (Ctrl-C stops it too) fails the query or connect below; unheard, the
  // client's 'error' event would crash the bench before its cleanups ran.
  client.on('error', () => {});
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The order every bench sends (a card the sandbox charges), as JSON and as the service sees it after validation. */
export const BENCH_ORDER = {
  amount: 1050,
  currency: 'USD',
  paymentMethod: { type: 'card', token: 'pm_card_visa' },
  reference: 'bench',
} as const satisfies NewPaymentOrder;

export type Merchant = Readonly<{ id: string; apiKey: string }>;

/** A merchant and an API key, written with the service's own repository functions. */
export async function createMerchant(databaseUrl: string): Promise<Merchant> {
  const db = createDb(createPool(databaseUrl, 2, 'bench-setup'));
  try {
    const merchant = await ensureMerchant(db, 'bench');
    const created = newApiKey();
    await insertApiKey(db, merchant.id, created.hash, created.prefix);
    return { id: merchant.id, apiKey: created.key };
  } finally {
    await db.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Terminal events, committed as the gateway commits them

const EVENT_PROVIDER = 'stripe';
const EVENT_TYPE = 'payment_order.completed';

let orderCount = 0;
/** One kysely over each bench pool, made on first use; ending the pool is the bench's cleanup. */
const dbs = new WeakMap<pg.Pool, Db>();

/**
 * `count` COMPLETED orders and their payment_order.completed outbox events in one transaction,
 * written by the product's own repositories (insertOrders, insertOrderEvents: one multi-row INSERT
 * each, so that one connection commits a backlog faster than the gateway drains it). The orders are
 * the domain's newOrder; status COMPLETED on INSERT is allowed, the state machine's trigger being
 * BEFORE UPDATE only. The pool should come from src/db/connection.ts createPool, whose clients
 * ignore a server going away (Ctrl-C stops it too): the failed query reports it.
 * Returns the event ids and when COMMIT returned.
 */
export async function commitEvents(
  pool: pg.Pool,
  merchantId: string,
  count: number,
): Promise<{ ids: string[]; committedAtMs: number }> {
  let db = dbs.get(pool);
  if (!db) {
    db = createDb(pool);
    dbs.set(pool, db);
  }
  const now = new Date();
  const orders: PaymentOrder[] = Array.from({ length: count }, () => {
    const n = ++orderCount;
    return {
      ...newOrder(merchantId, EVENT_PROVIDER, BENCH_ORDER, now),
      status: 'COMPLETED',
      providerReference: `pi_bench_events_${n}`,
    };
  });
  const ids = await db.transaction().execute(async (trx) => {
    await insertOrders(
      trx,
      orders.map((order) => ({ order, idempotencyKey: `bench-events-${order.id}` })),
    );
    return insertOrderEvents(trx, orders, EVENT_TYPE);
  });
  return { ids, committedAtMs: nowMs() };
}

// ---------------------------------------------------------------------------------------------
// The service, in a child process

export type ServiceProcess = Readonly<{
  url: string;
  /** The child's process id (undefined if it could not be spawned), e.g. to read its CPU time. */
  pid: number | undefined;
  ready: Promise<void>;
  stop(): Promise<void>;
}>;

/**
 * `node src/main.ts` with `env` (which must set PORT); its output goes to stderr, prefixed by `name`.
 * Another script (the provider sandbox) may be run instead, on `port`, ready once `healthPath` answers 200.
 */
export function spawnService(
  env: NodeJS.ProcessEnv,
  name = 'service',
  { script = 'src/main.ts', port = env.PORT, healthPath = '/healthz' } = {},
): ServiceProcess {
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  // Its output is forwarded (and so drained: a full pipe would block the service).
  child.stdout.on('data', (chunk: Buffer) => process.stderr.write(prefixLines(`[${name}] `, chunk)));
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(prefixLines(`[${name}] `, chunk)));
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(`exited with ${signal ?? code}`));
    child.once('error', (error) => resolve(`failed to spawn: ${error.message}`));
  });
  return {
    url,
    pid: child.pid,
    ready: waitForHealthy(url, healthPath, name, exited),
    stop: () => stopChild(child, exited),
  };
}

/** Polls GET `healthPath` until it answers 200; fails if the child exits or the deadline passes. */
async function waitForHealthy(url: string, healthPath: string, name: string, exited: Promise<string>): Promise<void> {
  let exitReason: string | null = null;
  void exited.then((reason) => {
    exitReason = reason;
  });
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exitReason) throw new Error(`${name} ${exitReason} before it was healthy`);
    if (interrupted()) throw new Error(`interrupted while ${name} was starting`);
    if ((await getStatus(`${url}${healthPath}`).catch(() => 0)) === 200) return;
    await sleep(100);
  }
  throw new Error(`${name} was not healthy within ${STARTUP_TIMEOUT_MS} ms`);
}

/** SIGTERM, the service's graceful stop; SIGKILL only if it has not exited after STOP_TIMEOUT_MS. */
async function stopChild(child: ChildProcess, exited: Promise<string>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

function getStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 1_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------
// Arrivals reported by a child process (a webhook subscriber, a Kafka consumer)

/** Milliseconds since the epoch with sub-millisecond precision; comparable across this machine's processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Every (id, arrival time) a child reported: the first arrival per id, repeats, and waiting for ids. */
export type ArrivalLog = Readonly<{
  /** One reported arrival; an empty id counts as an arrival without one. */
  record(id: string, atMs: number): void;
  /** Resolves true once every id arrived at least once, false on timeout or Ctrl-C. */
  waitFor(ids: readonly string[], timeoutMs: number): Promise<boolean>;
  firstMs(id: string): number | undefined;
  /** Arrivals of this id beyond the first. */
  duplicates(id: string): number;
  /** Arrivals in all, repeats and those without an id included. */
  total(): number;
  withoutId(): number;
}>;

export function createArrivalLog(): ArrivalLog {
  const first = new Map<string, number>();
  const counts = new Map<string, number>();
  let total = 0;
  let withoutId = 0;
  let waiter: { remaining: Set<string>; done: () => void } | null = null;
  return {
    record(id, atMs) {
      total++;
      if (id === '') {
        withoutId++;
        return;
      }
      counts.set(id, (counts.get(id) ?? 0) + 1);
      if (first.has(id)) return;
      first.set(id, atMs);
      if (!waiter) return;
      waiter.remaining.delete(id);
      if (waiter.remaining.size === 0) waiter.done();
    },
    waitFor(ids, timeoutMs) {
      const remaining = new Set(ids.filter((id) => !first.has(id)));
      if (remaining.size === 0) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const finish = (ok: boolean) => {
          clearTimeout(timer);
          clearInterval(watch);
          waiter = null;
          resolve(ok);
        };
        const timer = setTimeout(() => finish(false), timeoutMs);
        const watch = setInterval(() => {
          if (interrupted()) finish(false);
        }, 200);
        waiter = { remaining, done: () => finish(true) };
      });
    },
    firstMs: (id) => first.get(id),
    duplicates: (id) => Math.max(0, (counts.get(id) ?? 0) - 1),
    total: () => total,
    withoutId: () => withoutId,
  };
}

/** Asks a forked reporter to stop ('stop' over IPC, SIGTERM without IPC), SIGKILL after `timeoutMs`. */
export async function stopForked(child: ChildProcess, exited: Promise<string>, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (child.connected) child.send('stop');
  else child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// HTTP load: one request, and closed-loop clients

export type Reply = Readonly<{ status: number; body: string }>;
/** A load run: successes per second of wall time, their latencies, and the failures by label. */
export type Measured = Readonly<{ perSecond: number; latenciesMs: number[]; failures: Map<string, number> }>;
const HTTP_REQUEST_TIMEOUT_MS = 30_000;

/** One request on `agent` (keep-alive); resolves with the status and the whole body. */
export function httpRequest(
  agent: http.Agent,
  url: URL,
  method: string,
  body: string | null,
  headers: Record<string, string>,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers, timeout: HTTP_REQUEST_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

/**
 * `concurrency` workers sending back to back until the time is up; 200 and 201 are successes (their
 * latencies kept, `onOk` told), anything else a failure by label. The rate is over the wall time.
 */
export async function closedLoop(
  concurrency: number,
  seconds: number,
  send: () => Promise<Reply>,
  onOk?: (reply: Reply) => void,
): Promise<Measured> {
  const latenciesMs: number[] = [];
  const failures = new Map<string, number>();
  const started = performance.now();
  const deadline = started + seconds * 1_000;
  const worker = async () => {
    while (performance.now() < deadline && !interrupted()) {
      const t0 = performance.now();
      const failure = await send().then(
        (reply) => {
          if (reply.status !== 200 && reply.status !== 201) return `HTTP ${reply.status}`;
          onOk?.(reply);
          return null;
        },
        (error: unknown) => `error: ${(error as Error)?.message ?? String(error)}`,
      );
      if (failure === null) latenciesMs.push(performance.now() - t0);
      else failures.set(failure, (failures.get(failure) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedSeconds = (performance.now() - started) / 1_000;
  return { perSecond: latenciesMs.length / elapsedSeconds, latenciesMs, failures };
}

// ---------------------------------------------------------------------------------------------
// CPU use (Linux /proc; null elsewhere)

export type CpuSnapshot = Readonly<{ busy: number; total: number; perPid: (number | null)[] }> | null;
export type CpuUse = Readonly<{ seconds: number; machineBusy: number; perPid: (number | null)[] }>;
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** The machine's busy and total ticks, and each process's own (utime + stime). */
export function cpuSnapshot(pids: readonly (number | undefined)[]): CpuSnapshot {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total, perPid: pids.map(processTicks) };
  } catch {
    return null;
  }
}

function processTicks(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  } catch {
    return null;
  }
}

/** Shares of one CPU (1 = 100 % of one CPU) over the interval. */
export function cpuUse(before: CpuSnapshot, after: CpuSnapshot): CpuUse | null {
  if (!before || !after || after.total === before.total) return null;
  const cpus = availableParallelism();
  const seconds = (after.total - before.total) / CLOCK_TICKS / cpus;
  const share = (ticks: number) => ticks / CLOCK_TICKS / seconds;
  return {
    seconds,
    machineBusy: share(after.busy - before.busy),
    perPid: after.perPid.map((ticks, i) => {
      const was = before.perPid[i];
      return ticks === null || was === null || was === undefined ? null : share(ticks - was);
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/** The first column left-aligned, the others right-aligned, indented by two spaces. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]?.length ?? 0)));
  const format = (cells: readonly string[]) =>
    `  ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ')}`;
  return [format(header), ...rows.map(format)].join('\n');
}

/** A positive whole number from the environment variable `name`, else `fallback`. */
export function positiveInteger(name: string, fallback: number): number {
  return Math.round(positiveNumber(name, process.env[name], fallback));
}

export function positiveNumber(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

/** Nearest-rank percentile; 0 for no samples. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? 0;
}

function prefixLines(prefix: string, chunk: Buffer): string {
  return chunk
    .toString()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => `${prefix}${line}\n`)
    .join('');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `work`, but no longer than `ms` (then resolves anyway; `work` is left to itself). */
async function withDeadline(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// The warm-up and idle phases of bench:relay and bench:kafka

/** Whoever reports arrivals: the webhook subscriber or the Kafka consumer. */
export type ArrivalWaiter = Readonly<{ waitFor(ids: readonly string[], timeoutMs: number): Promise<boolean> }>;

/** How long one idle (or warm-up) event may take to arrive. */
const ONE_EVENT_TIMEOUT_MS = 30_000;
/** Pause after an idle event arrived, so that the gateway is idle again. */
const IDLE_GAP_MS = 50;

/** `count` events one at a time, each once the previous one arrived; not measured. */
export async function warmUp(pool: pg.Pool, merchantId: string, waiter: ArrivalWaiter, count: number): Promise<void> {
  for (let i = 0; i < count && !interrupted(); i++) {
    const { ids } = await commitEvents(pool, merchantId, 1);
    if (!(await waiter.waitFor(ids, ONE_EVENT_TIMEOUT_MS)) && !interrupted()) {
      throw new Error(`warm-up event ${ids[0]} did not arrive within ${ONE_EVENT_TIMEOUT_MS} ms`);
    }
    await sleep(IDLE_GAP_MS);
  }
}

/** `count` events one at a time, each once the previous one arrived: their ids and commit times. */
export async function idleEvents(
  pool: pg.Pool,
  merchantId: string,
  waiter: ArrivalWaiter,
  count: number,
): Promise<{ ids: string[]; commitMs: Map<string, number>; missing: number }> {
  const ids: string[] = [];
  const commitMs = new Map<string, number>();
  let missing = 0;
  for (let i = 0; i < count && !interrupted(); i++) {
    const committed = await commitEvents(pool, merchantId, 1);
    for (const id of committed.ids) {
      ids.push(id);
      commitMs.set(id, committed.committedAtMs);
    }
    if (!(await waiter.waitFor(committed.ids, ONE_EVENT_TIMEOUT_MS))) {
      if (interrupted()) break;
      missing++;
      process.stdout.write(`  idle: event ${committed.ids[0]} did not arrive within ${ONE_EVENT_TIMEOUT_MS} ms\n`);
    }
    await sleep(IDLE_GAP_MS);
  }
  return { ids, commitMs, missing };
}
