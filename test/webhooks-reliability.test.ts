import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import t from 'tap';
import { startSandbox } from '../sandbox/sandbox.ts';
import { createDb } from '../src/db/connection.ts';
import { ensureMerchant, insertApiKey } from '../src/db/merchants.repository.ts';
import { newApiKey } from '../src/domain/api-key.ts';
import { orderJson } from '../src/domain/order-json.ts';
import { newId } from '../src/lib/ids.ts';
import { testDatabase } from './helpers/database.ts';
import { startGatewayProcess, tempDataDir } from './helpers/gateway-process.ts';
import { startProcessing } from './helpers/processing.ts';
import { ApiClient } from './helpers/service.ts';
import { startSubscriber } from './helpers/subscriber.ts';
import { waitFor } from './helpers/wait.ts';

t.test('an event whose transaction commits after a later one is still delivered', async (t) => {
  const { service, api } = await startProcessing(t, { WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8' });
  const subscriber = await startSubscriber(t);
  const sub = (await api.request('POST', '/webhook-subscriptions', { body: { url: subscriber.url } })).body;
  const [merchant] = await service.database.rows('select merchant_id from webhook_subscriptions where id = $1', [
    sub.id,
  ]);

  // Transaction A writes a terminal order and its event, and stays open...
  const early = new pg.Client({ connectionString: service.database.url });
  await early.connect();
  t.teardown(() => early.end());
  const orderId = newId('po');
  const earlyEventId = newId('evt');
  await early.query('begin');
  await early.query(
    `insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key)
     values ($1, $2, 'COMPLETED', 777, 'USD', 'stripe', $1)`,
    [orderId, merchant?.merchant_id],
  );
  const now = new Date();
  const payload = orderJson({
    id: orderId,
    merchantId: merchant?.merchant_id,
    status: 'COMPLETED',
    amount: 777,
    currency: 'USD',
    provider: 'stripe',
    paymentMethod: null,
    reference: null,
    description: null,
    metadata: {},
    providerReference: 'pi_early',
    failure: null,
    nextAttemptAt: null,
    reconcilingSince: null,
    review: null,
    createdAt: now,
    updatedAt: now,
  });
  await early.query(
    `insert into outbox_events (id, merchant_id, order_id, type, payload) values ($1, $2, $3, 'payment_order.completed', $4)`,
    [earlyEventId, merchant?.merchant_id, orderId, JSON.stringify(payload)],
  );

  // ...while a later event commits and is delivered.
  const later = await api.createOrder({
    amount: 100,
    currency: 'USD',
    paymentMethod: { type: 'card', token: 'pm_card_visa' },
  });
  await waitFor(
    'the later event',
    () => subscriber.received.some((r) => JSON.parse(r.body).data.id === later.body.id) || undefined,
  );
  t.notOk(
    subscriber.received.some((r) => r.headers['webhook-id'] === earlyEventId),
    'the uncommitted one is not visible yet',
  );

  // The event log holds the later event back while A runs: a poller cannot pass it and then miss A's.
  const listed = async () =>
    (await api.get('/events?limit=100')).body.data as Array<{ id: string; data: { id: string } }>;
  const held = await listed();
  t.notOk(
    held.some((e) => e.data.id === later.body.id || e.id === earlyEventId),
    'GET /events lists neither while the earlier transaction is open',
  );

  // Now A commits, out of order: its event must not be skipped.
  await early.query('commit');
  const log = await waitFor('both events in GET /events', async () => {
    const events = await listed();
    return events.some((e) => e.id === earlyEventId) && events.some((e) => e.data.id === later.body.id)
      ? events
      : undefined;
  });
  t.ok(
    log.findIndex((e) => e.data.id === later.body.id) < log.findIndex((e) => e.id === earlyEventId),
    'in commit order, newest first: the event that committed first is listed below',
  );
  await waitFor(
    'the early event',
    () => subscriber.received.some((r) => r.headers['webhook-id'] === earlyEventId) || undefined,
  );
  const received = subscriber.received.find((r) => r.headers['webhook-id'] === earlyEventId);
  t.match(new Webhook(sub.secret).verify(received?.body ?? '', received?.headers as Record<string, string>), {
    id: earlyEventId,
    data: { id: orderId, providerReference: 'pi_early' },
  });
  t.equal(await service.database.count('webhook_deliveries', 'event_id = $1', [earlyEventId]), 1);
});

t.test("kill -9 between the subscriber's 200 and marking the delivery: delivered again, same webhook-id", async (t) => {
  const database = await testDatabase(t);
  const sandbox = await startSandbox({ port: 0, host: '127.0.0.1' });
  t.teardown(() => sandbox.stop());
  const subscriber = await startSubscriber(t);
  const env = {
    DATABASE_URL: database.url,
    STRIPE_API_URL: sandbox.url,
    MPESA_API_URL: sandbox.url,
    WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
    DEMO_MERCHANT: 'false',
    DATA_DIR: await tempDataDir(t),
  };
  const key = newApiKey();
  const db = createDb(database.pool);
  const merchant = await ensureMerchant(db, 'crash-webhooks');
  await insertApiKey(db, merchant.id, key.hash, key.prefix);

  // Marking a delivery as delivered blocks (a trigger sleeps): the worker will hold the
  // subscriber's 200 in hand, unrecorded, when it is killed.
  await database.pool.query(`create function test_hold() returns trigger language plpgsql as $$
    begin if new.status = 'delivered' then perform pg_sleep(30); end if; return new; end $$`);
  await database.pool.query(
    'create trigger test_hold before update on webhook_deliveries for each row execute function test_hold()',
  );

  const first = await startGatewayProcess(t, env);
  const api = new ApiClient(first.url, key.key);
  const sub = (await api.request('POST', '/webhook-subscriptions', { body: { url: subscriber.url } })).body;
  await api.createOrder({ amount: 100, currency: 'USD', paymentMethod: { type: 'card', token: 'pm_card_visa' } });
  await waitFor('the webhook', () => subscriber.received.length >= 1 || undefined);
  await waitFor(
    'the worker blocked on marking it',
    async () =>
      (await database.count(
        'pg_stat_activity',
        "query ilike '%update webhook_deliveries%' and wait_event = 'PgSleep'",
      )) > 0 || undefined,
  );
  first.child.kill('SIGKILL');
  await first.exited;
  // The killed worker's session may still be sleeping inside the trigger: end it, then remove the trigger.
  await database.pool.query(
    "select pg_terminate_backend(pid) from pg_stat_activity where wait_event = 'PgSleep' and datname = current_database()",
  );
  await database.pool.query('drop trigger test_hold on webhook_deliveries');
  t.equal(await database.count('webhook_deliveries', "status = 'delivered'"), 0, 'not marked');

  const second = await startGatewayProcess(t, env);
  await waitFor(
    'the delivery to be marked',
    async () => (await database.count('webhook_deliveries', "status = 'delivered'")) === 1 || undefined,
    {
      timeoutMs: 90_000,
      intervalMs: 250,
    },
  );
  t.ok(subscriber.received.length >= 2, 'sent again after the crash');
  t.equal(
    subscriber.received[0]?.headers['webhook-id'],
    subscriber.received.at(-1)?.headers['webhook-id'],
    'with the same webhook-id',
  );
  t.ok(
    new Webhook(sub.secret).verify(
      subscriber.received.at(-1)?.body ?? '',
      subscriber.received.at(-1)?.headers as Record<string, string>,
    ),
  );
  t.equal(await second.stop('SIGTERM'), 0);
});
