import { sql } from 'kysely';
import { DomainError } from '../domain/errors.ts';
import type { ResolutionStore } from '../domain/resolve-payment-order.ts';
import type { Db } from './connection.ts';
import { insertOrderEvent } from './outbox-events.repository.ts';
import { insertTransition, toOrder } from './payment-orders.repository.ts';
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
        const settled = resolution.type === 'settle' ? resolution.status : (row.status as 'COMPLETED' | 'FAILED');
        if (resolution.type === 'settle') {
          await trx
            .updateTable('payment_orders')
            .set({
              status: resolution.status,
              // Every scheduled step of the order goes stale.
              processing_generation: row.processing_generation + 1,
              provider_reference: resolution.reference,
              failure_code: resolution.failure?.code ?? null,
              failure_message: resolution.failure?.message ?? null,
              next_attempt_at: null,
              reconciling_since: null,
              updated_at: sql<Date>`now()`,
            })
            .where('id', '=', row.id)
            .execute();
          await insertTransition(trx, row.id, 'PROCESSING', resolution.status, resolution.reason);
        }
        // The operator has looked at the order: every open review is settled by them.
        const order = await closeReviews(trx, row.id, {
          by: command.operator,
          resolution: settled,
          note: command.note,
        });
        if (resolution.type === 'settle') {
          await insertOrderEvent(
            trx,
            order,
            resolution.status === 'COMPLETED' ? 'payment_order.completed' : 'payment_order.failed',
          );
        }
        return order;
      }),
  };
}
