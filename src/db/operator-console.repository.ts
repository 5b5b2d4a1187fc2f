// The operator console's read model (GET /operator/overview, GET /operator/payment-orders/{id}):
// what is stuck, what is failing, how fast the providers are called, across every merchant. Read
// only. Every statement is bounded by an index on what it reads: a backlog (a partial index of
// in-flight orders, open reviews, unrelayed events, pending deliveries), a time window (provider
// calls by started_at, recent orders by their time-sortable id) or one order's own rows; never a
// scan of the history, which may hold millions of orders.
import { sql } from 'kysely';
import type { AttemptView, ReviewView } from '../domain/order-json.ts';
import { ORDER_STATUSES, type OrderStatus, type PaymentOrder, type Transition } from '../domain/payment-order.ts';
import { newId } from '../lib/ids.ts';
import type { Db, Tx } from './connection.ts';
import { listTransitions, toOrder } from './payment-orders.repository.ts';
import { toAttemptView } from './provider-attempts.repository.ts';
import { listReviews } from './reviews.repository.ts';

export type OverviewOptions = Readonly<{
  /** A non-terminal order older than this is stuck (sql/audit/stuck-orders.sql's `minutes`). */
  stuckMinutes: number;
  /** The provider-call chart's span, ending now. */
  rateMinutes: number;
  /** The chart's bar width. */
  bucketSeconds: number;
  /** Orders by status counts the orders created in this window. */
  recentMinutes: number;
  /** Rows per list. */
  limit: number;
  /** Whether the Kafka emitter runs: without it every event stays unpublished, a figure that means nothing. */
  kafka: boolean;
}>;

export type LastCall = Readonly<{
  kind: string;
  outcome: string | null;
  httpStatus: number | null;
  startedAt: Date;
  error: string | null;
}>;

/** An order in a list of the console (stuck, reconciling, under review). */
export type OrderSummary = Readonly<{
  id: string;
  merchantId: string;
  merchantName: string;
  status: OrderStatus;
  provider: string;
  amount: number;
  currency: string;
  providerReference: string | null;
  createdAt: Date;
  reconcilingSince: Date | null;
  nextAttemptAt: Date | null;
  review: Readonly<{ reason: string; since: Date }> | null;
  lastCall: LastCall | null;
}>;

export type ReviewQueueEntry = Readonly<{
  order: OrderSummary;
  /** The order's open reviews' reasons, oldest first (one resolve settles them all). */
  reasons: readonly string[];
  /** The oldest open review's detail. */
  detail: string;
  openedAt: Date;
}>;

export type CallCounts = Readonly<{ calls: number; rateLimited: number; errors: number }>;

export type ProviderRate = CallCounts &
  Readonly<{
    provider: string;
    /** Most calls that started in any 1-second window of the span. */
    peakInAnySecond: number;
    /** Every bucket of the span, oldest first (zeros included). */
    buckets: ReadonlyArray<CallCounts & Readonly<{ start: Date }>>;
  }>;

export type ProviderCallRate = Readonly<{
  from: Date;
  to: Date;
  bucketSeconds: number;
  total: CallCounts & Readonly<{ peakInAnySecond: number }>;
  providers: readonly ProviderRate[];
}>;

export type OutboxLag = Readonly<{
  webhooks: Readonly<{
    unrelayed: number;
    oldestUnrelayedAt: Date | null;
    deliveriesPending: number;
    oldestPendingAt: Date | null;
    /** Pending deliveries whose next attempt is due: more than a few means the senders lag. */
    deliveriesDue: number;
    oldestDueAt: Date | null;
  }>;
  kafka: Readonly<{ unpublished: number; oldestUnpublishedAt: Date | null; deadLettered: number }> | null;
}>;

export type SubscriptionTrouble = Readonly<{
  id: string;
  merchantId: string;
  merchantName: string;
  url: string;
  enabled: boolean;
  disabledReason: string | null;
  updatedAt: Date;
  /** Pending deliveries that failed at least once (the endpoint answered non-2xx, or not at all). */
  failingDeliveries: number;
  oldestFailingAt: Date | null;
  lastStatusCode: number | null;
  lastError: string | null;
  lastFailureAt: Date | null;
}>;

export type Listed<T> = Readonly<{ total: number; data: readonly T[] }>;

