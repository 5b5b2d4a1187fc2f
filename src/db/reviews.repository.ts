import { sql } from 'kysely';
import type { Review } from '../domain/decide.ts';
import type { ReviewView } from '../domain/order-json.ts';
import type { PaymentOrder } from '../domain/payment-order.ts';
import { newId } from '../lib/ids.ts';
import type { Db, Tx } from './connection.ts';
import { insertOrderEvent } from './outbox-events.repository.ts';
import { toOrder } from './payment-orders.repository.ts';

/**
 * Flags the order for people: a review row (at most one open per order and reason, by a unique
 * partial index), the order's flag (its oldest open review; terminal orders included: the state
 * machine lets only the flag change), and the `payment_order.review_required` event — in the
 * caller's transaction. Returns false when a review for that reason was already open (nothing
 * written).
 */
export async function openReview(trx: Tx, orderId: string, review: Review): Promise<boolean> {
  const inserted = await trx
    .insertInto('payment_order_reviews')
    .values({ id: newId('rev'), order_id: orderId, reason: review.reason, detail: review.detail })
    .onConflict((conflict) => conflict.columns(['order_id', 'reason']).where('resolved_at', 'is', null).doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!inserted) return false;
  const order = await refreshReviewFlag(trx, orderId);
  await insertOrderEvent(trx, order, 'payment_order.review_required');
  return true;
}

/**
 * Closes the order's open reviews (those of `reasons`, or all), saying who settled them and how,
 * and moves the order's flag to what stays open. Returns the order as it is then.
 */
export async function closeReviews(
  trx: Tx,
  orderId: string,
  settled: { by: string; resolution: 'COMPLETED' | 'FAILED'; note: string; reasons?: readonly string[] },
): Promise<PaymentOrder> {
  let update = trx
    .updateTable('payment_order_reviews')
    .set({
      resolved_at: sql<Date>`now()`,
      resolved_by: settled.by,
      resolution: settled.resolution,
      note: settled.note.slice(0, 1000),
    })
    .where('order_id', '=', orderId)
    .where('resolved_at', 'is', null);
  if (settled.reasons) update = update.where('reason', 'in', [...settled.reasons]);
  await update.execute();
  return refreshReviewFlag(trx, orderId);
}

/**
 * update payment_orders set (review_reason, review_since) = (the oldest open review) where id = $1
 * returning * — the flag always says what payment_order_reviews holds open.
 */
async function refreshReviewFlag(trx: Tx, orderId: string): Promise<PaymentOrder> {
  const row = await trx
    .updateTable('payment_orders')
    .set({
      review_reason: sql<string | null>`(select reason from payment_order_reviews
        where order_id = ${orderId} and resolved_at is null order by opened_at, id limit 1)`,
      review_since: sql<Date | null>`(select opened_at from payment_order_reviews
        where order_id = ${orderId} and resolved_at is null order by opened_at, id limit 1)`,
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', orderId)
    .returningAll()
    .executeTakeFirstOrThrow();
  return toOrder(row);
}

/** select * from payment_order_reviews where order_id = $1 order by opened_at */
export async function listReviews(db: Db | Tx, orderId: string): Promise<ReviewView[]> {
  const rows = await db
    .selectFrom('payment_order_reviews')
    .selectAll()
    .where('order_id', '=', orderId)
    .orderBy('opened_at')
    .orderBy('id')
    .execute();
  return rows.map((r) => ({
    reason: r.reason,
    detail: r.detail,
    openedAt: r.opened_at,
    resolvedAt: r.resolved_at,
    resolvedBy: r.resolved_by,
    resolution: r.resolution,
    note: r.note,
  }));
}
