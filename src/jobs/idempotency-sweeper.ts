import type { PgBoss } from 'pg-boss';
import type { Db } from '../db/connection.ts';
import { sweepExpiredKeys } from '../db/idempotency-keys.repository.ts';
import type { Logger } from '../lib/logger.ts';
import { QUEUES } from './queues.ts';

/**
 * Expired idempotency keys are deleted by a pg-boss schedule (one run per cron tick across all
 * instances, whichever worker takes it). Orders are never touched.
 */
export async function startIdempotencySweeper(boss: PgBoss, db: Db, cron: string, logger: Logger): Promise<void> {
  await boss.schedule(QUEUES.sweepIdempotencyKeys, cron, null, { tz: 'UTC' });
  await boss.work(QUEUES.sweepIdempotencyKeys, async () => {
    const deleted = await sweepExpiredKeys(db);
    logger.info({ deleted }, 'swept expired idempotency keys');
    return { deleted };
  });
}