export type OperatorOverview = Readonly<{
  now: Date;
  orders: Readonly<{
    pending: number;
    processing: number;
    reconciling: number;
    underReview: number;
    /** Orders created in the last `recentMinutes`, by status. */
    recent: Readonly<Record<OrderStatus, number>>;
    /** The planner's estimate of all orders stored (pg_class.reltuples), null before the first ANALYZE. */
    estimatedTotal: number | null;
  }>;
  stuck: Listed<OrderSummary>;
  reconciling: Listed<OrderSummary>;
  underReview: Listed<ReviewQueueEntry>;
  providerCalls: ProviderCallRate;
  outbox: OutboxLag;
  subscriptions: Listed<SubscriptionTrouble>;
}>;

/** The overview may take this long at most (each statement); an operator's page must not load the database. */
const OVERVIEW_STATEMENT_TIMEOUT_MS = 5_000;

/**
 * The whole overview from one snapshot (a read-only repeatable-read transaction), so that its
 * counts and lists agree with each other: an order counted as stuck is in the stuck list.
 */
export async function readOperatorOverview(db: Db, options: OverviewOptions): Promise<OperatorOverview> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute(async (trx) => {
      await sql`set local statement_timeout = ${sql.lit(OVERVIEW_STATEMENT_TIMEOUT_MS)}`.execute(trx);
      const now = await databaseNow(trx);
      const orders = await countOrders(trx, now, options.recentMinutes);
      return {
        now,
        orders,
        stuck: await listStuckOrders(trx, options.stuckMinutes, options.limit),
        reconciling: {
          total: orders.reconciling,
          data: await listReconcilingOrders(trx, options.limit),
        },
        underReview: { total: orders.underReview, data: await listReviewQueue(trx, options.limit) },
        providerCalls: await readProviderCallRate(trx, now, options.rateMinutes, options.bucketSeconds),
        outbox: await readOutboxLag(trx, options.kafka),
        subscriptions: await listSubscriptionTrouble(trx, options.limit),
      };
    });
}

/** select now() — the transaction's clock: every age on the page is measured from it. */
async function databaseNow(trx: Tx): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select now() as now`.execute(trx);
  return (rows[0] as { now: Date }).now;
}

/**
 * The in-flight counts come from payment_orders_in_flight_idx (sql/005, partial on PENDING and
 * PROCESSING: the backlog), open reviews from payment_order_reviews_queue_idx (sql/007). Terminal
 * orders are counted over a recent window only, on the primary key: ids sort by creation time
 * (src/lib/ids.ts), so `id >= <the id a creation at the window's start would get>` is a range of
 * the index, whatever the history holds. An exact all-time count would read the whole table.
 */
async function countOrders(trx: Tx, now: Date, recentMinutes: number): Promise<OperatorOverview['orders']> {
  // An id's first 13 characters are its prefix and creation time: the least id of that millisecond.
  const recentFrom = newId('po', now.getTime() - recentMinutes * 60_000).slice(0, 13);
  const { rows } = await sql<{
    pending: string;
    processing: string;
    reconciling: string;
    under_review: string;
    recent: Record<string, string>;
    estimated_total: number | null;
  }>`
    select
      (select count(*) from payment_orders where status = 'PENDING') as pending,
      (select count(*) from payment_orders where status = 'PROCESSING') as processing,
      (select count(*) from payment_orders where status = 'PROCESSING' and reconciling_since is not null) as reconciling,
      (select count(distinct order_id) from payment_order_reviews where resolved_at is null) as under_review,
      (select coalesce(jsonb_object_agg(status, n), '{}'::jsonb) from (
         select status, count(*) as n from payment_orders where id >= ${recentFrom} group by status
       ) recent) as recent,
      (select nullif(reltuples, -1)::float8 from pg_class where oid = 'payment_orders'::regclass) as estimated_total`.execute(
    trx,
  );
  const row = rows[0] as NonNullable<(typeof rows)[0]>;
  const recent = Object.fromEntries(ORDER_STATUSES.map((s) => [s, Number(row.recent[s] ?? 0)])) as Record<
    OrderStatus,
    number
  >;
  return {
    pending: Number(row.pending),
    processing: Number(row.processing),
    reconciling: Number(row.reconciling),
    underReview: Number(row.under_review),
    recent,
    estimatedTotal: row.estimated_total === null ? null : Math.round(row.estimated_total),
  };
}

