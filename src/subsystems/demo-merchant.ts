import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '../db/connection.ts';
import { ensureMerchant, findMerchantIdByKeyHash, insertApiKey } from '../db/merchants.repository.ts';
import { hashApiKey, looksLikeApiKey, newApiKey } from '../domain/api-key.ts';

/**
 * The demo merchant's key (DEMO_MERCHANT), kept in <dataDir>/demo-api-key (mode 0600) so that
 * every start can print it again; the database, as for every key, holds only its hash.
 */
export async function ensureDemoApiKey(db: Db, dataDir: string): Promise<string> {
  const file = path.resolve(dataDir, 'demo-api-key');
  const saved = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (looksLikeApiKey(saved) && (await findMerchantIdByKeyHash(db, hashApiKey(saved)))) return saved;
  const merchant = await ensureMerchant(db, 'demo');
  const created = newApiKey();
  await insertApiKey(db, merchant.id, created.hash, created.prefix);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${created.key}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return created.key;
}
