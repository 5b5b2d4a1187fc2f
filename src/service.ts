import type { PgBoss } from 'pg-boss';
import type { Config } from './config/config.ts';
import type { Db } from './db/connection.ts';
import type { Logger } from './lib/logger.ts';
import { createMetrics } from './metrics/metrics.ts';
import { startDatabase } from './subsystems/database.ts';
import { ensureDemoApiKey, ensureDemoOperatorKey } from './subsystems/demo-merchant.ts';
import { startEvents } from './subsystems/events.ts';
import { startHttp } from './subsystems/http.ts';
import { createProcessing } from './subsystems/processing.ts';
import { startProviders } from './subsystems/providers.ts';
import { startQueue } from './subsystems/queue.ts';
import { createStopStack } from './subsystems/stop-stack.ts';

export { PGBOSS_SCHEMA } from './subsystems/queue.ts';

export type RunningService = Readonly<{
  /** Base URL of the HTTP API. */
  url: string;
  databaseUrl: string;
  db: Db;
  boss: PgBoss;
  /** The demo merchant's key, when DEMO_MERCHANT is on. */
  demoApiKey: string | null;
  /** With the demo merchant, an operator key for /console. */
  demoOperatorKey: string | null;
  /** The provider sandbox this instance started, if any. */
  sandboxUrl: string | null;
  /** Stop accepting, finish in-flight requests and jobs, close pools, stop the embedded database. */
  stop(): Promise<void>;
}>;

/**
 * Composition root: starts the subsystems in order (src/subsystems/), each from the config and the
 * parts before it, and stops them in reverse: the HTTP server first (it stops accepting), then the
 * event senders, the sandbox, pg-boss (its workers finish their jobs), the database. Aborting
 * `signal` (SIGTERM during start-up) ends a wait for the database; the start then rejects.
 */
export async function startService(
  config: Config,
  logger: Logger,
  options: { signal?: AbortSignal } = {},
): Promise<RunningService> {
  const stack = createStopStack(logger);
  try {
    const database = stack.push(await startDatabase(config, logger, options.signal));
    const queue = stack.push(await startQueue(config, database, logger));
    const metrics = createMetrics({ kafka: config.kafka !== null });
    const providers = stack.push(await startProviders(config, metrics, logger));
    const processing = createProcessing(config, { database, queue, providers }, logger);
    stack.push(await startEvents(config, { database, queue, metrics }, logger));
    const http = stack.push(await startHttp(config, { database, queue, processing, metrics }, logger));
    processing.setPublicBaseUrl(http.url);
    // Last: the workers need the callback endpoint up. They stop with pg-boss.
    await processing.startWorkers();
    const demoApiKey = config.demoMerchant ? await ensureDemoApiKey(database.db, config.dataDir) : null;
    const demoOperatorKey = config.demoMerchant ? await ensureDemoOperatorKey(database.db, config.dataDir) : null;
    return {
      url: http.url,
      databaseUrl: database.url,
      db: database.db,
      boss: queue.boss,
      demoApiKey,
      demoOperatorKey,
      sandboxUrl: providers.sandboxUrl,
      stop: () => stack.stopAll(),
    };
  } catch (error) {
    await stack.stopAll();
    throw error;
  }
}
