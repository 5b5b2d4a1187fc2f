// npm run keys -- create <merchant> | create-operator <name> | list | revoke <key id or key> [--json] | --help
import { loadConfig } from '../config/config.ts';
import type { Db } from '../db/connection.ts';
import { ensureMerchant, insertApiKey, listApiKeys, revokeApiKey } from '../db/merchants.repository.ts';
import { insertOperatorKey, listOperatorKeys, revokeOperatorKey } from '../db/operators.repository.ts';
import { hashApiKey, looksLikeApiKey, looksLikeOperatorKey, newApiKey, newOperatorKey } from '../domain/api-key.ts';
import { withCliDatabase } from './database.ts';

const USAGE = `usage: npm run keys -- create <merchant>          create a key (and the merchant if new); prints the key once
       npm run keys -- create-operator <name>   create an operator key (resolve reviews); prints the key once
       npm run keys -- list                       print every key: id, owner, prefix, created, revoked
       npm run keys -- revoke <id|key>            revoke a key by its id (key_..., opk_...) or by the key itself
       npm run keys -- --help                     this text

--json: one JSON document on stdout instead of text (create: {id, owner, key}; list: an array;
revoke: {revoked}). The database is DATABASE_URL's, or the embedded one in DATA_DIR.`;

/** Set by --json: each command writes one JSON document instead of its text lines. */
let json = false;
const out = (text: string, value: unknown) => process.stdout.write(json ? `${JSON.stringify(value)}\n` : text);

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
    out(
      `Created key ${id} for merchant ${merchant.name} (${merchant.id}).\nThe key is shown once; only its hash is stored:\n${created.key}\n`,
      { id, merchant: { id: merchant.id, name: merchant.name }, key: created.key },
    );
    return 0;
  },
  async 'create-operator'(db, [name]) {
    if (!name || !NAME.test(name)) {
      process.stderr.write(`an operator name is required (letters, digits, ".", "_", "-"; at most 100)\n${USAGE}\n`);
      return 2;
    }
    const created = newOperatorKey();
    const id = await insertOperatorKey(db, name, created.hash, created.prefix);
    out(`Created operator key ${id} for ${name}.\nThe key is shown once; only its hash is stored:\n${created.key}\n`, {
      id,
      operator: name,
      key: created.key,
    });
    return 0;
  },
  async list(db) {
    const keys = await listApiKeys(db);
    const operators = await listOperatorKeys(db);
    const rows = [
      ...keys.map((k) => ({
        id: k.id,
        owner: k.merchantName,
        prefix: k.prefix,
        createdAt: k.createdAt,
        revokedAt: k.revokedAt,
      })),
      ...operators.map((k) => ({
        id: k.id,
        owner: `operator:${k.name}`,
        prefix: k.prefix,
        createdAt: k.createdAt,
        revokedAt: k.revokedAt,
      })),
    ];
    const text = rows.map((k) => {
      const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active';
      return `${k.id}  ${k.owner}  ${k.prefix}...  created ${k.createdAt.toISOString()}  ${state}\n`;
    });
    out(rows.length === 0 ? 'no keys\n' : text.join(''), rows);
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
    out(revoked ? 'revoked\n' : 'no active key matches\n', { revoked });
    return revoked ? 0 : 1;
  },
};

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
json = argv.includes('--json');
const [name, ...args] = argv.filter((arg) => arg !== '--json');
const command = name ? commands[name] : undefined;
if (!command) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}
process.exitCode = await withCliDatabase(loadConfig(), (db) => command(db, args));
