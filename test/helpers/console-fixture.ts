// The state the operator console is tested on (test/operator-console.test.ts, test/console.test.ts):
// orders in every status, among them a stuck one, reconciling ones and one under review; provider
// calls with 429s and errors; a failing, a disabled and a healthy webhook subscription; events not
// yet relayed and deliveries pending, due, dead and delivered. Orders and subscriptions go through
// the real API; what only processing and delivery would write (statuses, attempts, reviews,
// events, deliveries) is written in SQL, as those steps write it.
import { newId } from '../../src/lib/ids.ts';
import type { TestService } from './service.ts';
import { validOrder } from './service.ts';

/** Env for a service the fixture can hold still: no workers, no relay or senders, no automatic disabling. */
export const CONSOLE_TEST_ENV = {
  WORKER_CONCURRENCY: '0',
  WEBHOOK_CONCURRENCY: '0',
  WEBHOOK_DISABLE_AFTER_DAYS: '0',
  WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
} as const;

export type ConsoleFixture = Awaited<ReturnType<typeof arrangeConsoleState>>;

const mpesaOrder = {
  amount: 10_000,
  currency: 'KES',
  paymentMethod: { type: 'mpesa', phone: '254708374149' },
} as const;

export async function arrangeConsoleState(service: TestService) {
  const sql = service.database.rows;
  // Markup in a name the page shows: it must appear as text, never as elements.
  const acme = await service.merchant(`Acme <b id="injected">&</b> "shop" ${Date.now()}`);
  const kenya = await service.merchant();

  const subscribe = async (api: typeof acme.api, path: string) => {
    const created = await api.request('POST', '/webhook-subscriptions', {
      body: { url: `http://127.0.0.1:9/${path}` },
    });
    if (created.status !== 201) throw new Error(`subscription: ${created.status} ${created.text}`);
    return created.body.id as string;
  };
  const failingSubscription = await subscribe(acme.api, 'failing');
  const healthySubscription = await subscribe(acme.api, 'healthy');
  const disabledSubscription = await subscribe(kenya.api, 'gone');
  await sql(
    `update webhook_subscriptions set enabled = false, disabled_reason = 'the endpoint answered 410 Gone', updated_at = now()
     where id = $1`,
    [disabledSubscription],
  );

  const create = async (api: typeof acme.api, body: object) => {
    const created = await api.createOrder(body);
    if (created.status !== 201) throw new Error(`order: ${created.status} ${created.text}`);
    return created.body.id as string;
  };
  const order = {
    pendingFresh: await create(acme.api, validOrder),
    pendingStuck: await create(acme.api, { ...validOrder, amount: 2_500 }),
    underReview: await create(kenya.api, mpesaOrder),
    reconciling: await create(acme.api, { ...validOrder, amount: 7_700 }),
    completed: await create(acme.api, { ...validOrder, amount: 4_200 }),
    failed: await create(acme.api, { ...validOrder, amount: 999 }),
  };

  /** Along the state machine's edges, each step with its transition row, as processing writes them. */
  const moveTo = async (id: string, ...statuses: string[]) => {
    for (const to of statuses) {
      await sql(
        `with before as (select status from payment_orders where id = $1 for update),
              moved as (update payment_orders set status = $2, updated_at = now() where id = $1)
         insert into payment_order_transitions (order_id, from_status, to_status, reason)
         select $1, status, $2, 'fixture: ' || status || ' -> ' || $2 from before`,
        [id, to],
      );
    }
  };
  const calls = async (
    id: string,
    provider: string,
    rows: Array<[kind: string, secondsAgo: number, outcome: string, http: number | null, error?: string]>,
  ) => {
    let n = Number((await sql(`select count(*)::int as n from provider_attempts where order_id = $1`, [id]))[0]?.n);
    for (const [kind, secondsAgo, outcome, http, error] of rows) {
      n++;
      await sql(
        `insert into provider_attempts (order_id, provider, attempt_number, kind, started_at, ended_at, outcome, http_status, latency_ms, error)
         values ($1, $2, $3, $4, now() - make_interval(secs => $5), now() - make_interval(secs => $5) + interval '80 ms', $6, $7, 80, $8)`,
        [id, provider, n, kind, secondsAgo, outcome, http, error ?? null],
      );
    }
  };

  // Stuck: PENDING for half an hour (created_at is what sql/audit/stuck-orders.sql ages).
  await sql(`update payment_orders set created_at = now() - interval '30 minutes' where id = $1`, [order.pendingStuck]);

  // Under review: an M-Pesa push whose answer was lost, after a 429; stuck, reconciling, flagged.
  await sql(`update payment_orders set created_at = now() - interval '20 minutes' where id = $1`, [order.underReview]);
  await moveTo(order.underReview, 'PROCESSING');
  await calls(order.underReview, 'mpesa', [
    ['token', 125, 'succeeded', 200],
    ['charge', 120, 'retry', 429, 'rate limited'],
    ['charge', 61, 'unknown', null, 'timeout after 10000 ms'],
  ]);
  await sql(
    `update payment_orders set reconciling_since = now() - interval '1 minute', next_attempt_at = now() + interval '1 minute',
            review_reason = 'push_unconfirmed', review_since = now() - interval '30 seconds' where id = $1`,
    [order.underReview],
  );
  await sql(
    `insert into payment_order_reviews (id, order_id, reason, detail, opened_at)
     values ($1, $2, 'push_unconfirmed', 'the push''s answer was lost; no callback <script>alert(1)</script>', now() - interval '30 seconds')`,
    [newId('rev'), order.underReview],
  );
  await sql(
    `insert into provider_callbacks (order_id, provider, external_id, result_code, outcome, amount, phone, receipt, disposition)
     values ($1, 'mpesa', 'ws_CO_unmatched', '0', 'succeeded', 10000, '254708374149', 'QRC123', 'unmatched')`,
    [order.underReview],
  );

  // Reconciling, not stuck yet: Stripe errors, then status queries that settle nothing.
  await moveTo(order.reconciling, 'PROCESSING');
  await calls(order.reconciling, 'stripe', [
    ['charge', 100, 'error', 500, 'HTTP 500 from Stripe'],
    ['charge', 90, 'retry', 429, 'rate limited'],
    ['status', 80, 'unknown', 503, 'HTTP 503'],
    ['status', 20, 'unknown', null, 'socket hang up'],
  ]);
  await sql(
    `update payment_orders set reconciling_since = now() - interval '50 seconds', next_attempt_at = now() + interval '1 minute' where id = $1`,
    [order.reconciling],
  );

  // Completed, its event relayed: the failing endpoint's delivery pending and due after two 500s,
  // the healthy endpoint's dead after its last retry (what an operator redelivers).
  await moveTo(order.completed, 'PROCESSING');
  await calls(order.completed, 'stripe', [['charge', 40, 'succeeded', 200]]);
  await sql(`update payment_orders set provider_reference = 'pi_fixture_1' where id = $1`, [order.completed]);
  await moveTo(order.completed, 'COMPLETED');
  const completedEvent = newId('evt');
  await sql(
    `insert into outbox_events (id, merchant_id, order_id, type, payload, relayed_at)
     values ($1, $2, $3, 'payment_order.completed', '{}'::jsonb, now())`,
    [completedEvent, acme.id, order.completed],
  );
  const failingDelivery = newId('whd');
  const deadDelivery = newId('whd');
  await sql(
    `insert into webhook_deliveries (id, event_id, event_type, subscription_id, status, attempt_count, next_attempt_at, last_status_code, last_error, created_at, updated_at)
     values ($1, $3, 'payment_order.completed', $4, 'pending', 2, now() - interval '30 seconds', 500, 'HTTP 500 <i>oops</i>', now() - interval '35 seconds', now() - interval '31 seconds'),
            ($2, $3, 'payment_order.completed', $5, 'dead', 10, null, 503, 'HTTP 503', now() - interval '35 seconds', now() - interval '32 seconds')`,
    [failingDelivery, deadDelivery, completedEvent, failingSubscription, healthySubscription],
  );
  await sql(
    `insert into webhook_delivery_attempts (delivery_id, attempt_number, started_at, ended_at, status_code, latency_ms, error)
     values ($1, 1, now() - interval '35 seconds', now() - interval '35 seconds', 500, 12, 'HTTP 500'),
            ($1, 2, now() - interval '31 seconds', now() - interval '31 seconds', 500, 11, 'HTTP 500 <i>oops</i>'),
            ($2, 1, now() - interval '33 seconds', now() - interval '33 seconds', 503, 9, 'HTTP 503')`,
    [failingDelivery, deadDelivery],
  );

  // Failed by a decline; its event not relayed yet (the webhook outbox's lag).
  await moveTo(order.failed, 'PROCESSING');
  await calls(order.failed, 'stripe', [['charge', 10, 'declined', 402]]);
  await sql(
    `update payment_orders set failure_code = 'card_declined', failure_message = 'Your card was declined.' where id = $1`,
    [order.failed],
  );
  await moveTo(order.failed, 'FAILED');
  const failedEvent = newId('evt');
  await sql(
    `insert into outbox_events (id, merchant_id, order_id, type, payload, created_at)
     values ($1, $2, $3, 'payment_order.failed', '{}'::jsonb, now() - interval '12 seconds')`,
    [failedEvent, acme.id, order.failed],
  );

  return {
    acme,
    kenya,
    order,
    subscription: { failing: failingSubscription, healthy: healthySubscription, disabled: disabledSubscription },
    event: { completed: completedEvent, failed: failedEvent },
    delivery: { failing: failingDelivery, dead: deadDelivery },
  };
}

