// npm run keys -- create <merchant> | create-operator <name> | list | revoke <key id or key>
import { loadConfig } from '../config/config.ts';
import type { Db } from '../db/connection.ts';
import { ensureMerchant, insertApiKey, listApiKeys, revokeApiKey } from '../db/merchants.repository.ts';
import { insertOperatorKey, listOperatorKeys, revokeOperatorKey } from '../db/operators.repository.ts';
import { hashApiKey, looksLikeApiKey, looksLikeOperatorKey, newApiKey, newOperatorKey } from '../domain/api-key.ts';
import { withCliDatabase } from './database.ts';

const USAGE = `usage: npm run keys -- create <merchant>          create a key (and the merchant if new); prints the key once
       npm run keys -- create-operator <name>   create an operator key (resolve reviews); prints the key once
       npm run keys -- list                       print every key: id, owner, prefix, created, revoked
       npm run keys -- revoke <id|key>            revoke a key by its id (key_..., opk_...) or by the key itself`;

const NAME = /^[\w.-]{1,100}$/;

const commands: Record<string, (db: Db, args: string[]) => Promise<number>> = {
  async create(db, [merchantName]) {
    if (!merchantName || !NAME.test(merchantName)) {
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
  async 'create-operator'(db, [name]) {
    if (!name || !NAME.test(name)) {
      process.stderr.write(`an operator name is required (letters, digits, ".", "_", "-"; at most 100)\n${USAGE}\n`);
      return 2;
    }
    const created = newOperatorKey();
    const id = await insertOperatorKey(db, name, created.hash, created.prefix);
    process.stdout.write(`Created operator key ${id} for ${name}.\n`);
    process.stdout.write('The key is shown once; only its hash is stored:\n');
    process.stdout.write(`${created.key}\n`);
    return 0;
  },
  async list(db) {
    const keys = await listApiKeys(db);
    const operators = await listOperatorKeys(db);
    if (keys.length === 0 && operators.length === 0) process.stdout.write('no keys\n');
    const line = (id: string, owner: string, prefix: string, createdAt: Date, revokedAt: Date | null) => {
      const state = revokedAt ? `revoked ${revokedAt.toISOString()}` : 'active';
      process.stdout.write(`${id}  ${owner}  ${prefix}...  created ${createdAt.toISOString()}  ${state}\n`);
    };
    for (const k of keys) line(k.id, k.merchantName, k.prefix, k.createdAt, k.revokedAt);
    for (const k of operators) line(k.id, `operator:${k.name}`, k.prefix, k.createdAt, k.revokedAt);
    return 0;
  },
  async revoke(db, [target]) {
    if (!target) {
      process.stderr.write(`a key id or key is required\n${USAGE}\n`);
      return 2;
    }
    const revoked =
      looksLikeOperatorKey(target) || target.startsWith('opk_')
        ? await revokeOperatorKey(db, looksLikeOperatorKey(target) ? { hash: hashApiKey(target) } : { id: target })
        : await revokeApiKey(db, looksLikeApiKey(target) ? { hash: hashApiKey(target) } : { id: target });
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
