import { Webhook } from 'standardwebhooks';
import t from 'tap';
import { newId } from '../src/lib/ids.ts';
import { REPLAY_PAGE_SIZE } from '../src/webhooks/replay.ts';
import { type ApiClient, startTestService } from './helpers/service.ts';
import { startSubscriber } from './helpers/subscriber.ts';
import { waitFor } from './helpers/wait.ts';
import { seedDelivery, seedOrderEvent } from './webhook-operations-rows.ts';

// POST /webhook-subscriptions/{id}/replay: an endpoint's dead and cancelled deliveries of events
// created since a time go back to pending, each with its next attempt's job, in one transaction.
const service = await startTestService(t, {
  WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
  // One attempt per delivery: a replayed delivery that fails is dead again at once.
  WEBHOOK_RETRY_SCHEDULE_SECONDS: '0',
});
const pool = service.database.pool;

async function subscribe(api: ApiClient, url: string) {
  const res = await api.request('POST', '/webhook-subscriptions', { body: { url } });
  if (res.status !== 201) throw new Error(`subscription not created: ${res.text}`);
  return res.body as { id: string; secret: string };
}

const iso = async (ago: string) =>
  (await service.database.rows<{ at: Date }>('select now() - $1::interval as at', [ago]))[0]?.at.toISOString();

const statusOf = async (id: string) =>
  (await service.database.rows('select status from webhook_deliveries where id = $1', [id]))[0]?.status;

t.test('dead and cancelled deliveries since a time are sent again, oldest first', async (t) => {
  const merchant = await service.merchant();
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(merchant.api, subscriber.url);
  const other = await subscribe(merchant.api, subscriber.url);
  const delivery = async (ago: string, status: string, attemptCount: number, subscriptionId = sub.id) => {
    const event = await seedOrderEvent(pool, merchant.id, { ago });
    return { ...event, id: await seedDelivery(pool, event.eventId, subscriptionId, { status, attemptCount, ago }) };
  };
  const tooOld = await delivery('3 days', 'dead', 10);
  const cancelled = await delivery('1 day', 'cancelled', 0);
  const dead = await delivery('2 hours', 'dead', 10);
  const delivered = await delivery('1 hour', 'delivered', 1);
  const pending = await delivery('30 minutes', 'pending', 3);
  const otherEndpoint = await delivery('1 hour', 'dead', 10, other.id);

  const since = await iso('2 days');
  const res = await merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, { body: { since } });
  t.equal(res.status, 202);
  t.same(res.body, {
    object: 'list',
    data: [
      { id: cancelled.id, object: 'webhook_delivery', eventId: cancelled.eventId, status: 'pending' },
      { id: dead.id, object: 'webhook_delivery', eventId: dead.eventId, status: 'pending' },
    ],
    count: 2,
    limit: REPLAY_PAGE_SIZE,
    hasMore: false,
    nextStartingAfter: null,
  });

  // Each is sent, signed, with its event's id; each is recorded with the next attempt number.
  await waitFor('both replayed webhooks', () => subscriber.received.length >= 2 || undefined);
  const ids = subscriber.received.map((r) => {
    const body = new Webhook(sub.secret).verify(r.body, r.headers as Record<string, string>) as { id: string };
    t.equal(r.headers['webhook-id'], body.id);
    return body.id;
  });
  t.same(ids.sort(), [cancelled.eventId, dead.eventId].sort());
  await waitFor(
    'both recorded',
    async () => (await statusOf(dead.id)) === 'delivered' && (await statusOf(cancelled.id)) === 'delivered',
  );
  const rows = await service.database.rows(
    'select id, attempt_count from webhook_deliveries where id = any($1) order by attempt_count',
    [[cancelled.id, dead.id]],
  );
  t.same(
    rows.map((r) => [r.id, r.attempt_count]),
    [
      [cancelled.id, 1],
      [dead.id, 11],
    ],
    'attempt numbers go on from the last one made',
  );
  t.equal(await statusOf(tooOld.id), 'dead', 'an event before since is left');
  t.equal(await statusOf(delivered.id), 'delivered');
  t.equal(await statusOf(pending.id), 'pending', 'a delivery still on its retry schedule is left to it');
  t.equal(await statusOf(otherEndpoint.id), 'dead', "another endpoint's deliveries are left");
  t.equal(subscriber.received.length, 2, 'nothing else was sent');

  // until is exclusive, since inclusive.
  const old = await merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, {
    body: { since: await iso('4 days'), until: await iso('2 days') },
  });
  t.same(
    old.body.data.map((d: { id: string }) => d.id),
    [tooOld.id],
  );
});

