import { sql } from 'kysely';
import type { CallbackDisposition, ProviderCallback } from '../domain/callback-evidence.ts';
import type { Db, Tx } from './connection.ts';

/** insert into provider_callbacks (order_id, provider, external_id, ..., disposition) values (...) */
export async function insertProviderCallback(
  trx: Tx,
  orderId: string,
  callback: ProviderCallback,
  disposition: CallbackDisposition,
): Promise<void> {
  await trx
    .insertInto('provider_callbacks')
    .values({
      order_id: orderId,
      provider: callback.provider,
      external_id: callback.externalId.slice(0, 255),
      result_code: callback.resultCode.slice(0, 64),
      outcome: callback.outcome,
      amount: callback.amount,
      phone: callback.phone,
      receipt: callback.receipt?.slice(0, 64) ?? null,
      disposition,
    })
    .execute();
}

/** The callbacks recorded for an order, oldest first (the order's story). */
export async function listProviderCallbacks(db: Db | Tx, orderId: string) {
  return db.selectFrom('provider_callbacks').selectAll().where('order_id', '=', orderId).orderBy('id').execute();
}

/**
 * The charges success callbacks pointed at while they were being confirmed, oldest first: the
 * money rule's leads for a push whose reference we never learnt.
 *
 * select external_id from provider_callbacks where order_id = $1 and disposition = 'confirming'
 * and outcome = 'succeeded' order by id
 */
export async function loadLeads(db: Db | Tx, orderId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('provider_callbacks')
    .select('external_id')
    .where('order_id', '=', orderId)
    .where('disposition', '=', 'confirming')
    .where('outcome', '=', 'succeeded')
    .orderBy('id')
    .execute();
  return [...new Set(rows.map((r) => r.external_id))];
}

/**
 * Whether a charge belongs to another order: one of its calls named it, or one of its callbacks
 * was taken as its evidence. Two index probes (sql/007).
 */
export async function claimedByAnotherOrder(trx: Tx, orderId: string, externalId: string): Promise<boolean> {
  const { rows } = await sql<{ claimed: boolean }>`
    select exists (
      select 1 from provider_attempts where provider_reference = ${externalId} and order_id <> ${orderId}
    ) or exists (
      select 1 from provider_callbacks
      where external_id = ${externalId} and order_id <> ${orderId} and disposition in ('applied', 'confirming', 'duplicate')
    ) as claimed`.execute(trx);
  return rows[0]?.claimed === true;
}
