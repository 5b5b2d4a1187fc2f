import { sql } from 'kysely';
import type { IdempotencyClaim, SavedResponse } from '../domain/create-payment-order.ts';
import type { Db, Tx } from './connection.ts';

/**
 * Takes (merchant, key) for this transaction, or returns what the key already holds.
 *
 * insert ... on conflict (merchant_id, idempotency_key) do update ... where expires_at <= now()
 *
 * The unique index is what serialises concurrent requests: an insert that meets an uncommitted row
 * with the same key waits for that transaction. If it commits, we read its saved response; if it
 * rolls back, our insert goes through. No request sees a half-done key, so none needs a 409.
 * An expired key that the sweeper has not removed yet is taken over as if it were gone.
 */
export async function claimIdempotencyKey(
  trx: Tx,
  merchantId: string,
  key: string,
  fingerprint: string,
  ttlHours: number,
): Promise<IdempotencyClaim> {
  const inserted = await trx
    .insertInto('idempotency_keys')
    .values({
      merchant_id: merchantId,
      idempotency_key: key,
      request_fingerprint: fingerprint,
      expires_at: sql<Date>`now() + make_interval(hours => ${ttlHours})`,
    })
    .onConflict((conflict) =>
      conflict
        .columns(['merchant_id', 'idempotency_key'])
        .doUpdateSet({
          request_fingerprint: (eb) => eb.ref('excluded.request_fingerprint'),
          order_id: null,
          response_status: null,
          response_body: null,
          created_at: sql<Date>`now()`,
          expires_at: (eb) => eb.ref('excluded.expires_at'),
        })
        .where('idempotency_keys.expires_at', '<=', sql<Date>`now()`),
    )
    .returning('merchant_id')
    .executeTakeFirst();
  if (inserted) return { kind: 'claimed' };

  const existing = await trx
    .selectFrom('idempotency_keys')
    .select(['request_fingerprint', 'response_status', 'response_body'])
    .where('merchant_id', '=', merchantId)
    .where('idempotency_key', '=', key)
    .executeTakeFirstOrThrow();
  if (existing.response_status === null || existing.response_body === null) {
    // Claim and response are written in one transaction, so a committed key always has both.
    throw new Error(`idempotency key row without a response (merchant ${merchantId})`);
  }
  return {
    kind: 'taken',
    fingerprint: existing.request_fingerprint,
    response: { status: existing.response_status, body: existing.response_body },
  };
}

/** update idempotency_keys set order_id, response_status, response_body where (merchant, key) */
export async function saveResponse(
  trx: Tx,
  merchantId: string,
  key: string,
  orderId: string,
  response: SavedResponse,
): Promise<void> {
  await trx
    .updateTable('idempotency_keys')
    .set({ order_id: orderId, response_status: response.status, response_body: response.body })
    .where('merchant_id', '=', merchantId)
    .where('idempotency_key', '=', key)
    .execute();
}

/**
 * delete from idempotency_keys where expires_at <= now(), in batches so one sweep never holds a
 * long lock or a huge transaction. Orders are untouched. Returns how many keys went.
 */
export async function sweepExpiredKeys(db: Db, batchSize = 5_000): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await sql<{ n: number }>`
      with expired as (
        select merchant_id, idempotency_key from idempotency_keys
        where expires_at <= now()
        limit ${batchSize}
        for update skip locked
      )
      delete from idempotency_keys k using expired e
      where k.merchant_id = e.merchant_id and k.idempotency_key = e.idempotency_key`.execute(db);
    const deleted = Number(result.numAffectedRows ?? 0);
    total += deleted;
    if (deleted < batchSize) return total;
  }
}
