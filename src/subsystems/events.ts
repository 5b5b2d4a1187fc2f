import type { Config } from '../config/config.ts';
import { startWebhookWorkers } from '../jobs/deliver-webhook.job.ts';
import { DISABLE_FAILING_WEBHOOKS_QUEUE, startFailingWebhooksCheck } from '../jobs/disable-failing-webhooks.job.ts';
import { enqueueDeliverWebhook, enqueueFirstDeliveries, QUEUES } from '../jobs/queues.ts';
import { startKafkaEmitter } from '../kafka/kafka-emitter.ts';
import type { Logger } from '../lib/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { startRelay } from '../outbox/relay.ts';
import { createSafeDispatcher } from '../webhooks/safe-http.ts';
import type { Database } from './database.ts';
import type { Queue } from './queue.ts';
import type { Started } from './stop-stack.ts';

/**
 * How orders' ends are told: the webhook senders (pg-boss workers with an SSRF-safe dispatcher),
 * the relay from committed outbox rows to deliveries, the hourly check that switches off endpoints
 * failing for days (WEBHOOK_DISABLE_AFTER_DAYS), and the Kafka emitter when configured. Stops
 * in reverse: the emitter and the relay, then the deliveries in flight, then their dispatcher.
 */
export async function startEvents(
  config: Config,
  parts: { database: Database; queue: Queue; metrics: Metrics },
  logger: Logger,
): Promise<Started> {
  const { db, notifications } = parts.database;
  const { boss } = parts.queue;
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const step of stops.reverse()) await step();
  };
  try {
    const dispatcher = createSafeDispatcher({
      allowedCidrs: config.webhooks.allowedCidrs,
      allowHttp: config.webhooks.allowHttp,
    });
    stops.push(async () => {
      // In-flight deliveries first (they use the dispatcher), then the dispatcher.
      await boss.offWork(QUEUES.deliverWebhook, { wait: true }).catch(() => {});
      await dispatcher.close();
    });
    await startWebhookWorkers(
      boss,
      {
        db,
        dispatcher,
        enqueue: enqueueDeliverWebhook(boss),
        timeoutMs: config.webhooks.timeoutMs,
        retryScheduleMs: config.webhooks.retryScheduleMs,
      },
      config.webhooks.concurrency,
      logger,
      parts.metrics,
    );
    await startFailingWebhooksCheck(boss, db, config.webhooks.disableAfterDays, logger);
    if (config.webhooks.disableAfterDays > 0) {
      stops.push(() => boss.offWork(DISABLE_FAILING_WEBHOOKS_QUEUE, { wait: true }).catch(() => {}));
    }
    if (config.webhooks.concurrency > 0) {
      const relay = await startRelay({ db, notifications, enqueueMany: enqueueFirstDeliveries(boss), logger });
      stops.push(() => relay.stop());
    }
    if (config.kafka) {
      const kafka = await startKafkaEmitter({
        db,
        notifications,
        brokers: [...config.kafka.brokers],
        topic: config.kafka.topic,
        clientId: config.kafka.clientId,
        batchSize: config.kafka.batchSize,
        backoff: { baseMs: 500, maxMs: config.kafka.retryMaxDelayMs },
        logger,
        metrics: parts.metrics,
      });
      stops.push(() => kafka.stop());
    }
    return { stop };
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
}
