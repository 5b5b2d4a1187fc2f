import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { waitFor } from './wait.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export type SandboxProcess = Readonly<{ url: string; output: string[] }>;

/**
 * The provider sandbox in a process of its own (`npm run sandbox` runs `node sandbox/main.ts`), as a
 * real provider is: its arrival stamps do not wait for the event loop of the test or the gateways.
 * Listens on a free port; stopped (SIGTERM) at teardown.
 */
export async function startSandboxProcess(t: Test, switches: Record<string, unknown> = {}): Promise<SandboxProcess> {
  const child = spawn(process.execPath, ['sandbox/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      SANDBOX_HOST: '127.0.0.1',
      SANDBOX_PORT: '0',
      SANDBOX_SWITCHES: JSON.stringify(switches),
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => output.push(...chunk.split('\n').filter(Boolean)));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => output.push(...chunk.split('\n').filter(Boolean)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  const url = await waitFor(
    'the sandbox to listen',
    () => {
      if (child.exitCode !== null) throw new Error(`sandbox exited (${child.exitCode}):\n${output.join('\n')}`);
      for (const line of output) {
        if (line.includes('provider sandbox listening')) return JSON.parse(line).url as string;
      }
      return undefined;
    },
    { timeoutMs: 30_000 },
  );
  return { url, output };
}