t.test('more than a page: nextStartingAfter takes the rest, not what failed again', async (t) => {
  const merchant = await service.merchant();
  const down = await startSubscriber(t, 500);
  const sub = await subscribe(merchant.api, down.url);
  const total = REPLAY_PAGE_SIZE + 3;
  // One statement each for the orders, events and deliveries: an event a millisecond apart.
  await pool.query(
    `with orders as (
       insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key)
       select 'po_replay_' || $2 || '_' || n, $1, 'FAILED', 100, 'USD', 'stripe', 'replay-' || $2 || '-' || n
         from generate_series(1, $3::int) n returning id),
     events as (
       insert into outbox_events (id, merchant_id, order_id, type, payload, created_at, relayed_at)
       select 'evt_replay_' || $2 || '_' || lpad(n::text, 4, '0'), $1, 'po_replay_' || $2 || '_' || n,
              'payment_order.failed', '{}', now() - interval '1 hour' + n * interval '1 millisecond', now()
         from generate_series(1, $3::int) n returning id)
     insert into webhook_deliveries (id, event_id, event_type, subscription_id, status, attempt_count)
     select 'whd_' || lpad(n::text, 26, '0'), 'evt_replay_' || $2 || '_' || lpad(n::text, 4, '0'), 'payment_order.failed', $4, 'dead', 1
       from generate_series(1, $3::int) n`,
    [merchant.id, process.pid, total, sub.id],
  );
  const since = await iso('2 hours');
  const started = performance.now();
  const first = await merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, { body: { since } });
  t.comment(`one page of ${REPLAY_PAGE_SIZE} reopened and enqueued in ${Math.round(performance.now() - started)} ms`);
  t.equal(first.status, 202);
  t.equal(first.body.count, REPLAY_PAGE_SIZE);
  t.equal(first.body.hasMore, true);
  t.equal(first.body.nextStartingAfter, first.body.data.at(-1).id);
  t.equal(first.body.data[0].id, `whd_${'1'.padStart(26, '0')}`, 'oldest event first');

  // The endpoint is still down: the replayed deliveries fail and are dead again.
  await waitFor(
    'the first page dead again',
    async () =>
      (await service.database.count(
        'webhook_deliveries',
        "subscription_id = $1 and status = 'dead' and attempt_count = 2",
        [sub.id],
      )) === REPLAY_PAGE_SIZE,
    { timeoutMs: 60_000 },
  );
  const second = await merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, {
    body: { since, startingAfter: first.body.nextStartingAfter },
  });
  t.equal(second.status, 202);
  t.same(
    second.body.data.map((d: { id: string }) => d.id),
    [REPLAY_PAGE_SIZE + 1, REPLAY_PAGE_SIZE + 2, REPLAY_PAGE_SIZE + 3].map((n) => `whd_${String(n).padStart(26, '0')}`),
    'the rest, and only the rest',
  );
  t.match(second.body, { count: 3, hasMore: false, nextStartingAfter: null });
});

t.test('two replays at once take each delivery once', async (t) => {
  const merchant = await service.merchant();
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(merchant.api, subscriber.url);
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) {
    const event = await seedOrderEvent(pool, merchant.id, { ago: '1 hour' });
    ids.push(await seedDelivery(pool, event.eventId, sub.id, { status: 'dead', attemptCount: 10 }));
  }
  const since = await iso('2 hours');
  const answers = await Promise.all(
    [1, 2].map(() => merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, { body: { since } })),
  );
  const taken = answers.flatMap((a) => a.body.data.map((d: { id: string }) => d.id));
  t.same([...taken].sort(), [...ids].sort(), 'every delivery once between them');
  const jobs = await service.database.rows(
    `select data->>'deliveryId' as id from pgboss.job where name = 'webhooks.deliver' and data->>'deliveryId' = any($1)`,
    [ids],
  );
  t.equal(jobs.length, ids.length, 'one job each');
  await waitFor('all delivered', async () =>
    (await service.database.count('webhook_deliveries', "subscription_id = $1 and status = 'delivered'", [sub.id])) ===
    20
      ? true
      : undefined,
  );
});

