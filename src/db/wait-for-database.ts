import { setTimeout as delay } from 'node:timers/promises';
import { backoffDelay } from '../lib/backoff.ts';
import type { Logger } from '../lib/logger.ts';
import { unavailableCode } from './database-errors.ts';

export type WaitForDatabaseOptions = Readonly<{
  /** Give up after this long (the last attempt runs at the deadline); null = never. */
  timeoutMs: number | null;
  logger: Logger;
  /** Aborting (SIGTERM) ends the wait at once with the signal's reason. */
  signal?: AbortSignal;
  /** The first delay, doubled after each failure up to maxDelayMs. Defaults 500 ms and 10 s. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
}>;

export class DatabaseUnreachableError extends Error {
  override name = 'DatabaseUnreachableError';
}

/**
 * Runs `attempt` (start-up's first database work: the migrations) until it succeeds, as long as
 * it fails because the database cannot be reached (db/database-errors.ts): a database that is
 * down, restarting or still starting when the service starts. Any other error (a bad password, a
 * failing migration) is thrown at once. Each failure is logged at warn with its code and the next
 * delay: capped exponential backoff with equal jitter (half the step fixed, half random), so that
 * instances started together spread their retries yet each still backs off.
 */
export async function waitForDatabase<T>(attempt: () => Promise<T>, options: WaitForDatabaseOptions): Promise<T> {
  const { timeoutMs, logger, signal, initialDelayMs = 500, maxDelayMs = 10_000, random = Math.random } = options;
  const started = performance.now();
  for (let failures = 0; ; ) {
    signal?.throwIfAborted();
    try {
      return await abortable(attempt(), signal);
    } catch (error) {
      const code = unavailableCode(error);
      if (code === null || signal?.aborted) throw error;
      failures++;
      const waitedMs = performance.now() - started;
      let nextMs = backoffDelay(failures, { baseMs: initialDelayMs, maxMs: maxDelayMs }, random);
      if (timeoutMs !== null) {
        const leftMs = timeoutMs - waitedMs;
        if (leftMs <= 0) {
          throw new DatabaseUnreachableError(
            `the database was not reachable for ${Math.round(waitedMs / 1000)} s (${failures} attempts, last: ${code}); giving up (DATABASE_STARTUP_TIMEOUT_SECONDS)`,
            { cause: error },
          );
        }
        nextMs = Math.min(nextMs, leftMs);
      }
      logger.warn(
        {
          attempt: failures,
          code,
          error: (error as { message?: string })?.message,
          retryInMs: Math.round(nextMs),
          waitedMs: Math.round(waitedMs),
        },
        'database not reachable at start; retrying',
      );
      await delay(nextMs, undefined, { signal });
    }
  }
}

/** The work, or the signal's reason as soon as it is aborted (the work itself runs on). */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
