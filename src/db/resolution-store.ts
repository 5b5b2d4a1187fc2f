import { sql } from 'kysely';
import { DomainError } from '../domain/errors.ts';
import type { ResolutionStore } from '../domain/resolve-payment-order.ts';
import type { Db } from './connection.ts';
import { settleOrder } from './order-settlement.ts';
import { toOrder } from './payment-orders.repository.ts';
import { closeReviews } from './reviews.repository.ts';

export function createResolutionStore(db: Db): ResolutionStore {
  return {
    resolve: (command, plan) =>
      db.transaction().execute(async (trx) => {
        // The processing step holds this order's advisory lock for the whole of a provider call:
        // an operator settling the order meanwhile would race the provider's answer.
        const { rows } = await sql<{ free: boolean }>`
          select pg_try_advisory_xact_lock(hashtextextended('payment_order:' || ${command.orderId}, 0)) as free`.execute(
          trx,
        );
        if (!rows[0]?.free) {
          throw new DomainError(
            'order_busy',
            `A provider call for payment order '${command.orderId}' is in flight; try again in a few seconds.`,
          );
        }
        const current = await trx
          .selectFrom('payment_orders')
          .selectAll()
          .where('id', '=', command.orderId)
          .forUpdate()
          .executeTakeFirst();
        const resolution = plan(current ? toOrder(current) : null);
        // plan() throws unless the order exists.
        const row = current as NonNullable<typeof current>;
        const before = toOrder(row);
        if (resolution.type === 'settle') {
          const settled = await settleOrder(trx, before, {
            status: resolution.status,
            reason: resolution.reason,
            reference: resolution.reference,
            failure: resolution.failure,
            from: 'PROCESSING',
            generation: row.processing_generation,
            // The operator has looked at the order: every open review is settled by them.
            reviews: { by: command.operator, note: command.note },
          });
          if (!settled) throw new Error(`payment order ${row.id} moved while locked`);
          return settled;
        }
        const order = await closeReviews(trx, row.id, {
          by: command.operator,
          resolution: row.status as 'COMPLETED' | 'FAILED',
          note: command.note,
        });
        return order;
      }),
  };
}
