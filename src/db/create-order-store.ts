import type { CreateOrderUnitOfWork, TransactionRunner } from '../domain/create-payment-order.ts';
import type { Db, Tx } from './connection.ts';
import { claimIdempotencyKey, saveResponse } from './idempotency-keys.repository.ts';
import { insertOrder, insertTransition } from './payment-orders.repository.ts';

/** Writes the processing job in the given transaction (pg-boss `send(..., { db })`). */
export type EnqueueInTransaction = (trx: Tx, orderId: string) => Promise<void>;

/** The create step's unit of work on PostgreSQL: one kysely transaction, every write inside it. */
export function createOrderStore(db: Db, enqueue: EnqueueInTransaction): TransactionRunner<CreateOrderUnitOfWork> {
  return {
    inTransaction: (work) =>
      db.transaction().execute((trx) =>
        work({
          claimIdempotencyKey: (merchantId, key, fingerprint, ttlHours) =>
            claimIdempotencyKey(trx, merchantId, key, fingerprint, ttlHours),
          insertOrder: (order, key) => insertOrder(trx, order, key),
          appendTransition: (orderId, from, to, reason) => insertTransition(trx, orderId, from, to, reason),
          enqueueProcessing: (orderId) => enqueue(trx, orderId),
          saveResponse: (merchantId, key, orderId, response) => saveResponse(trx, merchantId, key, orderId, response),
        }),
      ),
  };
}
