import t from 'tap';
import { newApiKey } from '../src/domain/api-key.ts';
import { ApiClient, startTestService, validOrder } from './helpers/service.ts';

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

t.test('a revoked key stops working at once', async (t) => {
  const carol = await service.merchant('carol');
  t.equal((await carol.api.get('/payment-orders')).status, 200);
  await service.database.pool.query('update api_keys set revoked_at = now() where merchant_id = $1', [carol.id]);
  const res = await carol.api.get('/payment-orders');
  t.equal(res.status, 401);
  t.equal(res.body.code, 'invalid_api_key');
});

t.test('only a hash of each key is stored', async (t) => {
  const rows = await service.database.rows('select key_hash, key_prefix from api_keys');
  const stored = JSON.stringify(rows.map((r) => [Buffer.from(r.key_hash).toString('hex'), r.key_prefix]));
  t.notMatch(stored, alice.key);
  t.notMatch(stored, alice.key.slice(11), 'not even the secret part');
});
