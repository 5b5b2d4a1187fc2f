import t from 'tap';
import { newApiKey } from '../src/domain/api-key.ts';
import { ApiClient, startTestService, validOrder } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

const service = await startTestService(t);
const alice = await service.merchant('alice');
const bob = await service.merchant('bob');

t.test('missing or wrong credentials answer 401 problem+json and write nothing', async (t) => {
  const before = await service.database.count('payment_orders');
  const cases: Array<[string, Record<string, string>, string]> = [
    ['no header', {}, 'authentication_required'],
    ['empty bearer', { Authorization: 'Bearer ' }, 'authentication_required'],
    ['basic scheme', { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, 'authentication_required'],
    ['unknown key', { Authorization: `Bearer ${newApiKey().key}` }, 'invalid_api_key'],
    ['garbage key', { Authorization: 'Bearer not-a-key' }, 'invalid_api_key'],
    [
      'key with a changed character',
      { Authorization: `Bearer ${alice.key.slice(0, -1)}${alice.key.endsWith('A') ? 'B' : 'A'}` },
      'invalid_api_key',
    ],
  ];
  const anonymous = new ApiClient(service.url);
  for (const [name, headers, code] of cases) {
    for (const res of [
      await anonymous.createOrder(validOrder, crypto.randomUUID(), headers),
      await anonymous.request('GET', '/payment-orders', { headers }),
    ]) {
      t.equal(res.status, 401, name);
      t.match(res.headers.get('content-type'), /^application\/problem\+json/, name);
      t.equal(res.headers.get('www-authenticate'), 'Bearer', name);
      t.match(res.body, { status: 401, code }, name);
    }
  }
  t.equal(await service.database.count('payment_orders'), before);
});

t.test('the bearer scheme is case-insensitive', async (t) => {
  const res = await new ApiClient(service.url).request('GET', '/payment-orders', {
    headers: { Authorization: `bearer ${alice.key}` },
  });
  t.equal(res.status, 200);
});

t.test('a merchant sees only its own orders', async (t) => {
  const order = (await alice.api.createOrder(validOrder)).body;
  const asBob = await bob.api.get(`/payment-orders/${order.id}`);
  t.equal(asBob.status, 404, "another merchant's order is 404, not 403");
  t.equal(asBob.body.code, 'resource_missing');
  t.equal((await alice.api.get(`/payment-orders/${order.id}`)).status, 200);

  const bobList = await bob.api.get('/payment-orders?limit=100');
  t.notOk(
    bobList.body.data.some((o: { id: string }) => o.id === order.id),
    "not in the other's list",
  );
  const bobPage = await bob.api.get(`/payment-orders?startingAfter=${order.id}`);
  t.same(bobPage.body.data, [], 'a cursor from another merchant reveals nothing');
});

t.test('with API_KEY_CACHE_SECONDS=0 a revoked key stops working at once', async (t) => {
  const uncached = await startTestService(t, { API_KEY_CACHE_SECONDS: '0' }, service.database);
  const carol = await service.merchant('carol');
  const api = new ApiClient(uncached.url, carol.key);
  t.equal((await api.get('/payment-orders')).status, 200);
  await service.database.pool.query('update api_keys set revoked_at = now() where merchant_id = $1', [carol.id]);
  const res = await api.get('/payment-orders');
  t.equal(res.status, 401);
  t.equal(res.body.code, 'invalid_api_key');
});

t.test('a revoked key is refused within API_KEY_CACHE_SECONDS (the lookup is cached that long)', async (t) => {
  const ttlMs = 2_000;
  const cached = await startTestService(t, { API_KEY_CACHE_SECONDS: String(ttlMs / 1000) }, service.database);
  const dave = await service.merchant('dave');
  const api = new ApiClient(cached.url, dave.key);
  t.equal((await api.get('/payment-orders')).status, 200, 'looked up and cached');
  const lookedUpAt = Date.now();
  await service.database.pool.query('update api_keys set revoked_at = now() where merchant_id = $1', [dave.id]);
  const revokedAt = Date.now();
  const statuses: Array<[number, number]> = [];
  const refusedAt = await waitFor(
    'the revoked key to be refused',
    async () => {
      const res = await api.get('/payment-orders');
      statuses.push([Date.now() - revokedAt, res.status]);
      return res.status === 401 && res.body.code === 'invalid_api_key' ? Date.now() : undefined;
    },
    { timeoutMs: ttlMs + 5_000, intervalMs: 100 },
  );
  t.ok(refusedAt - lookedUpAt <= ttlMs + 1_000, `refused ${refusedAt - revokedAt} ms after the revocation`);
  // Served from the cache meanwhile (a database lookup would have refused it at once).
  t.ok(
    statuses.length > 1 && statuses[0]?.[1] === 200,
    `answers after revoking: ${JSON.stringify(statuses.slice(0, 3))}…`,
  );
  t.ok(
    statuses.every(([, status]) => status === 200 || status === 401),
    'only 200s, then 401',
  );
  // A new key is never held back by the cache: misses are not kept.
  const erin = await service.merchant('erin');
  t.equal((await new ApiClient(cached.url, erin.key).get('/payment-orders')).status, 200);
});

t.test('only a hash of each key is stored', async (t) => {
  const rows = await service.database.rows('select key_hash, key_prefix from api_keys');
  const stored = JSON.stringify(rows.map((r) => [Buffer.from(r.key_hash).toString('hex'), r.key_prefix]));
  t.notMatch(stored, alice.key);
  t.notMatch(stored, alice.key.slice(11), 'not even the secret part');
});
