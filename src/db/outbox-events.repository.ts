import { orderJson } from '../domain/order-json.ts';
import type { PaymentOrder } from '../domain/payment-order.ts';
import { newId } from '../lib/ids.ts';
import type { Tx } from './connection.ts';

/** The outbox trigger's NOTIFY channel (sql/003_events.sql): an event committed. */
export const OUTBOX_CHANNEL = 'outbox_events';

export type OrderEventType = 'payment_order.completed' | 'payment_order.failed' | 'payment_order.review_required';

/**
 * An order's event, in the transaction of the change it reports (the terminal transition, a review
 * opened), carrying the order's public JSON as it is after that change.
 *
 * insert into outbox_events (id, merchant_id, order_id, type, payload) values (...)
 */
export async function insertOrderEvent(trx: Tx, order: PaymentOrder, type: OrderEventType): Promise<void> {
  await trx
    .insertInto('outbox_events')
    .values({
      id: newId('evt'),
      merchant_id: order.merchantId,
      order_id: order.id,
      type,
      payload: JSON.stringify(orderJson(order)),
    })
    .execute();
}