/** What the database holds, counted here independently of the console's own SQL. */
export async function databaseCounts(service: TestService) {
  const one = async (text: string, values: unknown[] = []) =>
    Number((await service.database.rows(text, values))[0]?.n ?? Number.NaN);
  return {
    pending: await one(`select count(*)::int as n from payment_orders where status = 'PENDING'`),
    processing: await one(`select count(*)::int as n from payment_orders where status = 'PROCESSING'`),
    reconciling: await one(
      `select count(*)::int as n from payment_orders where status = 'PROCESSING' and reconciling_since is not null`,
    ),
    underReview: await one(`select count(*)::int as n from payment_orders where review_reason is not null`),
    stuck: await one(
      `select count(*)::int as n from payment_orders
       where status in ('PENDING', 'PROCESSING') and created_at < now() - interval '5 minutes'`,
    ),
    completedLastHour: await one(
      `select count(*)::int as n from payment_orders where status = 'COMPLETED' and created_at > now() - interval '1 hour'`,
    ),
    failedLastHour: await one(
      `select count(*)::int as n from payment_orders where status = 'FAILED' and created_at > now() - interval '1 hour'`,
    ),
    unrelayed: await one(`select count(*)::int as n from outbox_events where relayed_at is null`),
    deliveriesPending: await one(`select count(*)::int as n from webhook_deliveries where status = 'pending'`),
    callsLast10Minutes: await one(
      `select count(*)::int as n from provider_attempts where started_at > now() - interval '10 minutes'`,
    ),
    rateLimitedLast10Minutes: await one(
      `select count(*)::int as n from provider_attempts where http_status = 429 and started_at > now() - interval '10 minutes'`,
    ),
  };
}
