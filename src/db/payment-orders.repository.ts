import type { Selectable } from 'kysely';
import type { OrderStatus, PaymentMethod, PaymentOrder, Transition } from '../domain/payment-order.ts';
import type { Db, Tx } from './connection.ts';
import type { PaymentOrdersTable, PaymentOrderTransitionsTable } from './schema.ts';

type Executor = Db | Tx;

/** insert into payment_orders (...) values (...) */
export async function insertOrder(db: Executor, order: PaymentOrder, idempotencyKey: string): Promise<void> {
  await insertOrders(db, [{ order, idempotencyKey }]);
}

/**
 * Several orders in one statement: insert into payment_orders (...) values (...), (...). The create
 * path writes one; a load (the benches' backlogs) writes many. 14 parameters a row: keep a call
 * under ~4,000 rows (PostgreSQL takes at most 65,535 parameters a statement).
 */
export async function insertOrders(
  db: Executor,
  rows: readonly Readonly<{ order: PaymentOrder; idempotencyKey: string }>[],
): Promise<void> {
  if (rows.length === 0) return;
  await db
    .insertInto('payment_orders')
    .values(
      rows.map(({ order, idempotencyKey }) => ({
        id: order.id,
        merchant_id: order.merchantId,
        status: order.status,
        amount: order.amount,
        currency: order.currency,
        provider: order.provider,
        payment_method: order.paymentMethod === null ? null : JSON.stringify(order.paymentMethod),
        reference: order.reference,
        description: order.description,
        metadata: JSON.stringify(order.metadata),
        provider_reference: order.providerReference,
        idempotency_key: idempotencyKey,
        created_at: order.createdAt,
        updated_at: order.updatedAt,
      })),
    )
    .execute();
}

/** insert into payment_order_transitions (order_id, from_status, to_status, reason, created_at) */
export async function insertTransition(
  db: Executor,
  orderId: string,
  from: OrderStatus | null,
  to: OrderStatus,
  reason: string,
  at?: Date,
): Promise<void> {
  await db
    .insertInto('payment_order_transitions')
    .values({ order_id: orderId, from_status: from, to_status: to, reason, created_at: at })
    .execute();
}

/** select * from payment_orders where merchant_id = $1 and id = $2 */
export async function findOrder(db: Executor, merchantId: string, id: string): Promise<PaymentOrder | null> {
  const row = await db
    .selectFrom('payment_orders')
    .selectAll()
    .where('merchant_id', '=', merchantId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row ? toOrder(row) : null;
}

export type ListOrdersQuery = Readonly<{
  merchantId: string;
  status?: OrderStatus | undefined;
  limit: number;
  startingAfter?: string | undefined;
}>;

/**
 * Newest first, keyset-paginated on the id (ids sort by creation time):
 * select * from payment_orders where merchant_id = $1 [and status = $2] [and id < $3]
 * order by id desc limit $4 + 1 — the extra row only tells whether there is a next page.
 */
export async function listOrders(
  db: Executor,
  query: ListOrdersQuery,
): Promise<{ orders: PaymentOrder[]; hasMore: boolean }> {
  let select = db.selectFrom('payment_orders').selectAll().where('merchant_id', '=', query.merchantId);
  if (query.status) select = select.where('status', '=', query.status);
  if (query.startingAfter) select = select.where('id', '<', query.startingAfter);
  const rows = await select
    .orderBy('id', 'desc')
    .limit(query.limit + 1)
    .execute();
  return { orders: rows.slice(0, query.limit).map(toOrder), hasMore: rows.length > query.limit };
}

/** select * from payment_order_transitions where order_id = $1 order by id */
export async function listTransitions(db: Executor, orderId: string): Promise<Transition[]> {
  const rows = await db
    .selectFrom('payment_order_transitions')
    .selectAll()
    .where('order_id', '=', orderId)
    .orderBy('id')
    .execute();
  return rows.map(toTransition);
}

export function toOrder(row: Selectable<PaymentOrdersTable>): PaymentOrder {
  return {
    id: row.id,
    merchantId: row.merchant_id,
    status: row.status as OrderStatus,
    amount: Number(row.amount),
    currency: row.currency,
    provider: row.provider,
    paymentMethod: row.payment_method as PaymentMethod | null,
    reference: row.reference,
    description: row.description,
    metadata: row.metadata,
    providerReference: row.provider_reference,
    failure: row.failure_code ? { code: row.failure_code, message: row.failure_message ?? '' } : null,
    nextAttemptAt: row.next_attempt_at,
    reconcilingSince: row.reconciling_since,
    review: row.review_reason && row.review_since ? { reason: row.review_reason, since: row.review_since } : null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toTransition(row: Selectable<PaymentOrderTransitionsTable>): Transition {
  return {
    from: row.from_status as OrderStatus | null,
    to: row.to_status as OrderStatus,
    reason: row.reason,
    at: row.created_at,
  };
}
