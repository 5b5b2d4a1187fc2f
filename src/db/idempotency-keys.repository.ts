import { sql } from 'kysely';
import type { Db } from './connection.ts';

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
