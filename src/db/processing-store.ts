import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type pg from 'pg';
import { orderJson } from '../domain/order-json.ts';
import type { PaymentOrder } from '../domain/payment-order.ts';
import type { Decision, ProcessingState, ProcessingStore } from '../domain/process-payment-order.ts';
import type { CallResult, CallTicket, ProviderCalls } from '../domain/provider.ts';
import { newId } from '../lib/ids.ts';
import type { Db, Tx } from './connection.ts';
import { insertTransition, toOrder } from './payment-orders.repository.ts';
import { finishAttempt, lastCall } from './provider-attempts.repository.ts';
import { type GateLimits, startWhenAllowed } from './rate-gate.ts';

/** Enqueues the order's next processing job, in the given transaction, after a delay. */
export type EnqueueNext = (trx: Tx, orderId: string, generation: number, delayMs: number) => Promise<void>;

export type ProcessingStoreDeps = Readonly<{
  db: Db;
  pool: pg.Pool;
  enqueue: EnqueueNext;
  gate: GateLimits;
}>;

export function createProcessingStore(deps: ProcessingStoreDeps): ProcessingStore {
  const { db } = deps;
  return {
    withOrderLock: (orderId, work) => withOrderLock(deps.pool, orderId, work),

    load: (orderId) => loadState(db, 'id', orderId),

    loadByCallbackToken: (token) => loadState(db, 'callback_token', token),

    async markProcessing(orderId, reason) {
      await db.transaction().execute(async (trx) => {
        const moved = await trx
          .updateTable('payment_orders')
          .set({ status: 'PROCESSING', updated_at: sql<Date>`now()` })
          .where('id', '=', orderId)
          .where('status', '=', 'PENDING')
          .executeTakeFirst();
        if (Number(moved.numUpdatedRows) === 1) await insertTransition(trx, orderId, 'PENDING', 'PROCESSING', reason);
      });
    },

    async callbackToken(orderId) {
      const row = await db
        .updateTable('payment_orders')
        .set({ callback_token: sql<string>`coalesce(callback_token, ${randomBytes(24).toString('base64url')})` })
        .where('id', '=', orderId)
        .returning('callback_token')
        .executeTakeFirstOrThrow();
      return row.callback_token as string;
    },

    calls: (order) => providerCalls(deps, order),

    apply: (order, generation, decision, call) => applyDecision(deps, order, generation, decision, call),
  };
}

async function loadState(db: Db, by: 'id' | 'callback_token', value: string): Promise<ProcessingState | null> {
  const row = await db.selectFrom('payment_orders').selectAll().where(by, '=', value).executeTakeFirst();
  if (!row) return null;
  const { last, count, firstCallAt } = await lastCall(db, row.id);
  return {
    order: toOrder(row),
    generation: row.processing_generation,
    callbackToken: row.callback_token,
    lastCall: last,
    callCount: count,
    firstCallAt,
  };
}

/**
 * One processor per order at a time, across instances: a session advisory lock on a connection of
 * its own, held for the step (gate wait and provider call included). If the process dies, the
 * connection closes and the lock goes with it. No transaction stays open meanwhile.
 */
async function withOrderLock<T>(pool: pg.Pool, orderId: string, work: () => Promise<T>): Promise<T | 'busy'> {
  const client = await pool.connect();
  // A connection whose unlock failed goes away rather than back to the pool still holding the
  // lock (closing the session is what releases it).
  let discard = false;
  try {
    const { rows } = await client.query<{ locked: boolean }>(
      "select pg_try_advisory_lock(hashtextextended('payment_order:' || $1, 0)) as locked",
      [orderId],
    );
    if (!rows[0]?.locked) return 'busy';
    try {
      return await work();
    } finally {
      await client
        .query("select pg_advisory_unlock(hashtextextended('payment_order:' || $1, 0))", [orderId])
        .catch(() => {
          discard = true;
        });
    }
  } finally {
    client.release(discard);
  }
}

/** Every call first gets a start from the global rate gate, then is recorded as an attempt. */
function providerCalls(deps: ProcessingStoreDeps, order: PaymentOrder): ProviderCalls {
  return {
    start: (kind, idempotencyKey) =>
      startWhenAllowed(
        deps.db,
        deps.gate,
        { orderId: order.id, provider: order.provider, kind, idempotencyKey: idempotencyKey ?? null },
        sleep,
      ),

    finish: (ticket, result) => finishAttempt(deps.db, ticket, result),
  };
}

async function applyDecision(
  deps: ProcessingStoreDeps,
  order: PaymentOrder,
  generation: number,
  decision: Decision,
  call?: { ticket: CallTicket; result: CallResult },
): Promise<boolean> {
  return deps.db.transaction().execute(async (trx) => {
    if (call) await finishAttempt(trx, call.ticket, call.result);
    // Only the live generation of a PROCESSING order may move it; anything else was overtaken
    // (e.g. an M-Pesa callback got there first) and leaves the order alone.
    const live = trx
      .updateTable('payment_orders')
      .where('id', '=', order.id)
      .where('status', '=', 'PROCESSING')
      .where('processing_generation', '=', generation);
    if (decision.type === 'schedule') {
      const moved = await live
        .set({
          processing_generation: generation + 1,
          provider_reference: decision.clearReference ? null : (decision.reference ?? order.providerReference),
          next_attempt_at: sql<Date>`now() + make_interval(secs => ${decision.delayMs / 1000})`,
          reconciling_since: decision.reconciling
            ? sql<Date>`coalesce(reconciling_since, now())`
            : sql<Date | null>`reconciling_since`,
          updated_at: sql<Date>`now()`,
        })
        .executeTakeFirst();
      if (Number(moved.numUpdatedRows) !== 1) return false;
      await deps.enqueue(trx, order.id, generation + 1, decision.delayMs);
      return true;
    }
    const terminal = decision.type === 'complete' ? 'COMPLETED' : 'FAILED';
    const row = await live
      .set({
        status: terminal,
        processing_generation: generation + 1,
        provider_reference: decision.type === 'complete' ? decision.reference : order.providerReference,
        failure_code: decision.type === 'fail' ? decision.failure.code : null,
        failure_message: decision.type === 'fail' ? decision.failure.message : null,
        next_attempt_at: null,
        reconciling_since: null,
        updated_at: sql<Date>`now()`,
      })
      .returningAll()
      .executeTakeFirst();
    if (!row) return false;
    const final = toOrder(row);
    await insertTransition(trx, order.id, 'PROCESSING', terminal, decision.reason);
    await insertOutboxEvent(trx, final);
    return true;
  });
}

/** The terminal event, in the terminal transition's transaction. */
async function insertOutboxEvent(trx: Tx, order: PaymentOrder): Promise<void> {
  await trx
    .insertInto('outbox_events')
    .values({
      id: newId('evt'),
      merchant_id: order.merchantId,
      order_id: order.id,
      type: order.status === 'COMPLETED' ? 'payment_order.completed' : 'payment_order.failed',
      payload: JSON.stringify(orderJson(order)),
    })
    .execute();
}
