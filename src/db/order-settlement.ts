import { sql } from 'kysely';
import type { Failure, PaymentOrder } from '../domain/payment-order.ts';
import type { Tx } from './connection.ts';
import { insertOrderEvent } from './outbox-events.repository.ts';
import { insertTransition } from './payment-orders.repository.ts';
import { closeReviews } from './reviews.repository.ts';

export type Settlement = Readonly<{
  status: 'COMPLETED' | 'FAILED';
  /** The transition's reason (who and why). */
  reason: string;
  reference?: string | null | undefined;
  failure?: Failure | null | undefined;
  /** The status it leaves: PROCESSING, or PENDING for an order no provider was ever called for. */
  from: 'PENDING' | 'PROCESSING';
  /** Only this generation moves it: a step or job that was overtaken changes nothing. */
  generation: number;
  /** Who settled the order's open reviews, and which (all, when omitted). */
  reviews: Readonly<{ by: string; note: string; reasons?: readonly string[] | undefined }>;
}>;

/**
 * An order's one terminal transition, in the caller's transaction: the status (every scheduled
 * step goes stale with the generation), its transition row, the reviews it settles, and its outbox
 * event carrying the order as it is then. Returns null when the order had moved on (another status
 * or generation): nothing written.
 */
export async function settleOrder(trx: Tx, order: PaymentOrder, settlement: Settlement): Promise<PaymentOrder | null> {
  const moved = await trx
    .updateTable('payment_orders')
    .set({
      status: settlement.status,
      processing_generation: settlement.generation + 1,
      provider_reference: settlement.reference ?? order.providerReference,
      failure_code: settlement.failure?.code ?? null,
      failure_message: settlement.failure?.message ?? null,
      next_attempt_at: null,
      reconciling_since: null,
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', order.id)
    .where('status', '=', settlement.from)
    .where('processing_generation', '=', settlement.generation)
    .returning('id')
    .executeTakeFirst();
  if (!moved) return null;
  await insertTransition(trx, order.id, settlement.from, settlement.status, settlement.reason);
  const final = await closeReviews(trx, order.id, { ...settlement.reviews, resolution: settlement.status });
  await insertOrderEvent(
    trx,
    final,
    settlement.status === 'COMPLETED' ? 'payment_order.completed' : 'payment_order.failed',
  );
  return final;
}
