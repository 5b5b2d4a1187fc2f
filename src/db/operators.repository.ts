import { newId } from '../lib/ids.ts';
import type { Db } from './connection.ts';

export type OperatorKeyInfo = Readonly<{
  id: string;
  name: string;
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}>;

/** insert into operator_keys (id, name, key_hash, key_prefix) values (...) */
export async function insertOperatorKey(db: Db, name: string, hash: Buffer, prefix: string): Promise<string> {
  const id = newId('opk');
  await db.insertInto('operator_keys').values({ id, name, key_hash: hash, key_prefix: prefix }).execute();
  return id;
}

/** The name of the operator a live (not revoked) key belongs to: one probe of the unique index on key_hash. */
export async function findOperatorByKeyHash(db: Db, hash: Buffer): Promise<string | null> {
  const row = await db
    .selectFrom('operator_keys')
    .select('name')
    .where('key_hash', '=', hash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return row?.name ?? null;
}

export async function listOperatorKeys(db: Db): Promise<OperatorKeyInfo[]> {
  const rows = await db.selectFrom('operator_keys').selectAll().orderBy('created_at').execute();
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    prefix: r.key_prefix,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  }));
}

/** Revokes by key id or by full key; returns whether a live key was revoked. */
export async function revokeOperatorKey(db: Db, idOrHash: { id: string } | { hash: Buffer }): Promise<boolean> {
  let update = db.updateTable('operator_keys').set({ revoked_at: new Date() }).where('revoked_at', 'is', null);
  update = 'id' in idOrHash ? update.where('id', '=', idOrHash.id) : update.where('key_hash', '=', idOrHash.hash);
  const result = await update.executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}
