import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type pg from 'pg';
import type { CallbackContext, CallbackJudgement, ProviderCallback } from '../domain/callback-evidence.ts';
import { type Decision, SELF_SETTLING_REVIEWS } from '../domain/decide.ts';
import type { Failure, PaymentOrder } from '../domain/payment-order.ts';
import type { ProcessingState, ProcessingStore } from '../domain/process-payment-order.ts';
import type { ProviderCalls } from '../domain/provider.ts';
import type { Db, Tx } from './connection.ts';
import { settleOrder } from './order-settlement.ts';
import { insertTransition, toOrder } from './payment-orders.repository.ts';
import { finishAttempt, loadCallFacts, paidExternalId } from './provider-attempts.repository.ts';
import { claimedByAnotherOrder, insertProviderCallback, loadLeads } from './provider-callbacks.repository.ts';
import { type GateLimits, restartWhenAllowed, startWhenAllowed } from './rate-gate.ts';
import { openReview } from './reviews.repository.ts';

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
  // The connection holding each order's lock in this process, for the check before every call.
  const locks = new Map<string, pg.PoolClient>();
  return {
    withOrderLock: (orderId, work) => withOrderLock(deps.pool, locks, orderId, work),

    load: (orderId) => loadState(db, orderId),

    markProcessing: (orderId, reason) => db.transaction().execute((trx) => moveToProcessing(trx, orderId, reason)),

    async callbackToken(orderId) {
      const row = await db
        .updateTable('payment_orders')
        .set({ callback_token: sql<string>`coalesce(callback_token, ${randomBytes(24).toString('base64url')})` })
        .where('id', '=', orderId)
        .returning('callback_token')
        .executeTakeFirstOrThrow();
      return row.callback_token as string;
    },

    calls: (order) => providerCalls(deps, order, () => assertStillLocked(locks, order.id)),

    apply: (order, generation, decision, call, options) =>
      db.transaction().execute(async (trx) => {
        if (options?.fromPending) await moveToProcessing(trx, order.id, options.fromPending);
        if (call) await finishAttempt(trx, call.ticket, call.result, call.fact);
        return applyDecision(trx, deps.enqueue, order, generation, decision);
      }),

    failUnsent: (order, generation, failure) =>
      db.transaction().execute((trx) => failUnsent(trx, order, generation, failure)),

    receiveCallback: (token, callback, judge) =>
      db.transaction().execute((trx) => receiveCallback(trx, deps.enqueue, token, callback, judge)),
  };
}

async function loadState(db: Db, orderId: string): Promise<ProcessingState | null> {
  const row = await db
    .selectFrom('payment_orders')
    .selectAll()
    .select(sql<Date>`now()`.as('db_now'))
    .where('id', '=', orderId)
    .executeTakeFirst();
  if (!row) return null;
  const { calls, count, firstCallAt } = await loadCallFacts(db, row.id);
  return {
    order: toOrder(row),
    generation: row.processing_generation,
    callbackToken: row.callback_token,
    calls,
    leads: await loadLeads(db, row.id),
    callCount: count,
    firstCallAt,
    now: row.db_now,
  };
}

/**
 * One processor per order at a time, across instances: a session advisory lock on a connection of
 * its own, held for the step (gate wait and provider call included). If the process dies, the
 * connection closes and the lock goes with it. No transaction stays open meanwhile.
 */
