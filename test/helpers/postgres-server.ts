import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { appendFile, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Test } from 'tap';
import { freePort } from '../../src/db/embedded-postgres.ts';
import { migrate } from '../../src/db/migrate.ts';
import { asPostgresUser, binaries } from './test-server.ts';
import { waitFor } from './wait.ts';

/** `pg_ctl stop -m`: `fast` ends sessions (57P01) and checkpoints; `immediate` quits at once (crash recovery at the next start). */
export type StopMode = 'fast' | 'immediate';

export type PostgresServerOptions = Readonly<{
  /** The port, kept across restarts. Default: a free port, chosen once. */
  port?: number;
  /** Apply the migrations in sql/ (src/db/migrate.ts) after the first start. Default true. */
  migrate?: boolean;
  /** More server settings (postgresql.conf), e.g. `{ max_connections: '20' }`. */
  settings?: Readonly<Record<string, string>>;
}>;

export type PostgresServer = Readonly<{
  /** `postgres://postgres:postgres@127.0.0.1:<port>/postgres`; the same across restarts. */
  url: string;
  port: number;
  dataDir: string;
  /** True while a postmaster runs on the data directory. */
  isRunning(): boolean;
  /** Starts the server; resolves once it accepts connections (after any crash recovery). */
  start(): Promise<void>;
  /** Stops the server (`pg_ctl stop -m <mode>`, default fast); resolves once it is down. */
  stop(options?: { mode?: StopMode }): Promise<void>;
  restart(options?: { mode?: StopMode }): Promise<void>;
  /**
   * SIGKILL to the postmaster and every process of it, as the OOM killer or a host crash would
   * do; resolves once they are all gone. The next start() runs crash recovery.
   */
  kill9(): Promise<void>;
  /** The server's own log (startup, shutdown, FATAL lines). */
  log(): Promise<string>;
}>;

const PASSWORD = 'postgres';
/** Deadline of one start or stop (pg_ctl -t), and of waiting for killed processes to go. */
const DEADLINE_SECONDS = 60;

/**
 * A PostgreSQL server of the calling test's own, for tests that stop, crash and restart it (the
 * suite's shared server and the machine's 5432 are never touched). It runs the binaries of the
 * `embedded-postgres` platform package (as the `postgres` OS user when we are root), keeps its
 * files in a directory under the system temp dir, listens on 127.0.0.1 only (no unix socket) on one
 * fixed port for its whole life, and is stopped and removed at the test's teardown.
 *
 * Durability: fsync and full_page_writes are off (only an OS crash could lose data, and the
 * directory is thrown away), but synchronous_commit stays on, so a commit that was answered
 * survives kill9() and stop({ mode: 'immediate' }), which chaos tests rely on.
 */
export async function startPostgresServer(t: Test, options: PostgresServerOptions = {}): Promise<PostgresServer> {
  const ids = asPostgresUser();
  const { pg_ctl, initdb } = await binaries();
  const root = await mkdtemp(path.join(tmpdir(), 'pog-test-pg-'));
  const dataDir = path.join(root, 'data');
  const logFile = path.join(root, 'server.log');
  await chmod(root, 0o755);
  if (ids.uid !== undefined) execFileSync('chown', [`${ids.uid}:${ids.gid}`, root]);

  let postmasterPid: number | null = null;
  const killOnExit = () => {
    // The test process is going away with the server up (a crash, a timeout): take it down too.
    if (postmasterPid !== null) {
      try {
        process.kill(postmasterPid, 'SIGQUIT');
      } catch {}
    }
  };
  process.on('exit', killOnExit);
  t.teardown(async () => {
    try {
      if (isRunning()) await stop({ mode: 'immediate' }).catch(() => kill9());
    } finally {
      process.removeListener('exit', killOnExit);
      await rm(root, { recursive: true, force: true });
    }
  });

  const port = options.port ?? (await freePort());
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  const pwfile = path.join(root, 'pwfile');
  await writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o644 });
  await run(initdb, [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--pwfile',
    pwfile,
    '-A',
    'scram-sha-256',
    '-E',
    'UTF8',
    '--no-sync',
    '--no-instructions',
  ]);
  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: "''",
    fsync: 'off',
    full_page_writes: 'off',
    max_connections: '100',
    ...options.settings,
  };
  // Appended by root to a file postgres owns: the file keeps its owner.
  await appendFile(
    path.join(dataDir, 'postgresql.conf'),
    `\n# test/helpers/postgres-server.ts\n${Object.entries(settings)
      .map(([name, value]) => `${name} = ${value}`)
      .join('\n')}\n`,
  );

  /** A tool as the postgres user; a failure says what the tool and the server's log said. */
  async function run(file: string, args: string[]): Promise<void> {
    // Async, never spawnSync: a service under test may share this process and must keep running.
    await new Promise<void>((resolve, reject) => {
      execFile(
        file,
        args,
        { ...ids, cwd: root, encoding: 'utf8', timeout: (DEADLINE_SECONDS + 10) * 1000 },
        (error, stdout, stderr) => {
          if (!error) return resolve();
          const logTail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
          reject(
            new Error(
              `${path.basename(file)} ${args[0]} failed (${error.code ?? error.signal}): ${stderr || stdout}${logTail ? `\nserver log:\n${logTail}` : ''}`,
              { cause: error },
            ),
          );
        },
      );
    });
  }

  function livePid(): number | null {
    const pidFile = path.join(dataDir, 'postmaster.pid');
    if (!existsSync(pidFile)) return null;
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : null;
  }

  function isRunning(): boolean {
    return livePid() !== null;
  }

  async function start(): Promise<void> {
    if (isRunning()) throw new Error(`the test PostgreSQL on port ${port} is already running`);
    await run(pg_ctl, ['start', '-w', '-t', String(DEADLINE_SECONDS), '-D', dataDir, '-l', logFile]);
    postmasterPid = livePid();
    if (postmasterPid === null) throw new Error(`pg_ctl started PostgreSQL on port ${port}, but no postmaster runs`);
  }

  async function stop({ mode = 'fast' }: { mode?: StopMode } = {}): Promise<void> {
    await run(pg_ctl, ['stop', '-w', '-t', String(DEADLINE_SECONDS), '-m', mode, '-D', dataDir]);
    postmasterPid = null;
  }

  async function kill9(): Promise<void> {
    const pid = livePid();
    if (pid === null) throw new Error(`the test PostgreSQL on port ${port} is not running`);
    // Its processes, found before the kill: once the postmaster is gone they belong to init.
    const family = [pid, ...childrenOf(pid)];
    for (const member of family) {
      try {
        process.kill(member, 'SIGKILL');
      } catch {}
    }
    postmasterPid = null;
    await waitFor(`the killed PostgreSQL processes (${family.join(', ')}) to be gone`, () =>
      family.every((member) => !isAlive(member)),
    );
  }

  const server: PostgresServer = {
    url,
    port,
    dataDir,
    isRunning,
    start,
    stop,
    restart: async (stopOptions) => {
      await stop(stopOptions);
      await start();
    },
    kill9,
    log: () => readFile(logFile, 'utf8').catch(() => ''),
  };

  await start();
  if (options.migrate ?? true) {
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await migrate(pool);
    } finally {
      await pool.end();
    }
  }
  return server;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (killed, not yet reaped by its parent) is gone for our purposes.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The pids whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ")".
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(name));
    } catch {}
  }
  return children;
}
