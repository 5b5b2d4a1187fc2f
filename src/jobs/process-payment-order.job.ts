import type { PgBoss } from 'pg-boss';
import { type ProcessDeps, processPaymentOrder } from '../domain/process-payment-order.ts';
import type { Logger } from '../lib/logger.ts';
import { processPaymentOrderPayload, QUEUES } from './queues.ts';

export class OrderBusyError extends Error {
  override name = 'OrderBusyError';
}

/**
 * The provider workers: `concurrency` orders at a time in this instance. A job whose order is
 * being processed elsewhere right now fails, so pg-boss retries it a little later; it is never
 * dropped, because the other processor may die before it schedules the next step.
 */
export async function startProcessingWorkers(
  boss: PgBoss,
  deps: ProcessDeps,
  concurrency: number,
  logger: Logger,
): Promise<void> {
  if (concurrency === 0) return;
  // With NOTIFY on, pg-boss's backstop poll defaults to 30 s, and a NOTIFY is sent when a job is
  // inserted, not when its startAfter comes due: retries and M-Pesa checks would start up to 30 s
  // late. Polling every 500 ms keeps them within half a second of their time; new jobs still wake
  // a worker at once through NOTIFY.
  const polling = { pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 };
  await boss.work(
    QUEUES.processPaymentOrder,
    { localConcurrency: concurrency, batchSize: 1, ...polling },
    async ([job]) => {
      if (!job) return;
      const payload = processPaymentOrderPayload.parse(job.data);
      const result = await processPaymentOrder(deps, payload.orderId, payload.generation);
      if (result === 'busy') throw new OrderBusyError(`order ${payload.orderId} is being processed elsewhere`);
      logger.debug({ orderId: payload.orderId, generation: payload.generation, result }, 'processing step');
    },
  );
}
