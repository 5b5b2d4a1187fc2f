// npm run keys -- create <merchant> | list | revoke <key id or key>
import { loadConfig } from '../config/config.ts';
import type { Db } from '../db/connection.ts';
import { ensureMerchant, insertApiKey, listApiKeys, revokeApiKey } from '../db/merchants.repository.ts';
import { hashApiKey, looksLikeApiKey, newApiKey } from '../domain/api-key.ts';
import { withCliDatabase } from './database.ts';

const USAGE = `usage: npm run keys -- create <merchant>   create a key (and the merchant if new); prints the key once
       npm run keys -- list                print every key: id, merchant, prefix, created, revoked
       npm run keys -- revoke <id|key>     revoke a key by its id (key_...) or by the key itself`;

const commands: Record<string, (db: Db, args: string[]) => Promise<number>> = {
  async create(db, [merchantName]) {
    if (!merchantName || !/^[\w.-]{1,100}$/.test(merchantName)) {
      process.stderr.write(`a merchant name is required (letters, digits, ".", "_", "-"; at most 100)\n${USAGE}\n`);
      return 2;
    }
    const merchant = await ensureMerchant(db, merchantName);
    const created = newApiKey();
    const id = await insertApiKey(db, merchant.id, created.hash, created.prefix);
    process.stdout.write(`Created key ${id} for merchant ${merchant.name} (${merchant.id}).\n`);
    process.stdout.write('The key is shown once; only its hash is stored:\n');
    process.stdout.write(`${created.key}\n`);
    return 0;
  },
  async list(db) {
    const keys = await listApiKeys(db);
    if (keys.length === 0) process.stdout.write('no keys\n');
    for (const k of keys) {
      const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active';
      process.stdout.write(
        `${k.id}  ${k.merchantName}  ${k.prefix}...  created ${k.createdAt.toISOString()}  ${state}\n`,
      );
    }
    return 0;
  },
  async revoke(db, [target]) {
    if (!target) {
      process.stderr.write(`a key id or key is required\n${USAGE}\n`);
      return 2;
    }
    const revoked = await revokeApiKey(db, looksLikeApiKey(target) ? { hash: hashApiKey(target) } : { id: target });
    process.stdout.write(revoked ? 'revoked\n' : 'no active key matches\n');
    return revoked ? 0 : 1;
  },
};

const [name, ...args] = process.argv.slice(2);
const command = name ? commands[name] : undefined;
if (!command) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}
process.exitCode = await withCliDatabase(loadConfig(), (db) => command(db, args));