t.test('refused: bad bodies, a disabled endpoint, another merchant', async (t) => {
  const merchant = await service.merchant();
  const sub = await subscribe(merchant.api, 'http://127.0.0.1:9/hooks');
  const since = await iso('1 day');
  const cases: Array<[string, unknown, string]> = [
    ['no since', {}, 'since'],
    ['since not a date', { since: 'yesterday' }, 'since'],
    ['since a date without a time', { since: '2026-12-01' }, 'since'],
    ['since without a time zone', { since: '2026-12-01T00:00:00' }, 'since'],
    ['since not a string', { since: 1764547200000 }, 'since'],
    ['until before since', { since, until: await iso('2 days') }, 'until'],
    ['until equal to since', { since, until: since }, 'until'],
    ['startingAfter not a delivery id', { since, startingAfter: 'evt_1' }, 'startingAfter'],
    ['an unknown field', { since, status: 'dead' }, 'status'],
    ['not an object', [since], ''],
  ];
  for (const [name, body, path] of cases) {
    const res = await merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, { body });
    t.equal(res.status, 400, name);
    t.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8', name);
    t.equal(res.body.code, 'validation_failed', name);
    t.equal(res.body.errors?.[0]?.path, path, `${name}: ${res.body.detail}`);
  }
  const offsets = await merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, {
    body: { since: '2026-12-01T03:00:00.123+03:00' },
  });
  t.equal(offsets.status, 202, 'an offset other than Z, with milliseconds');
  const noJson = await merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, { raw: 'since=x' });
  t.equal(noJson.status, 415);

  await merchant.api.request('PATCH', `/webhook-subscriptions/${sub.id}`, { body: { enabled: false } });
  const disabled = await merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, { body: { since } });
  t.equal(disabled.status, 409);
  t.equal(disabled.body.code, 'subscription_disabled');

  const other = await service.merchant();
  const foreign = await other.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, { body: { since } });
  t.equal(foreign.status, 404);
  t.equal(foreign.body.code, 'resource_missing');
  const unknown = await merchant.api.request('POST', `/webhook-subscriptions/${newId('whs')}/replay`, {
    body: { since },
  });
  t.equal(unknown.status, 404);
});

t.test('events the endpoint missed while it was off are recovered, once', async (t) => {
  // The relay gives a switched-off endpoint no delivery; replaying the outage must send those
  // events, not only the deliveries that were cut short.
  const merchant = await service.merchant();
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(merchant.api, subscriber.url);
  const sibling = await subscribe(merchant.api, 'http://127.0.0.1:9/sibling');
  await merchant.api.request('PATCH', `/webhook-subscriptions/${sub.id}`, { body: { enabled: false } });
  // While it is off: two events relayed (the sibling got them); then, on again, one of a type it
  // no longer wants.
  const missed = [await seedOrderEvent(pool, merchant.id), await seedOrderEvent(pool, merchant.id)];
  for (const event of missed)
    await seedDelivery(pool, event.eventId, sibling.id, { status: 'delivered', attemptCount: 1 });
  await merchant.api.request('PATCH', `/webhook-subscriptions/${sub.id}`, {
    body: { enabled: true, events: ['payment_order.completed'] },
  });
  const unwanted = await seedOrderEvent(pool, merchant.id, { type: 'payment_order.failed' });

  const since = await iso('1 hour');
  const res = await merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, { body: { since } });
  t.equal(res.status, 202);
  t.same(
    res.body.data.map((d: { eventId: string }) => d.eventId),
    missed.map((e) => e.eventId),
    'the two events it missed, oldest first; not the unwanted type',
  );
  const received = await waitFor('both missed events at the endpoint', async () => {
    const ids = subscriber.received.map((r) => r.headers['webhook-id']);
    return missed.every((e) => ids.includes(e.eventId)) ? ids : undefined;
  });
  for (const r of subscriber.received) {
    t.ok(new Webhook(sub.secret).verify(r.body, r.headers as Record<string, string>), 'signed with its secret');
  }
  t.notOk(received.includes(unwanted.eventId), 'an event of a type it does not want is not sent');

  // A second replay of the same window finds nothing new to write: each missed event has one delivery.
  await waitFor('the missed deliveries delivered', async () => {
    const rows = await service.database.rows(
      "select 1 from webhook_deliveries where subscription_id = $1 and status = 'delivered'",
      [sub.id],
    );
    return rows.length === 2 || undefined;
  });
  const again = await merchant.api.request('POST', `/webhook-subscriptions/${sub.id}/replay`, { body: { since } });
  t.same(again.body.data, [], 'nothing to replay the second time');
  const rows = await service.database.rows<{ event_id: string; n: number }>(
    'select event_id, count(*)::int as n from webhook_deliveries where subscription_id = $1 group by event_id',
    [sub.id],
  );
  t.same(
    rows.map((r) => r.n),
    rows.map(() => 1),
    'one delivery per event and endpoint',
  );
  t.equal(rows.length, 2);
});
