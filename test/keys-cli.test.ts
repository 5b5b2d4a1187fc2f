import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { childEnv } from './helpers/child-env.ts';
import { testDatabase } from './helpers/database.ts';
import { startTestService } from './helpers/service.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * `npm run keys -- ...` as a user runs it, through npm, on the test's database. Asynchronous: a
 * synchronous spawn would stop this process's event loop — and the in-process service's with it —
 * for the whole run, and the next request could then reuse a keep-alive connection the server
 * closes as soon as its overdue timers run (ECONNRESET).
 */
function keys(
  databaseUrl: string,
  ...args: string[]
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'npm',
      ['run', '--silent', 'keys', '--', ...args],
      { cwd: ROOT, env: childEnv({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }), encoding: 'utf8', timeout: 60_000 },
      (error, stdout, stderr) => {
        const status = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ status, stdout, stderr });
      },
    );
  });
}

const database = await testDatabase(t);
const service = await startTestService(t, {}, database);

t.test('create prints the key alone on the last line, once; only its hash is stored', async (t) => {
  const created = await keys(database.url, 'create', 'acme');
  t.equal(created.status, 0, created.stderr);
  const key = created.stdout.trim().split('\n').at(-1) as string;
  t.match(key, /^sk_[A-Za-z0-9_-]{43}$/);
  const res = await service.api(key).get('/payment-orders');
  t.equal(res.status, 200, 'the key works');
  const [row] = await database.rows(
    "select k.key_prefix from api_keys k join merchants m on m.id = k.merchant_id where m.name = 'acme'",
  );
  t.equal(row?.key_prefix, key.slice(0, 11));
  t.notMatch(JSON.stringify(await database.rows('select * from api_keys')), key.slice(11));

  const second = await keys(database.url, 'create', 'acme');
  t.equal(second.status, 0);
  t.not(second.stdout.trim().split('\n').at(-1), key, 'a second key for the same merchant');
  t.equal(await database.count('merchants', "name = 'acme'"), 1);
});

t.test('list shows keys without secrets; revoke turns a key off', async (t) => {
  const key = (await keys(database.url, 'create', 'globex')).stdout.trim().split('\n').at(-1) as string;
  const listed = await keys(database.url, 'list');
  t.equal(listed.status, 0);
  t.match(listed.stdout, /globex {2}sk_\S{8}\.\.\. {2}created \S+ {2}active/);
  t.notMatch(listed.stdout, key);

  const id = /^(key_\S+) {2}globex/m.exec(listed.stdout)?.[1] as string;
  t.ok(id);
  const revoked = await keys(database.url, 'revoke', id);
  t.equal(revoked.status, 0);
  t.match(revoked.stdout, /revoked/);
  t.equal((await service.api(key).get('/payment-orders')).status, 401);
  t.match((await keys(database.url, 'list')).stdout, /globex .* revoked /);
  t.equal((await keys(database.url, 'revoke', id)).status, 1, 'revoking twice says no');
});

t.test('revoke also takes the key itself', async (t) => {
  const key = (await keys(database.url, 'create', 'initech')).stdout.trim().split('\n').at(-1) as string;
  t.equal((await keys(database.url, 'revoke', key)).status, 0);
  t.equal((await service.api(key).get('/payment-orders')).status, 401);
});

t.test('bad usage explains itself', async (t) => {
  const none = await keys(database.url);
  t.equal(none.status, 2);
  t.match(none.stderr, /usage: npm run keys -- create <merchant>/);
  t.equal((await keys(database.url, 'create')).status, 2);
  t.equal((await keys(database.url, 'create', 'bad name; drop table')).status, 2);
});

t.test('--help prints the usage and exits 0 without touching the database', async (t) => {
  const help = await keys('postgres://nobody@127.0.0.1:1/none', '--help');
  t.equal(help.status, 0, help.stderr);
  t.match(help.stdout, /usage: npm run keys -- create <merchant>/);
  t.match(help.stdout, /--json/);
});

t.test('--json: create, list and revoke answer one JSON document each', async (t) => {
  const created = await keys(database.url, 'create', 'umbrella', '--json');
  t.equal(created.status, 0, created.stderr);
  const body = JSON.parse(created.stdout);
  t.match(body, { id: /^key_/, merchant: { id: /^mch_/, name: 'umbrella' }, key: /^sk_/ });
  t.equal((await service.api(body.key).get('/payment-orders')).status, 200, 'the key works');
  const listed = JSON.parse((await keys(database.url, '--json', 'list')).stdout);
  t.ok(Array.isArray(listed));
  t.match(
    listed.find((k: { id: string }) => k.id === body.id),
    { owner: 'umbrella', prefix: String, revokedAt: null },
  );
  t.notMatch(JSON.stringify(listed), body.key, 'no secret in the list');
  t.same(JSON.parse((await keys(database.url, 'revoke', body.id, '--json')).stdout), { revoked: true });
  const again = await keys(database.url, 'revoke', body.id, '--json');
  t.equal(again.status, 1);
  t.same(JSON.parse(again.stdout), { revoked: false });
});

t.test('create-operator: a key for the operator routes only; list shows it; revoke turns it off', async (t) => {
  const created = await keys(database.url, 'create-operator', 'alice');
  t.equal(created.status, 0, created.stderr);
  const key = created.stdout.trim().split('\n').at(-1) as string;
  t.match(key, /^op_[A-Za-z0-9_-]{43}$/);
  t.notMatch(JSON.stringify(await database.rows('select * from operator_keys')), key.slice(11));
  const operator = service.api(key);
  // An operator route answers (the order does not exist: 404, not 401/403).
  const missing = await operator.request('POST', `/payment-orders/po_${'0'.repeat(26)}/resolve`, {
    body: { status: 'FAILED', note: 'test' },
  });
  t.match(missing, { status: 404, body: { code: 'resource_missing' } });
  t.equal((await operator.get('/payment-orders')).status, 401, 'no merchant route takes it');
  const merchantKey = (await keys(database.url, 'create', 'hooli')).stdout.trim().split('\n').at(-1) as string;
  const asMerchant = await service.api(merchantKey).request('POST', `/payment-orders/po_${'0'.repeat(26)}/resolve`, {
    body: { status: 'FAILED', note: 'test' },
  });
  t.match(asMerchant, { status: 403, body: { code: 'operator_key_required' } }, 'and no merchant key reaches it');

  const listed = await keys(database.url, 'list');
  t.match(listed.stdout, /^opk_\S+ {2}operator:alice {2}op_\S{8}\.\.\. {2}created \S+ {2}active$/m);
  t.notMatch(listed.stdout, key);
  const id = /^(opk_\S+) {2}operator:alice/m.exec(listed.stdout)?.[1] as string;
  t.equal((await keys(database.url, 'revoke', id)).status, 0);
  const revoked = await operator.request('POST', `/payment-orders/po_${'0'.repeat(26)}/resolve`, {
    body: { status: 'FAILED', note: 'test' },
  });
  t.match(revoked, { status: 401, body: { code: 'invalid_api_key' } });
  t.equal((await keys(database.url, 'create-operator')).status, 2, 'a name is required');
});
