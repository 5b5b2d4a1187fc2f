import { fromKysely, type PgBoss } from 'pg-boss';
import { z } from 'zod';
import type { Tx } from '../db/connection.ts';
import type { SqlExecutor } from '../db/create-order-store.ts';

export const QUEUES = {
  /** One job per accepted order: send it to its provider. */
  processPaymentOrder: 'payment-orders.process',
  /** One job per webhook delivery attempt. */
  deliverWebhook: 'webhooks.deliver',
  /** Scheduled: delete idempotency keys past their TTL. */
  sweepIdempotencyKeys: 'idempotency-keys.sweep',
} as const;

/** `generation` is the order's processing generation this job is for (0 for the job created with the order). */
export const processPaymentOrderPayload = z.strictObject({
  orderId: z.string().min(1),
  generation: z.number().int().min(0).default(0),
});
export type ProcessPaymentOrderPayload = z.infer<typeof processPaymentOrderPayload>;

/**
 * Processing jobs: each is one step (one provider call) of one order; the next step is a new job
 * written in the step's own transaction. pg-boss's retries are for crashes and bugs only:
 * - heartbeatSeconds 10: a worker killed mid-call stops heart-beating; within 10 s (plus the
 *   supervise pass, every 10 s) its job is failed and retried, on this or another instance.
 * - expireInSeconds 120: a backstop for a step that hangs while still heart-beating
 *   (a gate wait under backlog plus one provider timeout is well below it).
 * - retryLimit 1000 with backoff up to 30 s: a crash-looping order keeps being retried, never dropped.
 * - notify: a new job wakes a worker at once (LISTEN/NOTIFY); polling stays as the fallback.
 */
const PROCESS_QUEUE_OPTIONS = {
  heartbeatSeconds: 10,
  expireInSeconds: 120,
  retryLimit: 1000,
  retryDelay: 1,
  retryBackoff: true,
  retryDelayMax: 30,
  notify: true,
} as const;

export async function createQueues(boss: PgBoss): Promise<void> {
  // createQueue leaves an existing queue as it is, so the options are applied again with update.
  await boss.createQueue(QUEUES.processPaymentOrder, PROCESS_QUEUE_OPTIONS);
  const { heartbeatSeconds: _fixedAtCreate, ...updatable } = PROCESS_QUEUE_OPTIONS;
  await boss.updateQueue(QUEUES.processPaymentOrder, updatable);
  await boss.createQueue(QUEUES.sweepIdempotencyKeys);
  // Deliveries: same crash rules as processing (a dead worker's attempt is made again, so at
  // least once); a delivery is at most one 15 s request, so a 60 s expiry is a backstop.
  const { heartbeatSeconds, ...deliveryOptions } = { ...PROCESS_QUEUE_OPTIONS, expireInSeconds: 60 };
  await boss.createQueue(QUEUES.deliverWebhook, { ...deliveryOptions, heartbeatSeconds });
  await boss.updateQueue(QUEUES.deliverWebhook, deliveryOptions);
}

export const deliverWebhookPayload = z.strictObject({
  deliveryId: z.string().min(1),
  attempt: z.number().int().min(1),
});

/** Enqueues a delivery attempt in the caller's transaction (the relay's, or the previous attempt's). */
export function enqueueDeliverWebhook(boss: PgBoss) {
  return async (trx: Tx, deliveryId: string, attempt: number, delayMs: number): Promise<void> => {
    const startAfter = delayMs > 0 ? new Date(Date.now() + delayMs) : undefined;
    await boss.send(
      QUEUES.deliverWebhook,
      { deliveryId, attempt },
      { db: fromKysely(trx), ...(startAfter ? { startAfter } : {}) },
    );
  };
}

/** Enqueues the processing job inside the caller's transaction: it exists iff the order does. */
export function enqueueProcessPaymentOrder(boss: PgBoss) {
  return async (trx: Tx, orderId: string, generation = 0, delayMs = 0): Promise<void> => {
    const payload: ProcessPaymentOrderPayload = { orderId, generation };
    const startAfter = delayMs > 0 ? new Date(Date.now() + delayMs) : undefined;
    await boss.send(QUEUES.processPaymentOrder, payload, {
      db: fromKysely(trx),
      ...(startAfter ? { startAfter } : {}),
    });
  };
}

/** The processing jobs of orders just accepted, in one insert, in the caller's transaction (the create batch's). */
export function enqueueNewOrders(boss: PgBoss) {
  return async (db: SqlExecutor, orderIds: readonly string[]): Promise<void> => {
    const jobs = orderIds.map((orderId) => ({ data: { orderId, generation: 0 } satisfies ProcessPaymentOrderPayload }));
    // pg-boss's insert ends in ON CONFLICT DO NOTHING: a job it skipped would leave a committed
    // order that nothing sends. Count them, and fail the create (it rolls back) if one is missing.
    const ids = await boss.insert(QUEUES.processPaymentOrder, jobs, { db, returnId: true });
    if ((ids?.length ?? 0) !== orderIds.length) {
      throw new Error(`pg-boss inserted ${ids?.length ?? 0} of ${orderIds.length} processing jobs`);
    }
  };
}

/** First attempts of many deliveries in one insert, in the caller's transaction (the relay's). */
export function enqueueFirstDeliveries(boss: PgBoss) {
  return async (trx: Tx, deliveryIds: readonly string[]): Promise<void> => {
    await boss.insert(
      QUEUES.deliverWebhook,
      deliveryIds.map((deliveryId) => ({ data: { deliveryId, attempt: 1 } })),
      { db: fromKysely(trx) },
    );
  };
}
