import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { waitFor } from './wait.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export type GatewayProcess = Readonly<{
  child: ChildProcess;
  url: string;
  output: string[];
  /** Sends the signal and resolves with the exit code (null if killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
  /** The key from the `API key: <key>` line, which is printed just after the "listening" log. */
  printedApiKey(): Promise<string>;
  /** The key from the `Operator key: <key> (for .../console)` line, printed with it. */
  printedOperatorKey(): Promise<string>;
}>;

/**
 * The real entry point (`npm start` runs `node src/main.ts`) in a child process of its own, on a
 * free port. Resolves once it logs that it is listening.
 */
export async function startGatewayProcess(t: Test, env: Record<string, string>): Promise<GatewayProcess> {
  return untilListening(spawnGatewayProcess(t, env));
}

/** Waits until a spawned gateway logs that it is listening (it must not exit first). */
export async function untilListening(spawned: SpawnedGateway, timeoutMs = 60_000): Promise<GatewayProcess> {
  const { child, output } = spawned;
  const port = await waitFor(
    'the gateway to listen',
    () => {
      if (child.exitCode !== null) throw new Error(`gateway exited early (${child.exitCode}):\n${output.join('\n')}`);
      for (const line of output) {
        if (line.includes('payment order gateway listening')) return JSON.parse(line).port as number;
      }
      return undefined;
    },
    { timeoutMs },
  );
  return {
    ...spawned,
    url: `http://127.0.0.1:${port}`,
    printedApiKey: async () => {
      const line = await waitFor('the "API key:" line', () => output.find((l) => l.startsWith('API key: ')));
      return line.slice('API key: '.length);
    },
    printedOperatorKey: async () => {
      const line = await waitFor('the "Operator key:" line', () => output.find((l) => l.startsWith('Operator key: ')));
      return line.slice('Operator key: '.length).split(' ')[0] as string;
    },
  };
}

export type SpawnedGateway = Pick<GatewayProcess, 'child' | 'output' | 'stop' | 'exited'>;

/**
 * The entry point started without waiting for it to listen, for tests of what it does before
 * (e.g. waiting for a database that is down). Killed at teardown if still running.
 */
export function spawnGatewayProcess(t: Test, env: Record<string, string>): SpawnedGateway {
  const child = spawn(process.execPath, ['src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      // Several gateways per test, four test files at a time, one server: small pools.
      DATABASE_POOL_SIZE: '6',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  // A line may arrive split across chunks: keep each stream's unfinished tail until its newline.
  const collectLines = (stream: NodeJS.ReadableStream | null) => {
    let tail = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const lines = (tail + chunk).split('\n');
      tail = lines.pop() ?? '';
      output.push(...lines.filter(Boolean));
    });
    stream?.on('end', () => {
      if (tail) output.push(tail);
    });
  };
  collectLines(child.stdout);
  collectLines(child.stderr);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return {
    child,
    output,
    exited,
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal);
      return exited;
    },
  };
}

/** A data directory for an embedded database, reachable by the `postgres` OS user, removed after. */
export async function tempDataDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gateway-data-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
