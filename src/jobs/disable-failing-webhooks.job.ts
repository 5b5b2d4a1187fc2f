import type { PgBoss } from 'pg-boss';
import type { Db } from '../db/connection.ts';
import type { Logger } from '../lib/logger.ts';
import { disableFailingEndpoints } from '../webhooks/disable-subscriptions.ts';

/** Scheduled: switch off the webhook endpoints that failed every attempt for WEBHOOK_DISABLE_AFTER_DAYS. */
export const DISABLE_FAILING_WEBHOOKS_QUEUE = 'webhooks.disable-failing';

/**
 * Hourly, at minute 23 (off the hour, when other crons crowd): the rule counts in days, so an
 * endpoint is switched off at most an hour after it qualifies.
 */
export const DISABLE_FAILING_WEBHOOKS_CRON = '23 * * * *';

/**
 * The automatic disabling of failing endpoints, on a pg-boss schedule: pg-boss sends one job per
 * cron tick across all instances, whichever worker takes it; the queue's `singleton` policy keeps
 * a second check from starting while one is still running; and the check itself is one guarded
 * update (an endpoint is switched off, and reported, once), so a repeated or overlapping run does
 * no harm. `days` 0 turns it off: the schedule is removed, so no instance keeps sending jobs for it.
 */
export async function startFailingWebhooksCheck(boss: PgBoss, db: Db, days: number, logger: Logger): Promise<void> {
  await boss.createQueue(DISABLE_FAILING_WEBHOOKS_QUEUE, { policy: 'singleton' });
  if (days === 0) {
    await boss.unschedule(DISABLE_FAILING_WEBHOOKS_QUEUE);
    return;
  }
  await boss.schedule(DISABLE_FAILING_WEBHOOKS_QUEUE, DISABLE_FAILING_WEBHOOKS_CRON, null, { tz: 'UTC' });
  await boss.work(DISABLE_FAILING_WEBHOOKS_QUEUE, async () => {
    const disabled = await disableFailingEndpoints(db, days);
    const ids = disabled.map((s) => s.id);
    if (ids.length > 0) logger.warn({ subscriptions: ids, days }, 'switched off webhook endpoints failing for days');
    return { disabled: ids };
  });
}
