import type { Logger } from '../lib/logger.ts';

/** What a started part gives back: how to stop it. */
export type Started = Readonly<{ stop(): Promise<void> }>;

/**
 * The parts started so far, stopped last-in first-out: a part stops before what it was built on
 * (the HTTP server before the queue and the database, the event senders before the pool). A
 * failing stop is logged and the others still run.
 */
export function createStopStack(logger: Logger) {
  const stops: Array<() => Promise<void>> = [];
  let stopping: Promise<void> | undefined;
  return {
    push<T extends Started>(part: T): T {
      stops.push(() => part.stop());
      return part;
    },
    stopAll(): Promise<void> {
      stopping ??= (async () => {
        for (const stop of stops.reverse()) {
          await stop().catch((error: unknown) => logger.error({ err: error }, 'error while stopping'));
        }
      })();
      return stopping;
    },
  };
}
