import type { PgBoss } from 'pg-boss';
import type { Logger } from '../lib/logger.ts';
import { type DeliverDeps, deliverWebhook } from '../webhooks/deliver.ts';
import { deliverWebhookPayload, QUEUES } from './queues.ts';

/** Webhook senders: `concurrency` deliveries at a time in this instance. */
export async function startWebhookWorkers(
  boss: PgBoss,
  deps: DeliverDeps,
  concurrency: number,
  logger: Logger,
): Promise<void> {
  if (concurrency === 0) return;
  // See process-payment-order.job.ts: delayed retries must start close to their time. Jobs are
  // fetched 8 at a time and sent concurrently, and a full batch fetches again at once (burst), so
  // a backlog drains at the subscribers' pace, not at one job per worker per poll. If one fails,
  // pg-boss retries the batch; the ones already recorded see they are stale and do nothing.
  const batchSize = 8;
  const options = {
    localConcurrency: Math.max(1, Math.ceil(concurrency / batchSize)),
    batchSize,
    burstWhenBatchFull: true,
    pollingIntervalSeconds: 0.5,
    notifyPollingIntervalSeconds: 0.5,
  };
  await boss.work(QUEUES.deliverWebhook, options, async (jobs) => {
    // allSettled, not all: the batch fails (and is retried) only once every send in it has
    // finished, so a retry never races a send of the same delivery still in flight.
    const results = await Promise.allSettled(
      jobs.map(async (job) => {
        const { deliveryId, attempt } = deliverWebhookPayload.parse(job.data);
        const result = await deliverWebhook(deps, deliveryId, attempt);
        logger.debug({ deliveryId, attempt, result }, 'webhook delivery attempt');
      }),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  });
}
