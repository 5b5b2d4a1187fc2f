import { PgBoss } from 'pg-boss';
import type { Config } from '../config/config.ts';
import { startIdempotencySweeper } from '../jobs/idempotency-sweeper.ts';
import { createQueues } from '../jobs/queues.ts';
import type { Logger } from '../lib/logger.ts';
import type { Database } from './database.ts';
import type { Started } from './stop-stack.ts';

export const PGBOSS_SCHEMA = 'pgboss';

export type Queue = Started & Readonly<{ boss: PgBoss }>;

/** pg-boss on our database (its own small pool), our queues, and the idempotency-key sweep. */
export async function startQueue(config: Config, database: Database, logger: Logger): Promise<Queue> {
  const boss = new PgBoss({
    connectionString: database.url,
    schema: PGBOSS_SCHEMA,
    application_name: 'payment-order-gateway:pg-boss',
    max: 5,
    // New processing jobs wake a worker at once (target: commit → provider call ≤ 100 ms).
    useListenNotify: true,
    // Dead workers' jobs (no heartbeat) are found on this pass: part of the crash-recovery bound.
    superviseIntervalSeconds: 10,
  });
  boss.on('error', (error) => logger.error({ err: error }, 'pg-boss error'));
  // Safe to call again after a failure.
  await database.whileUnreachable(() => boss.start());
  // Graceful: the workers finish their jobs (up to the shutdown timeout) before pg-boss closes.
  const stop = () => boss.stop({ graceful: true, timeout: config.shutdownTimeoutMs });
  try {
    await createQueues(boss);
    await startIdempotencySweeper(boss, database.db, config.idempotencySweepCron, logger);
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
  return { boss, stop };
}
