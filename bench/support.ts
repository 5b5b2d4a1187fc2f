// What the benchmarks share: a throwaway database (on DATABASE_URL's server or a temporary embedded
// PostgreSQL), a merchant with an API key, the service in child processes, Ctrl-C handling and
// cleanup in reverse order, and a few small numeric helpers.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createDb, createPool } from '../src/db/connection.ts';
import { startEmbeddedPostgres } from '../src/db/embedded-postgres.ts';
import { ensureMerchant, insertApiKey } from '../src/db/merchants.repository.ts';
import { newApiKey } from '../src/domain/api-key.ts';
import type { NewPaymentOrder } from '../src/domain/payment-order.ts';
import { createLogger } from '../src/lib/logger.ts';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
const STARTUP_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

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
        await embedded.stop();
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
// Small helpers

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