type SummaryRow = {
  id: string;
  merchant_id: string;
  merchant_name: string;
  status: string;
  provider: string;
  amount: string;
  currency: string;
  provider_reference: string | null;
  created_at: Date;
  reconciling_since: Date | null;
  next_attempt_at: Date | null;
  review_reason: string | null;
  review_since: Date | null;
  last_kind: string | null;
  last_outcome: string | null;
  last_http_status: number | null;
  last_started_at: Date | null;
  last_error: string | null;
};

/** The columns of an OrderSummary, for `from payment_orders o join merchants m` with the lateral `last`. */
const summaryColumns = sql`
  o.id, o.merchant_id, m.name as merchant_name, o.status, o.provider, o.amount, o.currency, o.provider_reference,
  o.created_at, o.reconciling_since, o.next_attempt_at, o.review_reason, o.review_since,
  last.kind as last_kind, last.outcome as last_outcome, last.http_status as last_http_status,
  last.started_at as last_started_at, last.error as last_error`;

/** The order's latest provider call: one probe of provider_attempts' unique (order_id, attempt_number). */
const lastCallJoin = sql`
  left join lateral (
    select kind, outcome, http_status, started_at, error from provider_attempts a
    where a.order_id = o.id order by a.attempt_number desc limit 1
  ) last on true`;

function toSummary(row: SummaryRow): OrderSummary {
  return {
    id: row.id,
    merchantId: row.merchant_id,
    merchantName: row.merchant_name,
    status: row.status as OrderStatus,
    provider: row.provider,
    amount: Number(row.amount),
    currency: row.currency,
    providerReference: row.provider_reference,
    createdAt: row.created_at,
    reconcilingSince: row.reconciling_since,
    nextAttemptAt: row.next_attempt_at,
    review: row.review_reason && row.review_since ? { reason: row.review_reason, since: row.review_since } : null,
    lastCall:
      row.last_kind && row.last_started_at
        ? {
            kind: row.last_kind,
            outcome: row.last_outcome,
            httpStatus: row.last_http_status,
            startedAt: row.last_started_at,
            error: row.last_error,
          }
        : null,
  };
}

/**
 * sql/audit/stuck-orders.sql, oldest first, with the count of all of them. Over
 * payment_orders_in_flight_idx (its predicate is this one's status filter): the cost is the
 * in-flight backlog's, sorted for the first `limit`, never the terminal history's.
 */
async function listStuckOrders(trx: Tx, minutes: number, limit: number): Promise<Listed<OrderSummary>> {
  const { rows } = await sql<SummaryRow>`
    select ${summaryColumns}
    from payment_orders o
    join merchants m on m.id = o.merchant_id
    ${lastCallJoin}
    where o.status in ('PENDING', 'PROCESSING') and o.created_at < now() - make_interval(mins => ${minutes})
    order by o.created_at, o.id
    limit ${limit}`.execute(trx);
  return { total: await countStuckOrders(trx, minutes), data: rows.map(toSummary) };
}