async function withOrderLock<T>(
  pool: pg.Pool,
  locks: Map<string, pg.PoolClient>,
  orderId: string,
  work: () => Promise<T>,
): Promise<T | 'busy'> {
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
    locks.set(orderId, client);
    try {
      return await work();
    } finally {
      locks.delete(orderId);
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

/**
 * The order's lock lives as long as its connection: if that connection died (the database
 * restarted, a middlebox cut it), the lock is gone and another processor may be on the order, so
 * no call may start. One round trip on the lock's own connection, before the gate (so that it
 * costs nothing of the grant's send window).
 */
async function assertStillLocked(locks: Map<string, pg.PoolClient>, orderId: string): Promise<void> {
  const client = locks.get(orderId);
  if (!client) throw new Error(`order ${orderId} is not locked by this process`);
  await client.query('select 1');
}

/** Every call first gets a start from the global rate gate, then is recorded as an attempt. */
function providerCalls(
  deps: ProcessingStoreDeps,
  order: PaymentOrder,
  stillLocked: () => Promise<void>,
): ProviderCalls {
  return {
    start: async (kind, idempotencyKey) => {
      await stillLocked();
      return startWhenAllowed(
        deps.db,
        deps.gate,
        { orderId: order.id, provider: order.provider, kind, idempotencyKey: idempotencyKey ?? null },
        sleep,
      );
    },

    restart: (ticket) =>
      restartWhenAllowed(deps.db, deps.gate, { attemptId: ticket.attemptId, provider: order.provider }, sleep),

    finish: (ticket, result) => finishAttempt(deps.db, ticket, result),
  };
}

/** The decision, in the caller's transaction. Only the live generation of a PROCESSING order moves it. */
/** PENDING → PROCESSING with its transition; nothing if the order already moved on. */
async function moveToProcessing(trx: Tx, orderId: string, reason: string): Promise<void> {
  const moved = await trx
    .updateTable('payment_orders')
    .set({ status: 'PROCESSING', updated_at: sql<Date>`now()` })
    .where('id', '=', orderId)
    .where('status', '=', 'PENDING')
    .executeTakeFirst();
  if (Number(moved.numUpdatedRows) === 1) await insertTransition(trx, orderId, 'PENDING', 'PROCESSING', reason);
}

async function applyDecision(
  trx: Tx,
  enqueue: EnqueueNext,
  order: PaymentOrder,
  generation: number,
  decision: Decision,
): Promise<boolean> {
  const live = trx
    .updateTable('payment_orders')
    .where('id', '=', order.id)
    .where('status', '=', 'PROCESSING')
    .where('processing_generation', '=', generation);
  switch (decision.type) {
    case 'schedule': {
      const moved = await live
        .set({
          processing_generation: generation + 1,
          provider_reference: decision.clearReference ? null : (decision.reference ?? order.providerReference),
          next_attempt_at: sql<Date>`now() + make_interval(secs => ${decision.delayMs / 1000})`,
          reconciling_since: reconcilingSince(decision.reconciling),
          updated_at: sql<Date>`now()`,
        })
        .executeTakeFirst();
      if (Number(moved.numUpdatedRows) !== 1) return false;
      await enqueue(trx, order.id, generation + 1, decision.delayMs);
      if (decision.review) await openReview(trx, order.id, decision.review);
      return true;
    }
    case 'await': {
      // No next job: nothing can be asked. A callback or an operator moves the order on.
      const moved = await live
        .set({
          processing_generation: generation + 1,
          next_attempt_at: null,
          reconciling_since: reconcilingSince(true),
          updated_at: sql<Date>`now()`,
        })
        .executeTakeFirst();
      if (Number(moved.numUpdatedRows) !== 1) return false;
      await openReview(trx, order.id, decision.review);
      return true;
    }
    case 'complete':
      if (await settle(trx, order, generation, 'COMPLETED', decision.reason, { reference: decision.reference })) {
        return true;
      }
      await flagIfContradicted(trx, order.id, decision);
      return false;
    case 'fail':
      if (await settle(trx, order, generation, 'FAILED', decision.reason, { failure: decision.failure })) return true;
      await flagIfContradicted(trx, order.id, decision);
      return false;
  }
}

/**
 * An answer that came after the order was settled another way (an operator, a callback) and says
 * the opposite — paid, while the order FAILED; declined, while it COMPLETED — is money out of
 * place: flagged for people, never dropped.
 */
async function flagIfContradicted(
  trx: Tx,
  orderId: string,
  decision: Extract<Decision, { type: 'complete' | 'fail' }>,
): Promise<void> {
  const row = await trx.selectFrom('payment_orders').select('status').where('id', '=', orderId).executeTakeFirst();
  if (decision.type === 'complete' && row?.status === 'FAILED') {
    await openReview(trx, orderId, {
      reason: 'paid_after_failure',
      detail: `The provider answered that ${decision.reference} was paid (${decision.reason}) after the order was settled FAILED: refund it, or settle it by hand.`,
    });
  }
  // A decline (not "we could not reach the provider") for an order already COMPLETED.
  if (decision.type === 'fail' && row?.status === 'COMPLETED' && decision.failure.code !== 'provider_unavailable') {
    await openReview(trx, orderId, {
      reason: 'contradiction',
      detail: `The provider declined the payment (${decision.failure.code}: ${decision.failure.message}) after the order was settled COMPLETED: check that it was paid.`,
    });
  }
}

function reconcilingSince(reconciling: boolean | undefined) {
  if (reconciling === true) return sql<Date>`coalesce(reconciling_since, now())`;
  if (reconciling === false) return sql<Date | null>`null`;
  return sql<Date | null>`reconciling_since`;
}

/**
 * `from` (PROCESSING, or PENDING for an order never sent) → terminal, settled by the provider's
 * answer: the reviews that answer settles close (outcome unknown, push unconfirmed); anomalies stay
 * open for people. Only the live generation.
 */
async function settle(
  trx: Tx,
  order: PaymentOrder,
  generation: number,
  status: 'COMPLETED' | 'FAILED',
  reason: string,
  outcome: { reference?: string; failure?: Failure },
  from: 'PENDING' | 'PROCESSING' = 'PROCESSING',
): Promise<boolean> {
  const settled = await settleOrder(trx, order, {
    status,
    reason,
    ...outcome,
    from,
    generation,
    reviews: { by: 'provider', note: reason, reasons: SELF_SETTLING_REVIEWS },
  });
  return settled !== null;
}

/** An order no provider call was made for: FAILED from whichever of PENDING or PROCESSING it is in. */
async function failUnsent(trx: Tx, order: PaymentOrder, generation: number, failure: Failure): Promise<boolean> {
  const current = await trx
    .selectFrom('payment_orders')
    .select('status')
    .where('id', '=', order.id)
    .forUpdate()
    .executeTakeFirst();
  if (current?.status !== 'PENDING' && current?.status !== 'PROCESSING') return false;
  return settle(trx, order, generation, 'FAILED', failure.message, { failure }, current.status);
}

async function receiveCallback(
  trx: Tx,
  enqueue: EnqueueNext,
  token: string,
  callback: ProviderCallback,
  judge: (context: Omit<CallbackContext, 'traits'>) => CallbackJudgement,
): Promise<CallbackJudgement | null> {
  // The row lock orders this callback with any processing step's outcome for the same order.
  const row = await trx
    .selectFrom('payment_orders')
    .selectAll()
    .where('callback_token', '=', token)
    .forUpdate()
    .executeTakeFirst();
  if (!row) return null;
  const order = toOrder(row);
  // Callbacks naming the same charge for different orders are judged one at a time, so that two
  // orders can never both take one payment as their lead (claimedByAnotherOrder below).
  await sql`select pg_advisory_xact_lock(hashtextextended('provider_charge:' || ${callback.externalId}, 0))`.execute(
    trx,
  );
  const { calls } = await loadCallFacts(trx, order.id);
  const judgement = judge({
    order,
    calls,
    paidExternalId: order.status === 'COMPLETED' ? await paidExternalId(trx, order.id) : null,
    claimedElsewhere: await claimedByAnotherOrder(trx, order.id, callback.externalId),
  });
  await insertProviderCallback(trx, order.id, callback, judgement.disposition);
  const generation = row.processing_generation;
  if (judgement.complete) {
    await settle(trx, order, generation, 'COMPLETED', judgement.complete.reason, {
      reference: judgement.complete.reference,
    });
  } else if (judgement.confirm) {
    // The next step now, whatever was scheduled: it asks the provider about the push.
    await trx
      .updateTable('payment_orders')
      .set({ processing_generation: generation + 1, next_attempt_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
      .where('id', '=', order.id)
      .where('status', '=', 'PROCESSING')
      .execute();
    await enqueue(trx, order.id, generation + 1, 0);
  }
  if (judgement.review) await openReview(trx, order.id, judgement.review);
  return judgement;
}
