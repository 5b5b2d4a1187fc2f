import t from 'tap';
import { startTestService, validOrder } from './helpers/service.ts';

const service = await startTestService(t);
const { api } = await service.merchant();

// 25 orders, created one after another so that creation order is known.
const created: string[] = [];
for (let i = 0; i < 25; i++) {
  created.push((await api.createOrder({ ...validOrder, reference: `order-${i}` })).body.id);
}
const newestFirst = [...created].reverse();
// Five of them move on, so the status filter has something to tell apart.
await service.database.pool.query("update payment_orders set status = 'PROCESSING' where id = any($1)", [
  created.slice(0, 5),
]);

t.test('pages walk every order once, newest first', async (t) => {
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await api.get(`/payment-orders?limit=10${cursor ? `&startingAfter=${cursor}` : ''}`);
    t.equal(res.status, 200);
    t.equal(res.body.object, 'list');
    seen.push(...res.body.data.map((o: { id: string }) => o.id));
    cursor = res.body.nextStartingAfter;
    t.equal(res.body.hasMore, cursor !== null);
    pages++;
  } while (cursor && pages < 10);
  t.equal(pages, 3);
  t.same(seen, newestFirst);
});

t.test('default limit is 10, maximum 100', async (t) => {
  t.equal((await api.get('/payment-orders')).body.data.length, 10);
  const all = await api.get('/payment-orders?limit=100');
  t.equal(all.body.data.length, 25);
  t.equal(all.body.hasMore, false);
  t.equal(all.body.nextStartingAfter, null);
});

t.test('status filters, also across pages', async (t) => {
  const processing = await api.get('/payment-orders?status=PROCESSING&limit=3');
  t.same(
    processing.body.data.map((o: { id: string }) => o.id),
    newestFirst.slice(20, 23),
  );
  t.ok(processing.body.data.every((o: { status: string }) => o.status === 'PROCESSING'));
  t.equal(processing.body.hasMore, true);
  const rest = await api.get(
    `/payment-orders?status=processing&limit=3&startingAfter=${processing.body.nextStartingAfter}`,
  );
  t.same(
    rest.body.data.map((o: { id: string }) => o.id),
    newestFirst.slice(23, 25),
  );
  t.equal(rest.body.hasMore, false);
  const pending = await api.get('/payment-orders?status=PENDING&limit=100');
  t.equal(pending.body.data.length, 20);
  t.equal((await api.get('/payment-orders?status=FAILED')).body.data.length, 0);
});

t.test('list items are whole orders', async (t) => {
  const [first] = (await api.get('/payment-orders?limit=1')).body.data;
  t.match(first, { id: newestFirst[0], object: 'payment_order', amount: 1050, currency: 'USD', reference: 'order-24' });
});

t.test('a cursor past the end gives an empty page', async (t) => {
  const res = await api.get(`/payment-orders?startingAfter=${created[0]}`);
  t.same(res.body.data, []);
  t.equal(res.body.hasMore, false);
});
