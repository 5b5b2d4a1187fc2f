import { sql } from 'kysely';
import { pino } from 'pino';
import { Webhook } from 'standardwebhooks';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config/config.ts';
import { findEvent } from '../src/db/outbox-events.repository.ts';
import { noteAttemptOutcomes } from '../src/db/webhook-subscriptions.repository.ts';
import { DISABLE_FAILING_WEBHOOKS_QUEUE, startFailingWebhooksCheck } from '../src/jobs/disable-failing-webhooks.job.ts';
import { eventRecord } from '../src/kafka/event-record.ts';
import { disableFailingEndpoints } from '../src/webhooks/disable-subscriptions.ts';
import { type ApiClient, startTestService } from './helpers/service.ts';
import { startSubscriber } from './helpers/subscriber.ts';
import { waitFor } from './helpers/wait.ts';
import { dbOf, noteAttempts, seedHistory, seedOrderEvent } from './webhook-operations-rows.ts';

// Automatic disabling (WEBHOOK_DISABLE_AFTER_DAYS) and the webhook_subscription.disabled event.
// The rule, with C = now - N days (src/db/webhook-subscriptions.repository.ts
// disableFailingSubscriptions): the last finished attempt at or before C failed, no attempt after
// C succeeded, and at least one attempt after C was made. Attempt times are written into the rows.
const service = await startTestService(t, { WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8', WEBHOOK_DISABLE_AFTER_DAYS: '5' });
const pool = service.database.pool;
const DAYS = 5;

async function subscribe(api: ApiClient, url: string, events?: string[]) {
  const res = await api.request('POST', '/webhook-subscriptions', { body: { url, ...(events ? { events } : {}) } });
  if (res.status !== 201) throw new Error(`subscription not created: ${res.text}`);
  return res.body as { id: string; secret: string };
}

const enabledOf = async (id: string) =>
  (await service.database.rows('select enabled from webhook_subscriptions where id = $1', [id]))[0]?.enabled;

const disabledEvents = (subscriptionId: string) =>
  service.database.rows(
    `select * from outbox_events where type = 'webhook_subscription.disabled' and subscription_id = $1`,
    [subscriptionId],
  );

// The state the check reads (failing_since, last_success_at, last_failure_at) is kept by the
// senders as outcomes are recorded, and attempts end in any order: the streak is defined by the
// attempts' start times, whatever order (or batch) their outcomes come in.
type Row = { failing_since: Date | null; last_success_at: Date | null; last_failure_at: Date | null };
const streakOf = async (id: string) =>
  (
    await service.database.rows<Row>(
      'select failing_since, last_success_at, last_failure_at from webhook_subscriptions where id = $1',
      [id],
    )
  )[0] as Row;
const startsOf = async (attemptIds: readonly string[]) =>
  (
    await service.database.rows<{ started_at: Date }>(
      'select started_at from webhook_delivery_attempts where id = any($1::bigint[]) order by array_position($1::bigint[], id)',
      [attemptIds],
    )
  ).map((r) => r.started_at);

async function failingEndpoint(merchant: { id: string; api: ApiClient }, history: Array<[string, number | null]>) {
  const sub = await subscribe(merchant.api, 'http://127.0.0.1:9/race', ['payment_order.completed']);
  await pool.query(`update webhook_subscriptions set failures_count_from = now() - interval '7 days' where id = $1`, [
    sub.id,
  ]);
  // Written, not yet recorded: each case records the outcomes in its own order.
  const attempts = await seedHistory(pool, merchant.id, sub.id, history, { note: false });
  return { id: sub.id, attempts };
}

t.test('the rule, on both sides of each boundary', async (t) => {
  const merchant = await service.merchant();
  // Payment events only: these endpoints must not receive the disabled events of the others
  // (real attempts made now would change their histories).
  const only = ['payment_order.completed'];
  const cases: Array<[name: string, attempts: Array<[string, number | null, boolean?]>, disabled: boolean]> = [
    [
      'failing since just over N days ago, failing now',
      [
        ['5 days 1 minute', 500],
        ['1 minute', 500],
      ],
      true,
    ],
    [
      'failing since just under N days ago',
      [
        ['4 days 23 hours 59 minutes', 500],
        ['1 minute', 500],
      ],
      false,
    ],
    [
      'a success since C',
      [
        ['5 days 1 minute', 500],
        ['1 hour', 200],
        ['1 minute', 500],
      ],
      false,
    ],
    [
      'the last attempt before C succeeded',
      [
        ['5 days 2 minutes', 500],
        ['5 days 1 minute', 200],
        ['1 minute', 500],
      ],
      false,
    ],
    [
      'the last attempt before C failed',
      [
        ['5 days 2 minutes', 200],
        ['5 days 1 minute', 500],
        ['1 minute', 500],
      ],
      true,
    ],
    [
      'tried just after C',
      [
        ['5 days 1 minute', 500],
        ['4 days 23 hours 59 minutes', 500],
      ],
      true,
    ],
    [
      'not tried since C',
      [
        ['5 days 2 minutes', 500],
        ['5 days 1 minute', 500],
      ],
      false,
    ],
    [
      'only an unfinished attempt since C',
      [
        ['5 days 1 minute', 500],
        ['1 minute', null, false],
      ],
      false,
    ],
    [
      'timeouts and refused connections are failures',
      [
        ['6 days', null],
        ['1 minute', null],
      ],
      true,
    ],
    [
      'a 3xx is a failure',
      [
        ['6 days', 302],
        ['1 minute', 302],
      ],
      true,
    ],
    ['never tried', [], false],
  ];
  const ids = new Map<string, string>();
  for (const [name, attempts] of cases) {
    const sub = await subscribe(merchant.api, 'http://127.0.0.1:9/hooks', only);
    // Its clock started before any of its attempts (a subscription created a week ago).
    await pool.query(`update webhook_subscriptions set failures_count_from = now() - interval '7 days' where id = $1`, [
      sub.id,
    ]);
    await seedHistory(pool, merchant.id, sub.id, attempts);
    ids.set(name, sub.id);
  }

  const disabled = await disableFailingEndpoints(service.db, DAYS);
  const expected = cases.filter(([, , off]) => off).map(([name]) => ids.get(name));
  t.same(disabled.map((s) => s.id).sort(), [...expected].sort(), 'exactly the endpoints failing for N days');
  for (const [name, , off] of cases) {
    const id = ids.get(name) as string;
    t.equal(await enabledOf(id), !off, `${name}: ${off ? 'disabled' : 'still enabled'}`);
    t.equal((await disabledEvents(id)).length, off ? 1 : 0, `${name}: ${off ? 'one event' : 'no event'}`);
  }
  const [row] = await service.database.rows('select disabled_reason from webhook_subscriptions where id = $1', [
    expected[0],
  ]);
  t.equal(row?.disabled_reason, 'every delivery attempt failed for 5 days');

  const again = await disableFailingEndpoints(service.db, DAYS);
  t.same(again, [], 'a second pass switches nothing off');
  t.equal((await disabledEvents(expected[0] as string)).length, 1, 'and writes no second event');
});

t.test('a clock restarted by turning the endpoint back on, or by a new URL', async (t) => {
  const merchant = await service.merchant();
  const history: Array<[string, number | null]> = [
    ['6 days', 500],
    ['1 minute', 500],
  ];
  const reenabled = await subscribe(merchant.api, 'http://127.0.0.1:9/a', ['payment_order.completed']);
  const moved = await subscribe(merchant.api, 'http://127.0.0.1:9/b', ['payment_order.completed']);
  const untouched = await subscribe(merchant.api, 'http://127.0.0.1:9/c', ['payment_order.completed']);
  for (const sub of [reenabled, moved, untouched]) {
    await pool.query(`update webhook_subscriptions set failures_count_from = now() - interval '7 days' where id = $1`, [
      sub.id,
    ]);
    await seedHistory(pool, merchant.id, sub.id, history);
  }
  const patch = (id: string, body: object) =>
    merchant.api.request('PATCH', `/webhook-subscriptions/${id}`, { body }).then((res) => res.status);
  t.equal(await patch(reenabled.id, { enabled: false }), 200);
  t.equal(await patch(reenabled.id, { enabled: true }), 200);
  t.equal(await patch(moved.id, { url: 'http://127.0.0.1:9/b2' }), 200);
  t.equal(await patch(untouched.id, { events: ['payment_order.completed', 'payment_order.failed'] }), 200);
  for (const sub of [reenabled, moved]) {
    t.same(
      await streakOf(sub.id),
      { failing_since: null, last_success_at: null, last_failure_at: null },
      'nothing held against it any more',
    );
  }
  t.not((await streakOf(untouched.id)).failing_since, null, 'still failing since 6 days ago');

  const disabled = await disableFailingEndpoints(service.db, DAYS);
  t.same(
    disabled.map((s) => s.id),
    [untouched.id],
    'turned back on or moved: judged only on attempts from then on; other changes keep the clock',
  );
});

t.test('several checks at once switch an endpoint off once', async (t) => {
  const merchant = await service.merchant();
  const sub = await subscribe(merchant.api, 'http://127.0.0.1:9/x', ['payment_order.completed']);
  await pool.query(`update webhook_subscriptions set failures_count_from = now() - interval '7 days' where id = $1`, [
    sub.id,
  ]);
  await seedHistory(pool, merchant.id, sub.id, [
    ['6 days', 500],
    ['1 minute', 500],
  ]);
  const passes = await Promise.all([1, 2, 3].map(() => disableFailingEndpoints(service.db, DAYS)));
  t.same(
    passes.flat().map((s) => s.id),
    [sub.id],
  );
  t.equal((await disabledEvents(sub.id)).length, 1);
});

t.test('outcomes recorded out of start order: the streak follows the start times', async (t) => {
  const merchant = await service.merchant();
  // [history by start time, the batches recording it (indexes into the history), disabled, the
  // attempt whose start failing_since is (or null)]
  const cases: Array<[string, Array<[string, number | null]>, number[][], boolean, number | null]> = [
    [
      'a failure recorded after a 2xx that started later is no streak',
      [
        ['6 days', 500],
        ['5 days 2 minutes', 200],
        ['1 minute', 500],
      ],
      [[1], [0], [2]],
      false,
      2,
    ],
    [
      'a 2xx recorded after a failure that started later does not end its streak',
      [
        ['5 days 2 minutes', 200],
        ['5 days 1 minute', 500],
        ['1 minute', 500],
      ],
      [[1], [0], [2]],
      true,
      1,
    ],
    [
      'a 2xx ending a streak hands it to the failure started after it and recorded before it',
      [
        ['6 days', 500],
        ['5 days 2 minutes', 200],
        ['5 days 1 minute', 500],
        ['1 minute', 500],
      ],
      [[0], [2], [1], [3]],
      true,
      2,
    ],
    [
      'one batch: its 2xx ends the streak, its later failures begin the next',
      [
        ['6 days', 500],
        ['5 days 2 minutes', 200],
        ['5 days 1 minute', 500],
        ['1 minute', 500],
      ],
      [[0], [3, 1, 2]],
      true,
      2,
    ],
    [
      'a failure started before the clock (in flight across a re-enable) is not counted',
      [
        ['8 days', 500],
        ['1 minute', 500],
      ],
      [[0, 1]],
      false,
      1,
    ],
  ];
  const ids = new Map<string, { id: string; attempts: string[] }>();
  for (const [name, history, batches] of cases) {
    const endpoint = await failingEndpoint(merchant, history);
    for (const batch of batches)
      await noteAttempts(
        pool,
        batch.map((i) => endpoint.attempts[i] as string),
      );
    ids.set(name, endpoint);
  }
  const disabled = new Set((await disableFailingEndpoints(service.db, DAYS)).map((s) => s.id));
  for (const [name, , , off, since] of cases) {
    const endpoint = ids.get(name) as { id: string; attempts: string[] };
    t.equal(disabled.has(endpoint.id), off, `${name}: ${off ? 'disabled' : 'still enabled'}`);
    const [expected] = since === null ? [null] : await startsOf([endpoint.attempts[since] as string]);
    t.same((await streakOf(endpoint.id)).failing_since, expected, `${name}: failing_since`);
  }
});

t.test('in every recording order, the streak never begins before the first failure after the last 2xx', async (t) => {
  const merchant = await service.merchant();
  // By start time: F S F F. The exact streak began at the third (index 2); every order of the
  // four outcomes, each alone, must leave failing_since there or later (a later failure: rule S
  // then knows only the latest one), never earlier, never null.
  const history: Array<[string, number | null]> = [
    ['6 days', 500],
    ['5 days 2 minutes', 200],
    ['5 days 1 minute', 500],
    ['1 minute', 500],
  ];
  const permutations = (items: number[]): number[][] =>
    items.length <= 1
      ? [items]
      : items.flatMap((item, i) => permutations(items.filter((_, j) => j !== i)).map((rest) => [item, ...rest]));
  for (const order of permutations([0, 1, 2, 3])) {
    const endpoint = await failingEndpoint(merchant, history);
    for (const i of order) await noteAttempts(pool, [endpoint.attempts[i] as string]);
    const starts = await startsOf(endpoint.attempts);
    const row = await streakOf(endpoint.id);
    const since = row.failing_since?.getTime();
    t.ok(
      since === starts[2]?.getTime() || since === starts[3]?.getTime(),
      `recorded in the order ${order.join(',')}: failing_since is a failure after the 2xx`,
    );
    t.same([row.last_success_at, row.last_failure_at], [starts[1], starts[3]], 'the latest 2xx and failure');
  }
});

t.test('a 2xx and a failure recorded at once in two transactions: the second waits for the first', async (t) => {
  const merchant = await service.merchant();
  const db = dbOf(pool);
  // Each pair: the first holds its transaction open after noting its outcome; the second must wait
  // for its lock (it would otherwise read the state the first has not committed), then applies its
  // rule to what the first committed. Either way round, the 2xx started last: no streak.
  for (const [name, first, second] of [
    ['the failure first', 0, 1],
    ['the 2xx first', 1, 0],
  ] as const) {
    const endpoint = await failingEndpoint(merchant, [
      ['6 days', 500],
      ['5 days 2 minutes', 200],
    ]);
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let noted = () => {};
    const firstNoted = new Promise<void>((resolve) => (noted = resolve));
    const firstTx = db.transaction().execute(async (trx) => {
      await noteAttemptOutcomes(trx, [endpoint.attempts[first] as string]);
      noted();
      await held;
    });
    await firstNoted;
    let pid: number | undefined;
    const secondTx = db.transaction().execute(async (trx) => {
      pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]?.pid;
      await noteAttemptOutcomes(trx, [endpoint.attempts[second] as string]);
    });
    await waitFor(`${name}: the second transaction waiting for the row lock`, async () => {
      if (pid === undefined) return false;
      const [row] = await service.database.rows('select wait_event_type from pg_stat_activity where pid = $1', [pid]);
      return row?.wait_event_type === 'Lock';
    });
    release();
    await Promise.all([firstTx, secondTx]);
    const starts = await startsOf(endpoint.attempts);
    t.same(
      await streakOf(endpoint.id),
      { failing_since: null, last_success_at: starts[1], last_failure_at: starts[0] },
      `${name}: the 2xx started after the failure, so nothing is failing`,
    );
  }
});

t.test("the sender keeps the streak: a failure starts it, the retry's 2xx ends it", async (t) => {
  const merchant = await service.merchant();
  const subscriber = await startSubscriber(t, 200);
  subscriber.script.push(500);
  const sub = await subscribe(merchant.api, subscriber.url, ['payment_order.completed']);
  await seedOrderEvent(pool, merchant.id, { relayed: false });
  // The first retry is immediate (the default schedule): 500, then 200.
  await waitFor(
    'the delivery delivered',
    async () =>
      (await service.database.count('webhook_deliveries', "subscription_id = $1 and status = 'delivered'", [
        sub.id,
      ])) === 1,
  );
  const attempts = await service.database.rows<{ started_at: Date; status_code: number }>(
    `select a.started_at, a.status_code from webhook_delivery_attempts a
       join webhook_deliveries d on d.id = a.delivery_id where d.subscription_id = $1 order by a.attempt_number`,
    [sub.id],
  );
  t.same(
    attempts.map((a) => a.status_code),
    [500, 200],
  );
  t.same(await streakOf(sub.id), {
    failing_since: null,
    last_success_at: attempts[1]?.started_at,
    last_failure_at: attempts[0]?.started_at,
  });

  // Failing from now on: the first failure's start is the streak's.
  subscriber.state.fallback = 500;
  await seedOrderEvent(pool, merchant.id, { relayed: false });
  const [first] = await waitFor('a failed attempt recorded', async () => {
    const rows = await service.database.rows<{ started_at: Date }>(
      `select a.started_at from webhook_delivery_attempts a join webhook_deliveries d on d.id = a.delivery_id
        where d.subscription_id = $1 and a.status_code = 500 and a.ended_at is not null
          and a.started_at > $2 order by a.started_at`,
      [sub.id, attempts[1]?.started_at],
    );
    return rows.length > 0 && rows;
  });
  await waitFor('failing_since', async () => (await streakOf(sub.id)).failing_since !== null);
  t.same((await streakOf(sub.id)).failing_since, first?.started_at);
});

t.test('the scheduled check: disabled, and the event goes to the other endpoints that want it', async (t) => {
  const schedules = await service.boss.getSchedules(DISABLE_FAILING_WEBHOOKS_QUEUE);
  t.match(schedules, [{ name: DISABLE_FAILING_WEBHOOKS_QUEUE, cron: '23 * * * *', timezone: 'UTC' }], 'hourly');

  const merchant = await service.merchant();
  const failing = await startSubscriber(t);
  const listening = await startSubscriber(t);
  const paymentsOnly = await startSubscriber(t);
  const off = await startSubscriber(t);
  const subs = {
    failing: await subscribe(merchant.api, failing.url),
    listening: await subscribe(merchant.api, listening.url, ['webhook_subscription.disabled']),
    paymentsOnly: await subscribe(merchant.api, paymentsOnly.url, ['payment_order.completed']),
    off: await subscribe(merchant.api, off.url, ['webhook_subscription.disabled']),
  };
  await merchant.api.request('PATCH', `/webhook-subscriptions/${subs.off.id}`, { body: { enabled: false } });
  const other = await service.merchant();
  const otherMerchant = await startSubscriber(t);
  await subscribe(other.api, otherMerchant.url, ['webhook_subscription.disabled']);
  await pool.query(`update webhook_subscriptions set failures_count_from = now() - interval '7 days' where id = $1`, [
    subs.failing.id,
  ]);
  await seedHistory(pool, merchant.id, subs.failing.id, [
    ['6 days', 503],
    ['2 hours', 503],
  ]);

  // What the schedule sends every hour, sent now: whichever instance's worker takes it runs the check.
  await service.boss.send(DISABLE_FAILING_WEBHOOKS_QUEUE, {});
  const received = await waitFor('the disabled event at the listening endpoint', () => listening.received[0]);
  t.equal(await enabledOf(subs.failing.id), false);
  const body = new Webhook(subs.listening.secret).verify(received.body, received.headers as Record<string, string>);
  t.match(body, {
    id: /^evt_/,
    type: 'webhook_subscription.disabled',
    data: {
      id: subs.failing.id,
      object: 'webhook_subscription',
      url: failing.url,
      enabled: false,
      disabledReason: 'every delivery attempt failed for 5 days',
    },
  });
  t.notOk(received.body.includes('whsec_'), 'the secret is not in the event');
  t.notOk('secret' in (body as { data: object }).data);

  // The event's relay pass is over once its row is marked: then nothing else was sent.
  const eventId = (body as { id: string }).id;
  await waitFor('the event relayed', async () => (await findEvent(service.db, eventId)) !== null);
  await waitFor(
    'relayed_at',
    async () => (await service.database.count('outbox_events', 'id = $1 and relayed_at is not null', [eventId])) === 1,
  );
  t.same(
    (await service.database.rows('select subscription_id from webhook_deliveries where event_id = $1', [eventId])).map(
      (r) => r.subscription_id,
    ),
    [subs.listening.id],
    'one delivery: not to itself, not to endpoints without the type or off, not to another merchant',
  );
  t.equal(failing.received.length, 0);
  t.equal(paymentsOnly.received.length + off.received.length + otherMerchant.received.length, 0);

  // The event log lists it; another merchant does not see it.
  const log = await merchant.api.get('/events?type=webhook_subscription.disabled');
  t.equal(log.status, 200);
  t.match(log.body.data, [
    { id: eventId, object: 'event', type: 'webhook_subscription.disabled', data: { id: subs.failing.id } },
  ]);
  t.equal((await merchant.api.get(`/events/${eventId}`)).body.data.enabled, false);
  t.equal((await other.api.get(`/events/${eventId}`)).status, 404);

  // Kafka: same topic, keyed by the subscription (there is no order), the webhook body as value.
  const event = await findEvent(service.db, eventId);
  const [row] = await service.database.rows('select order_id, subscription_id from outbox_events where id = $1', [
    eventId,
  ]);
  t.same(row, { order_id: null, subscription_id: subs.failing.id });
  const record = eventRecord(event as NonNullable<typeof event>, 'payment-orders.events');
  t.equal(record.key, subs.failing.id);
  t.same(record.headers, { 'event-id': eventId, 'event-type': 'webhook_subscription.disabled' });
  t.same(JSON.parse(record.value), JSON.parse(received.body));

  // Redelivered on demand: again to the others, never to the subject, even once it is back on.
  await merchant.api.request('PATCH', `/webhook-subscriptions/${subs.failing.id}`, {
    body: { enabled: true, events: ['webhook_subscription.disabled'] },
  });
  const redelivered = await merchant.api.request('POST', `/events/${eventId}/redeliver`);
  t.equal(redelivered.status, 202);
  const [listeningDelivery] = await service.database.rows(
    'select id from webhook_deliveries where event_id = $1 and subscription_id = $2',
    [eventId, subs.listening.id],
  );
  t.same(
    redelivered.body.data.map((d: { id: string }) => d.id),
    [listeningDelivery?.id],
  );
  await waitFor('the redelivery', () => listening.received.length >= 2 || undefined);
  t.equal(failing.received.length, 0);
});

t.test('the relay never sends a subscription its own disabling, even once it is back on', async (t) => {
  const merchant = await service.merchant();
  const subject = await startSubscriber(t);
  const listening = await startSubscriber(t);
  const subjectSub = await subscribe(merchant.api, subject.url, ['webhook_subscription.disabled']);
  const listeningSub = await subscribe(merchant.api, listening.url, ['webhook_subscription.disabled']);
  // Written by a disabling whose endpoint was turned back on before the relay got to the event.
  const eventId = `evt_${'7'.repeat(26)}`;
  await pool.query(
    `insert into outbox_events (id, merchant_id, subscription_id, type, payload)
     values ($1, $2, $3, 'webhook_subscription.disabled', $4)`,
    [eventId, merchant.id, subjectSub.id, JSON.stringify({ id: subjectSub.id, object: 'webhook_subscription' })],
  );
  await waitFor('the event at the other endpoint', () => listening.received[0]);
  t.same(
    (await service.database.rows('select subscription_id from webhook_deliveries where event_id = $1', [eventId])).map(
      (r) => r.subscription_id,
    ),
    [listeningSub.id],
  );
  t.equal(subject.received.length, 0);
  // The outbox refuses an event without its subject, or with the wrong one.
  await t.rejects(
    pool.query(
      `insert into outbox_events (id, merchant_id, type, payload) values ('evt_x', $1, 'webhook_subscription.disabled', '{}')`,
      [merchant.id],
    ),
    /outbox_events_subject_check/,
  );
  await t.rejects(
    pool.query(
      `insert into outbox_events (id, merchant_id, subscription_id, type, payload)
       values ('evt_y', $1, $2, 'payment_order.completed', '{}')`,
      [merchant.id, subjectSub.id],
    ),
    /outbox_events_subject_check/,
  );
});

t.test('a 410 switches the endpoint off and says so, once', async (t) => {
  const merchant = await service.merchant();
  const gone = await startSubscriber(t, 410);
  const listening = await startSubscriber(t);
  const goneSub = await subscribe(merchant.api, gone.url, ['payment_order.completed']);
  const listeningSub = await subscribe(merchant.api, listening.url, ['webhook_subscription.disabled']);
  // Two events in one relay pass: two deliveries to the gone endpoint, both answered 410.
  await seedOrderEvent(pool, merchant.id, { relayed: false });
  await seedOrderEvent(pool, merchant.id, { relayed: false });
  const received = await waitFor('the disabled event', () => listening.received[0]);
  const body = new Webhook(listeningSub.secret).verify(received.body, received.headers as Record<string, string>);
  t.match(body, {
    type: 'webhook_subscription.disabled',
    data: { id: goneSub.id, enabled: false, disabledReason: 'the endpoint answered 410 Gone' },
  });
  await waitFor(
    'both deliveries settled',
    async () =>
      (await service.database.count('webhook_deliveries', "subscription_id = $1 and status = 'pending'", [
        goneSub.id,
      ])) === 0,
  );
  t.equal((await disabledEvents(goneSub.id)).length, 1, 'one event, however many 410s');
});

t.test('WEBHOOK_DISABLE_AFTER_DAYS: 5 by default, 0 = never, validated', async (t) => {
  const base = { DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db' };
  t.equal(loadConfig(base).webhooks.disableAfterDays, 5);
  t.equal(loadConfig({ ...base, WEBHOOK_DISABLE_AFTER_DAYS: '0' }).webhooks.disableAfterDays, 0);
  t.equal(loadConfig({ ...base, WEBHOOK_DISABLE_AFTER_DAYS: '30' }).webhooks.disableAfterDays, 30);
  for (const bad of ['-1', '1.5', 'five', '366']) {
    t.throws(() => loadConfig({ ...base, WEBHOOK_DISABLE_AFTER_DAYS: bad }), ConfigError, bad);
  }
  t.match(
    (() => {
      try {
        loadConfig({ ...base, WEBHOOK_DISABLE_AFTER_DAYS: 'five' });
      } catch (error) {
        return (error as Error).message;
      }
    })(),
    /WEBHOOK_DISABLE_AFTER_DAYS/,
  );

  // Turned off: the schedule is removed, so that no instance keeps sending jobs for it.
  await startFailingWebhooksCheck(service.boss, service.db, 0, pino({ level: 'silent' }));
  t.same(await service.boss.getSchedules(DISABLE_FAILING_WEBHOOKS_QUEUE), []);
});
