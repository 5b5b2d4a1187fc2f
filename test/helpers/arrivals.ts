import { type ChildProcess, spawn } from 'node:child_process';
import type { Test } from 'tap';

/** The most times in any window [s, s + 1000 ms) that begins at one of them: the gate's measure. */
export function maxInAnySecond(timesMs: readonly number[]): number {
  const sorted = [...timesMs].sort((a, b) => a - b);
  let max = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && (sorted[j] as number) < (sorted[i] as number) + 1000) j++;
    max = Math.max(max, j - i);
  }
  return max;
}

/** `n` processes spinning on the CPU until stopped (and at teardown at the latest). */
export function spinCpus(t: Test, n: number): () => Promise<void> {
  const children: ChildProcess[] = Array.from({ length: n }, () =>
    spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }),
  );
  const stop = () =>
    Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    ).then(() => {});
  t.teardown(stop);
  return stop;
}
