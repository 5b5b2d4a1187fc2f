import t, { type Test } from 'tap';
import { startTestService } from './helpers/service.ts';
import { seedAttempt, seedDelivery, seedOrderEvent } from './webhook-operations-rows.ts';

// GET /webhook-subscriptions/{id}/deliveries?status=&eventType=&limit=&startingAfter=: filtered,
// newest first, cursor-paginated like GET /payment-orders and GET /events.
const service = await startTestService(t);
const merchant = await service.merchant();
const { api } = merchant;
const pool = service.database.pool;

const sub = (await api.request('POST', '/webhook-subscriptions', { body: { url: 'https://example.com/hooks' } })).body;
const otherSub = (await api.request('POST', '/webhook-subscriptions', { body: { url: 'https://example.com/other' } }))
  .body;

type Seeded = { id: string; status: string; type: string };
// 24 deliveries: four statuses × two event types, three of each; the last six share one
// created_at (one relay statement makes them so), which the id must order.
const seeded: Seeded[] = [];
const statuses = ['pending', 'delivered', 'dead', 'cancelled'];
const types = ['payment_order.completed', 'payment_order.failed'] as const;
for (let i = 0; i < 24; i++) {
  const status = statuses[i % 4] as string;
  const type = types[Math.floor(i / 4) % 2] as (typeof types)[number];
  const ago = i < 18 ? `${100 - i} minutes` : '1 minute';
  const { eventId } = await seedOrderEvent(pool, merchant.id, { type, ago });
  seeded.push({ id: await seedDelivery(pool, eventId, sub.id, { status, ago }), status, type });
}
await pool.query(
  `update webhook_deliveries set created_at = (select max(created_at) from webhook_deliveries where subscription_id = $1)
    where subscription_id = $1 and created_at > now() - interval '2 minutes'`,
  [sub.id],
);
const first = seeded[0] as Seeded;
await seedAttempt(pool, first.id, { ago: '99 minutes', statusCode: 500 });
await seedAttempt(pool, first.id, { ago: '98 minutes', statusCode: 200 });
const { eventId: otherEvent } = await seedOrderEvent(pool, merchant.id);
await seedDelivery(pool, otherEvent, otherSub.id, { status: 'dead' });

/** Newest first: created_at desc, then id desc. */
const newestFirst = async (where = 'true', values: unknown[] = []) =>
  (
    await service.database.rows(
      `select d.id from webhook_deliveries d join outbox_events e on e.id = d.event_id
        where d.subscription_id = $1 and ${where} order by d.created_at desc, d.id desc`,
      [sub.id, ...values],
    )
  ).map((row) => row.id as string);

async function everyPage(t: Test, query: string) {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 50; pages++) {
    const res = await api.get(
      `/webhook-subscriptions/${sub.id}/deliveries?${query}${cursor ? `&startingAfter=${cursor}` : ''}`,
    );
    if (res.status !== 200) throw new Error(res.text);
    t.equal(res.body.object, 'list');
    ids.push(...res.body.data.map((d: { id: string }) => d.id));
    t.equal(res.body.nextStartingAfter, res.body.hasMore ? res.body.data.at(-1).id : null);
    if (!res.body.hasMore) return ids;
    cursor = res.body.nextStartingAfter;
  }
  throw new Error('too many pages');
}

t.test('default: the newest 10, with hasMore and the cursor', async (t) => {
  const res = await api.get(`/webhook-subscriptions/${sub.id}/deliveries`);
  t.equal(res.status, 200);
  t.equal(res.body.data.length, 10);
  t.equal(res.body.hasMore, true);
  t.same(
    res.body.data.map((d: { id: string }) => d.id),
    (await newestFirst()).slice(0, 10),
  );
  t.equal(res.body.nextStartingAfter, res.body.data[9].id);
});

t.test('pages of 7 list every delivery once, in order, ties broken by id', async (t) => {
  t.same(await everyPage(t, 'limit=7'), await newestFirst());
  t.equal((await everyPage(t, 'limit=100')).length, 24);
});

t.test('filtered by status, by event type, both, and paged', async (t) => {
  t.same(await everyPage(t, 'status=dead&limit=2'), await newestFirst("d.status = 'dead'"));
  t.same(
    await everyPage(t, 'eventType=payment_order.failed&limit=5'),
    await newestFirst("e.type = 'payment_order.failed'"),
  );
  const both = await everyPage(t, 'status=cancelled&eventType=payment_order.completed');
  t.same(both, await newestFirst("d.status = 'cancelled' and e.type = 'payment_order.completed'"));
  t.equal(both.length, 3);
  const res = await api.get(`/webhook-subscriptions/${sub.id}/deliveries?status=dead&limit=100`);
  t.ok(res.body.data.every((d: { status: string }) => d.status === 'dead'));
  const none = await api.get(`/webhook-subscriptions/${sub.id}/deliveries?eventType=webhook_subscription.disabled`);
  t.same(none.body, { object: 'list', data: [], hasMore: false, nextStartingAfter: null });
});

t.test('each delivery as before, with its event type and attempts', async (t) => {
  const all = await api.get(`/webhook-subscriptions/${sub.id}/deliveries?limit=100`);
  const delivery = all.body.data.find((d: { id: string }) => d.id === first.id);
  t.match(delivery, {
    id: first.id,
    object: 'webhook_delivery',
    eventId: /^evt_/,
    eventType: 'payment_order.completed',
    status: 'pending',
    nextAttemptAt: null,
    attempts: [
      { number: 1, statusCode: 500, error: 'HTTP 500' },
      { number: 2, statusCode: 200, error: null },
    ],
  });
});

t.test("a cursor from another endpoint's deliveries gives an empty page", async (t) => {
  const [foreign] = (await service.database.rows('select id from webhook_deliveries where subscription_id = $1', [
    otherSub.id,
  ])) as Array<{ id: string }>;
  const res = await api.get(`/webhook-subscriptions/${sub.id}/deliveries?startingAfter=${foreign?.id}`);
  t.equal(res.status, 200);
  t.same(res.body.data, []);
});

t.test('bad queries: validation_failed naming the field', async (t) => {
  const cases: Array<[string, string]> = [
    ['status=failed', 'status'],
    ['status=DEAD', 'status'],
    ['eventType=payment_order.refunded', 'eventType'],
    ['limit=0', 'limit'],
    ['limit=101', 'limit'],
    ['limit=ten', 'limit'],
    ['limit=-1', 'limit'],
    ['startingAfter=evt_1', 'startingAfter'],
    ['starting_after=whd_1', 'starting_after'],
    ['type=payment_order.failed', 'type'],
    ['status=dead&status=cancelled', 'status'],
  ];
  for (const [query, path] of cases) {
    const res = await api.get(`/webhook-subscriptions/${sub.id}/deliveries?${query}`);
    t.equal(res.status, 400, query);
    t.equal(res.body.code, 'validation_failed', query);
    t.equal(res.body.errors?.[0]?.path, path, `${query}: ${res.body.detail}`);
  }
  const other = await service.merchant();
  t.equal((await other.api.get(`/webhook-subscriptions/${sub.id}/deliveries`)).status, 404);
});
