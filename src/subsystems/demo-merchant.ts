import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '../db/connection.ts';
import { ensureMerchant, findMerchantIdByKeyHash, insertApiKey } from '../db/merchants.repository.ts';
import { findOperatorByKeyHash, insertOperatorKey } from '../db/operators.repository.ts';
import { hashApiKey, looksLikeApiKey, looksLikeOperatorKey, newApiKey, newOperatorKey } from '../domain/api-key.ts';

/**
 * The demo merchant's key (DEMO_MERCHANT), kept in <dataDir>/demo-api-key (mode 0600) so that
 * every start can print it again; the database, as for every key, holds only its hash.
 */
export async function ensureDemoApiKey(db: Db, dataDir: string): Promise<string> {
  const file = path.resolve(dataDir, 'demo-api-key');
  const saved = await readSaved(file);
  if (looksLikeApiKey(saved) && (await findMerchantIdByKeyHash(db, hashApiKey(saved)))) return saved;
  const merchant = await ensureMerchant(db, 'demo');
  const created = newApiKey();
  await insertApiKey(db, merchant.id, created.hash, created.prefix);
  await save(file, created.key);
  return created.key;
}

/**
 * With the demo merchant, an operator key too (<dataDir>/demo-operator-key), so that /console
 * opens right after `npm start`; a revoked one is replaced.
 */
export async function ensureDemoOperatorKey(db: Db, dataDir: string): Promise<string> {
  const file = path.resolve(dataDir, 'demo-operator-key');
  const saved = await readSaved(file);
  if (looksLikeOperatorKey(saved) && (await findOperatorByKeyHash(db, hashApiKey(saved)))) return saved;
  const created = newOperatorKey();
  await insertOperatorKey(db, 'demo', created.hash, created.prefix);
  await save(file, created.key);
  return created.key;
}

async function readSaved(file: string): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trim();
}

async function save(file: string, key: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
}
