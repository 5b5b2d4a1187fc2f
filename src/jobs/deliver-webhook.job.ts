import type { PgBoss } from 'pg-boss';
import type { Logger } from '../lib/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { type DeliverDeps, deliverWebhooks } from '../webhooks/deliver.ts';
import { deliverWebhookPayload, QUEUES } from './queues.ts';

/** Webhook senders: `concurrency` deliveries at a time in this instance. */
export async function startWebhookWorkers(
  boss: PgBoss,
  deps: DeliverDeps,
  concurrency: number,
  logger: Logger,
  metrics: Metrics,
): Promise<void> {
  if (concurrency === 0) return;
  // See process-payment-order.job.ts: delayed retries must start close to their time. Jobs are
  // fetched a batch at a time and the batch is sent concurrently and recorded in one transaction
  // (deliverWebhooks), and a full batch fetches again at once (burst), so a backlog drains at the
  // subscribers' pace with little database work per delivery. If the batch fails, pg-boss retries
  // it; the deliveries already recorded see they are stale and do nothing.
  // Several batches per instance, not one big one: a batch is recorded when its slowest request
  // ends (up to the 15 s timeout), so one hanging endpoint holds back a quarter of the senders.
  const batchSize = Math.min(50, Math.ceil(concurrency / 4));
  const options = {
    localConcurrency: Math.max(1, Math.ceil(concurrency / batchSize)),
    batchSize,
    burstWhenBatchFull: true,
    pollingIntervalSeconds: 0.5,
    notifyPollingIntervalSeconds: 0.5,
  };
  await boss.work(QUEUES.deliverWebhook, options, async (jobs) => {
    const batch = jobs.map((job) => deliverWebhookPayload.parse(job.data));
    const results = await deliverWebhooks(deps, batch);
    for (const result of results) metrics.webhookAttempts.inc({ result });
    logger.debug({ deliveries: batch.map((job, i) => ({ ...job, result: results[i] })) }, 'webhook delivery attempts');
  });
}
