import { newId } from '../lib/ids.ts';
import type { Db } from './connection.ts';

export type Merchant = Readonly<{ id: string; name: string; createdAt: Date }>;
export type ApiKeyInfo = Readonly<{
  id: string;
  merchantName: string;
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}>;

/** insert into merchants (id, name) values (...) on conflict (name) do nothing; then select it */
export async function ensureMerchant(db: Db, name: string): Promise<Merchant> {
  await db
    .insertInto('merchants')
    .values({ id: newId('mch'), name })
    .onConflict((conflict) => conflict.column('name').doNothing())
    .execute();
  const row = await db.selectFrom('merchants').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
  return { id: row.id, name: row.name, createdAt: row.created_at };
}

/** insert into api_keys (id, merchant_id, key_hash, key_prefix) values (...) */
export async function insertApiKey(db: Db, merchantId: string, hash: Buffer, prefix: string): Promise<string> {
  const id = newId('key');
  await db.insertInto('api_keys').values({ id, merchant_id: merchantId, key_hash: hash, key_prefix: prefix }).execute();
  return id;
}

/** The merchant a live (not revoked) key belongs to: one probe of the unique index on key_hash. */
export async function findMerchantIdByKeyHash(db: Db, hash: Buffer): Promise<string | null> {
  const row = await db
    .selectFrom('api_keys')
    .select('merchant_id')
    .where('key_hash', '=', hash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return row?.merchant_id ?? null;
}

export async function listApiKeys(db: Db): Promise<ApiKeyInfo[]> {
  const rows = await db
    .selectFrom('api_keys')
    .innerJoin('merchants', 'merchants.id', 'api_keys.merchant_id')
    .select([
      'api_keys.id',
      'merchants.name as merchantName',
      'api_keys.key_prefix',
      'api_keys.created_at',
      'api_keys.revoked_at',
    ])
    .orderBy('api_keys.created_at')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    merchantName: r.merchantName,
    prefix: r.key_prefix,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  }));
}

/** Revokes by key id or by full key; returns whether a live key was revoked. */
export async function revokeApiKey(db: Db, idOrHash: { id: string } | { hash: Buffer }): Promise<boolean> {
  let update = db.updateTable('api_keys').set({ revoked_at: new Date() }).where('revoked_at', 'is', null);
  update = 'id' in idOrHash ? update.where('id', '=', idOrHash.id) : update.where('key_hash', '=', idOrHash.hash);
  const result = await update.executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}