/** The stuck list's length without its limit (apart: a window count would join every row to its last call). */
async function countStuckOrders(trx: Tx, minutes: number): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    select count(*) as n from payment_orders
    where status in ('PENDING', 'PROCESSING') and created_at < now() - make_interval(mins => ${minutes})`.execute(trx);
  return Number(rows[0]?.n ?? 0);
}

/**
 * Orders whose outcome is being reconciled, longest first: payment_orders_in_flight_idx is
 * (status, reconciling_since), so this reads the first `limit` entries in order and stops.
 */
async function listReconcilingOrders(trx: Tx, limit: number): Promise<OrderSummary[]> {
  const { rows } = await sql<SummaryRow>`
    select ${summaryColumns}
    from payment_orders o
    join merchants m on m.id = o.merchant_id
    ${lastCallJoin}
    where o.status = 'PROCESSING' and o.reconciling_since is not null
    order by o.reconciling_since, o.id
    limit ${limit}`.execute(trx);
  return rows.map(toSummary);
}

/**
 * sql/audit/review-queue.sql by order (a resolve settles every open review of its order), oldest
 * first: the open reviews come from payment_order_reviews_queue_idx (partial: the queue only).
 */
async function listReviewQueue(trx: Tx, limit: number): Promise<ReviewQueueEntry[]> {
  const { rows } = await sql<SummaryRow & { reasons: string[]; detail: string; opened_at: Date }>`
    with queue as (
      select order_id, min(opened_at) as opened_at,
             array_agg(reason order by opened_at, id) as reasons,
             (array_agg(detail order by opened_at, id))[1] as detail
      from payment_order_reviews
      where resolved_at is null
      group by order_id
      order by min(opened_at), order_id
      limit ${limit}
    )
    select ${summaryColumns}, q.reasons, q.detail, q.opened_at
    from queue q
    join payment_orders o on o.id = q.order_id
    join merchants m on m.id = o.merchant_id
    ${lastCallJoin}
    order by q.opened_at, o.id`.execute(trx);
  return rows.map((row) => ({
    order: toSummary(row),
    reasons: row.reasons,
    detail: row.detail,
    openedAt: row.opened_at,
  }));
}

/**
 * Provider calls (every kind: charges, status queries, token requests — the gate counts them all)
 * that started in the span, per provider and bucket, with the 429s and the calls that got no
 * conclusive answer (outcome error, retry or unknown: network faults, timeouts, 5xx; 429s apart),
 * and the most that started in any 1-second window (what sql/audit/provider-calls-per-second.sql
 * proves the gate by), from a window function over the span's rows sorted once. Both statements
 * read provider_attempts_started_at_idx (sql/002) for the span only: at most
 * PROVIDER_CALLS_PER_SECOND × the span's seconds rows (1,200 for 10 minutes at 2 per second).
 */
async function readProviderCallRate(
  trx: Tx,
  now: Date,
  minutes: number,
  bucketSeconds: number,
): Promise<ProviderCallRate> {
  const bucketMs = bucketSeconds * 1000;
  // Buckets aligned on the clock, the last one holding now (still filling).
  const to = new Date((Math.floor(now.getTime() / bucketMs) + 1) * bucketMs);
  const from = new Date(to.getTime() - minutes * 60_000);
  const { rows: counted } = await sql<{
    provider: string;
    bucket: number;
    calls: number;
    rate_limited: number;
    errors: number;
  }>`
    select provider,
           floor(extract(epoch from started_at - ${from}::timestamptz) * 1000 / ${bucketMs})::int as bucket,
           count(*)::int as calls,
           count(*) filter (where http_status = 429)::int as rate_limited,
           count(*) filter (where outcome in ('error', 'retry', 'unknown') and http_status is distinct from 429)::int
             as errors
    from provider_attempts
    where started_at >= ${from}::timestamptz and started_at < ${to}::timestamptz
    group by 1, 2`.execute(trx);
  const { rows: peaks } = await sql<{ provider: string; peak: number; global_peak: number }>`
    select provider, max(in_provider_window)::int as peak, max(in_window)::int as global_peak
    from (
      select provider,
             count(*) over (partition by provider order by started_at
                            range between current row and interval '999999 microseconds' following) as in_provider_window,
             count(*) over (order by started_at
                            range between current row and interval '999999 microseconds' following) as in_window
      from provider_attempts
      where started_at >= ${from}::timestamptz and started_at < ${to}::timestamptz
    ) windows
    group by provider`.execute(trx);
  const bucketCount = Math.round((minutes * 60) / bucketSeconds);
  const names = [...new Set([...counted.map((r) => r.provider), ...peaks.map((r) => r.provider)])].sort();
  const providers = names.map((provider): ProviderRate => {
    const buckets = Array.from({ length: bucketCount }, (_, i) => ({
      start: new Date(from.getTime() + i * bucketMs),
      calls: 0,
      rateLimited: 0,
      errors: 0,
    }));
    for (const row of counted.filter((r) => r.provider === provider)) {
      const bucket = buckets[row.bucket];
      if (!bucket) continue;
      bucket.calls += row.calls;
      bucket.rateLimited += row.rate_limited;
      bucket.errors += row.errors;
    }
    return {
      provider,
      ...sumCounts(buckets),
      peakInAnySecond: peaks.find((p) => p.provider === provider)?.peak ?? 0,
      buckets,
    };
  });
  return {
    from,
    to,
    bucketSeconds,
    total: { ...sumCounts(providers), peakInAnySecond: Math.max(0, ...peaks.map((p) => p.global_peak)) },
    providers,
  };
}

function sumCounts(items: readonly CallCounts[]): CallCounts {
  return items.reduce(
    (sum, c) => ({
      calls: sum.calls + c.calls,
      rateLimited: sum.rateLimited + c.rateLimited,
      errors: sum.errors + c.errors,
    }),
    { calls: 0, rateLimited: 0, errors: 0 },
  );
}

/**
 * The events waiting for each consumer and the oldest one's age. Each figure is over a partial
 * index of its backlog: outbox_events_unrelayed_idx (sql/003), webhook_deliveries_pending_idx
 * (sql/005; the oldest pending delivery's created_at costs a visit of each pending row, the backlog
 * again), outbox_events_unpublished_idx and outbox_events_kafka_dead_idx (sql/009). Without Kafka
 * every event stays unpublished: that count would scan the whole history and mean nothing.
 */
async function readOutboxLag(trx: Tx, kafka: boolean): Promise<OutboxLag> {
  const { rows } = await sql<{
    unrelayed: string;
    oldest_unrelayed_at: Date | null;
    pending: string;
    oldest_pending_at: Date | null;
    due: string;
    oldest_due_at: Date | null;
  }>`
    select
      (select count(*) from outbox_events where relayed_at is null) as unrelayed,
      (select min(created_at) from outbox_events where relayed_at is null) as oldest_unrelayed_at,
      (select count(*) from webhook_deliveries where status = 'pending') as pending,
      (select min(created_at) from webhook_deliveries where status = 'pending') as oldest_pending_at,
      (select count(*) from webhook_deliveries where status = 'pending' and next_attempt_at <= now()) as due,
      (select min(next_attempt_at) from webhook_deliveries where status = 'pending' and next_attempt_at <= now())
        as oldest_due_at`.execute(trx);
  const row = rows[0] as NonNullable<(typeof rows)[0]>;
  return {
    webhooks: {
      unrelayed: Number(row.unrelayed),
      oldestUnrelayedAt: row.oldest_unrelayed_at,
      deliveriesPending: Number(row.pending),
      oldestPendingAt: row.oldest_pending_at,
      deliveriesDue: Number(row.due),
      oldestDueAt: row.oldest_due_at,
    },
    kafka: kafka ? await readKafkaLag(trx) : null,
  };
}

async function readKafkaLag(trx: Tx): Promise<NonNullable<OutboxLag['kafka']>> {
  const { rows } = await sql<{ unpublished: string; oldest_unpublished_at: Date | null; dead: string }>`
    select
      (select count(*) from outbox_events where kafka_published_at is null and kafka_dead_at is null) as unpublished,
      (select min(created_at) from outbox_events where kafka_published_at is null and kafka_dead_at is null)
        as oldest_unpublished_at,
      (select count(*) from outbox_events where kafka_dead_at is not null) as dead`.execute(trx);
  const row = rows[0] as NonNullable<(typeof rows)[0]>;
  return {
    unpublished: Number(row.unpublished),
    oldestUnpublishedAt: row.oldest_unpublished_at,
    deadLettered: Number(row.dead),
  };
}

/**
 * Subscriptions in trouble: switched off (a 410, an operator) and not deleted, or with pending
 * deliveries that have failed at least once, disabled first, then the most failing. The failing
 * ones come from webhook_deliveries_pending_idx (the backlog), their last error from the same rows.
 * The disabled ones are a scan of webhook_subscriptions, a table of endpoints (a few per merchant),
 * not of history. A delivery that ran out of retries (dead) is not listed: only its subscription's
 * later failures, if it goes on failing, are.
 */
async function listSubscriptionTrouble(trx: Tx, limit: number): Promise<Listed<SubscriptionTrouble>> {
  const { rows } = await sql<{
    id: string;
    merchant_id: string;
    merchant_name: string;
    url: string;
    enabled: boolean;
    disabled_reason: string | null;
    updated_at: Date;
    failing: string | null;
    oldest_failing_at: Date | null;
    last_status_code: number | null;
    last_error: string | null;
    last_failure_at: Date | null;
    total: string;
  }>`
    with failing as (
      select subscription_id, count(*) as failing, min(created_at) as oldest_failing_at,
             (array_agg(last_status_code order by updated_at desc, id desc))[1] as last_status_code,
             (array_agg(last_error order by updated_at desc, id desc))[1] as last_error,
             max(updated_at) as last_failure_at
      from webhook_deliveries
      where status = 'pending' and attempt_count > 0
      group by subscription_id
    )
    select s.id, s.merchant_id, m.name as merchant_name, s.url, s.enabled, s.disabled_reason, s.updated_at,
           f.failing, f.oldest_failing_at, f.last_status_code, f.last_error, f.last_failure_at,
           count(*) over () as total
    from webhook_subscriptions s
    join merchants m on m.id = s.merchant_id
    left join failing f on f.subscription_id = s.id
    where s.deleted_at is null and (not s.enabled or f.subscription_id is not null)
    order by s.enabled, f.failing desc nulls last, s.id
    limit ${limit}`.execute(trx);
  return {
    total: Number(rows[0]?.total ?? 0),
    data: rows.map((row) => ({
      id: row.id,
      merchantId: row.merchant_id,
      merchantName: row.merchant_name,
      url: row.url,
      enabled: row.enabled,
      disabledReason: row.disabled_reason,
      updatedAt: row.updated_at,
      failingDeliveries: Number(row.failing ?? 0),
      oldestFailingAt: row.oldest_failing_at,
      lastStatusCode: row.last_status_code,
      lastError: row.last_error,
      lastFailureAt: row.last_failure_at,
    })),
  };
}

// --- One order's story -------------------------------------------------------------------------

export type StoryAttempt = AttemptView & Readonly<{ idempotencyKey: string | null; gateGrants: number }>;

export type StoryCallback = Readonly<{
  provider: string;
  externalId: string;
  resultCode: string;
  outcome: string;
  amount: number | null;
  receipt: string | null;
  disposition: string;
  receivedAt: Date;
}>;

export type StoryDeliveryAttempt = Readonly<{
  number: number;
  startedAt: Date;
  endedAt: Date | null;
  statusCode: number | null;
  latencyMs: number | null;
  error: string | null;
}>;

export type StoryDelivery = Readonly<{
  id: string;
  subscriptionId: string;
  subscriptionUrl: string;
  status: string;
  attemptCount: number;
  nextAttemptAt: Date | null;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  attempts: readonly StoryDeliveryAttempt[];
}>;

export type StoryEvent = Readonly<{
  id: string;
  type: string;
  createdAt: Date;
  relayedAt: Date | null;
  kafkaPublishedAt: Date | null;
  kafkaDeadAt: Date | null;
  kafkaError: string | null;
  deliveries: readonly StoryDelivery[];
}>;

export type OrderStory = Readonly<{
  order: PaymentOrder;
  merchantName: string;
  history: readonly Transition[];
  /** The latest STORY_ATTEMPTS calls, oldest first; `attemptsTotal` counts them all. */
  attempts: readonly StoryAttempt[];
  attemptsTotal: number;
  reviews: readonly ReviewView[];
  callbacks: readonly StoryCallback[];
  events: readonly StoryEvent[];
}>;

/**
 * An order reconciled for days is asked about every RECONCILE_INTERVAL_SECONDS (1,440 calls a day
 * at the default): the story shows the latest calls, which are the ones that matter.
 */
export const STORY_ATTEMPTS = 200;

/**
 * Everything recorded about one order, any merchant's, from one snapshot. Each read is one index
 * probe of the order's own rows: the primary key, payment_order_transitions_order_id_idx,
 * provider_attempts' unique (order_id, attempt_number), payment_order_reviews_order_idx (sql/010),
 * provider_callbacks_order_idx, outbox_events_order_idx, webhook_deliveries' unique (event_id, …),
 * webhook_delivery_attempts' unique (delivery_id, …).
 */
export async function readOrderStory(db: Db, orderId: string): Promise<OrderStory | null> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute(async (trx) => {
      const found = await trx
        .selectFrom('payment_orders as o')
        .innerJoin('merchants as m', 'm.id', 'o.merchant_id')
        .selectAll('o')
        .select('m.name as merchant_name')
        .where('o.id', '=', orderId)
        .executeTakeFirst();
      if (!found) return null;
      const { merchant_name, ...row } = found;
      const { attempts, total } = await listStoryAttempts(trx, orderId);
      return {
        order: toOrder(row),
        merchantName: merchant_name,
        history: await listTransitions(trx, orderId),
        attempts,
        attemptsTotal: total,
        reviews: await listReviews(trx, orderId),
        callbacks: await listStoryCallbacks(trx, orderId),
        events: await listStoryEvents(trx, orderId),
      };
    });
}

async function listStoryAttempts(trx: Tx, orderId: string): Promise<{ attempts: StoryAttempt[]; total: number }> {
  const { rows } = await sql<{
    attempt_number: number;
    kind: string;
    provider: string;
    started_at: Date;
    ended_at: Date | null;
    outcome: string | null;
    http_status: number | null;
    latency_ms: number | null;
    error: string | null;
    provider_reference: string | null;
    idempotency_key: string | null;
    gate_grants: number;
    total: string;
  }>`
    select * from (
      select attempt_number, kind, provider, started_at, ended_at, outcome, http_status, latency_ms, error,
             provider_reference, idempotency_key, gate_grants,
             (select count(*) from provider_attempts where order_id = ${orderId}) as total
      from provider_attempts where order_id = ${orderId}
      order by attempt_number desc limit ${STORY_ATTEMPTS}
    ) latest order by attempt_number`.execute(trx);
  return {
    total: Number(rows[0]?.total ?? 0),
    attempts: rows.map((r) => ({
      ...toAttemptView(r),
      idempotencyKey: r.idempotency_key,
      gateGrants: r.gate_grants,
    })),
  };
}

/** The order's callbacks, oldest first; the payer's phone number stays out (the console needs no personal data). */
async function listStoryCallbacks(trx: Tx, orderId: string): Promise<StoryCallback[]> {
  const rows = await trx
    .selectFrom('provider_callbacks')
    .select(['provider', 'external_id', 'result_code', 'outcome', 'amount', 'receipt', 'disposition', 'received_at'])
    .where('order_id', '=', orderId)
    .orderBy('id')
    .execute();
  return rows.map((r) => ({
    provider: r.provider,
    externalId: r.external_id,
    resultCode: r.result_code,
    outcome: r.outcome,
    amount: r.amount === null ? null : Number(r.amount),
    receipt: r.receipt,
    disposition: r.disposition,
    receivedAt: r.received_at,
  }));
}

/** The order's events, each with its webhook deliveries and their attempts (three statements in all). */
async function listStoryEvents(trx: Tx, orderId: string): Promise<StoryEvent[]> {
  const events = await trx
    .selectFrom('outbox_events')
    .select(['id', 'type', 'created_at', 'relayed_at', 'kafka_published_at', 'kafka_dead_at', 'kafka_error'])
    .where('order_id', '=', orderId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  const deliveries =
    events.length === 0
      ? []
      : await trx
          .selectFrom('webhook_deliveries as d')
          .innerJoin('webhook_subscriptions as s', 's.id', 'd.subscription_id')
          .selectAll('d')
          .select('s.url')
          .where(
            'd.event_id',
            'in',
            events.map((e) => e.id),
          )
          .orderBy('d.created_at')
          .orderBy('d.id')
          .execute();
  const attempts =
    deliveries.length === 0
      ? []
      : await trx
          .selectFrom('webhook_delivery_attempts')
          .selectAll()
          .where(
            'delivery_id',
            'in',
            deliveries.map((d) => d.id),
          )
          .orderBy('attempt_number')
          .execute();
  return events.map((e) => ({
    id: e.id,
    type: e.type,
    createdAt: e.created_at,
    relayedAt: e.relayed_at,
    kafkaPublishedAt: e.kafka_published_at,
    kafkaDeadAt: e.kafka_dead_at,
    kafkaError: e.kafka_error,
    deliveries: deliveries
      .filter((d) => d.event_id === e.id)
      .map((d) => ({
        id: d.id,
        subscriptionId: d.subscription_id,
        subscriptionUrl: d.url,
        status: d.status,
        attemptCount: d.attempt_count,
        nextAttemptAt: d.next_attempt_at,
        lastStatusCode: d.last_status_code,
        lastError: d.last_error,
        deliveredAt: d.delivered_at,
        createdAt: d.created_at,
        updatedAt: d.updated_at,
        attempts: attempts
          .filter((a) => a.delivery_id === d.id)
          .map((a) => ({
            number: a.attempt_number,
            startedAt: a.started_at,
            endedAt: a.ended_at,
            statusCode: a.status_code,
            latencyMs: a.latency_ms,
            error: a.error,
          })),
      })),
  }));
}
