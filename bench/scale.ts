// `npm run bench:scale`: with a million orders already stored, do the API's hot paths keep their
// latency, and does a metrics scrape stay cheap?
//
// One gateway (child process, WORKER_CONCURRENCY=0 and WEBHOOK_CONCURRENCY=0: nothing but the
// measured requests moves; orders created stay PENDING) on a fresh database. The same measurements
// run twice, first on an empty table, then once BENCH_ORDERS (default 1,000,000) orders are stored:
//   - POST /payment-orders: closed loop, BENCH_CONCURRENCY (default 16) clients, unique
//     Idempotency-Keys, BENCH_SECONDS (default 10);
//   - GET /payment-orders/{id}: the same loop over the ids that POST run just created;
//   - GET /payment-orders?limit=10, ?status=PENDING&limit=10, and the second page of the former
//     (startingAfter = the first page's nextStartingAfter): the same loop;
//   - GET /metrics (no key: like /healthz it is for the operators' network): BENCH_SCRAPES (default
//     50) scrapes one after the other; each must report payment_gateway_database_up 1.
// Each loop has an untimed second of warm-up first, and the reads follow an ANALYZE of what the POST
// loop wrote (as autovacuum would soon do: before it, the planner lists a merchant's orders with a
// sort of all of them). Target: every p99 with the orders stored at most 1.2 × its p99 on the empty
// table, and a scrape under 50 ms (its p99, i.e. its worst of 50). The report splits each loop's
// CPU into the gateway, its database connections, the bench and "other" (anything else on the
// machine: a p99 measured beside another benchmark is flagged). BENCH_EXPLAIN=1 adds, after each
// phase, EXPLAIN ANALYZE of the statements behind the measured requests.
//
// The orders are written in SQL (insert ... select from generate_series, BENCH_LOAD_BATCH = 100,000
// per transaction), not through the API: for the bench merchant (60 %) and four others, created
// evenly over the last 23 hours (ids are the product's: time-sortable, src/lib/ids.ts, so the list's
// keyset pagination walks a realistic index), 85 % COMPLETED, 13 % FAILED, 1 % PROCESSING (a tenth
// of them reconciling, half of those under review) and 1 % PENDING; 80 % Stripe (USD, card), 20 %
// M-Pesa (KES). Each order has what the product writes for it: its transitions, its idempotency key
// with the saved 201 response (unexpired: TTL 24 h), a provider attempt once it left PENDING, its
// terminal outbox event (payload = orderJson, already relayed; no Kafka, so unpublished, as the
// product leaves it), and for 0.2 % of terminal orders a settled review with its review_required
// event. Triggers (the outbox NOTIFY, foreign keys) are off for the load when the role may
// (session_replication_role = replica); the rows are consistent by construction. Then VACUUM
// (ANALYZE) and a CHECKPOINT: the table as autovacuum keeps it, no pending write-back in phase 2.
// Database as in the other benches: a fresh one on DATABASE_URL's server, or a temporary embedded
// PostgreSQL; everything stopped and dropped at the end. Ctrl-C ends the current loop, prints what
// was measured and cleans up; a second Ctrl-C quits at once.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { availableParallelism } from 'node:os';
import { sql } from 'kysely';
import { createDb, createPool } from '../src/db/connection.ts';
import { freePort } from '../src/db/embedded-postgres.ts';
import { ensureMerchant } from '../src/db/merchants.repository.ts';
import { databaseFiguresQuery } from '../src/db/metrics.repository.ts';
import {
  BENCH_ORDER,
  type Cleanup,
  type CpuSnapshot,
  closedLoop,
  cpuSnapshot,
  cpuUse,
  createMerchant,
  formatTable,
  httpRequest,
  interrupted,
  type Measured,
  openBenchDatabase,
  percentile,
  positiveInteger,
  positiveNumber,
  type Reply,
  runCleanups,
  spawnService,
  stopOnCtrlC,
  withClient,
} from './support.ts';

const SECONDS = positiveNumber('BENCH_SECONDS', process.env.BENCH_SECONDS, 10);
const CONCURRENCY = positiveInteger('BENCH_CONCURRENCY', 16);
const ORDERS = positiveInteger('BENCH_ORDERS', 1_000_000);
const SCRAPES = positiveInteger('BENCH_SCRAPES', 50);
const LOAD_BATCH = positiveInteger('BENCH_LOAD_BATCH', 100_000);
/** BENCH_EXPLAIN=1: after each phase, the plans of the measured requests' statements (EXPLAIN ANALYZE). */
const EXPLAIN = process.env.BENCH_EXPLAIN === '1';
const WARMUP_SECONDS = Math.min(1, SECONDS);
const WARMUP_SCRAPES = 5;

const P99_RATIO_TARGET = 1.2;
const METRICS_TARGET_MS = 50;
/** Past this share of a CPU used by other processes during a loop, the report warns. */
const OTHER_CPU_WARNING = 0.2;

/** The bench merchant's share of the stored orders; the rest is spread over OTHER_MERCHANTS. */
const BENCH_MERCHANT_SHARE = 0.6;
const OTHER_MERCHANTS = 4;
/** The stored orders were created evenly over this span, up to the load. */
const HISTORY_MS = 23 * 3_600_000;

const POST = 'POST /payment-orders';
const GET_BY_ID = 'GET /payment-orders/{id}';
const LIST = 'GET /payment-orders?limit=10';
const LIST_STATUS = 'GET /payment-orders?status=PENDING&limit=10';
const LIST_PAGE_2 = 'GET /payment-orders?limit=10&startingAfter=…';
const METRICS = 'GET /metrics';
const OPERATIONS = [POST, GET_BY_ID, LIST, LIST_STATUS, LIST_PAGE_2, METRICS] as const;
type Operation = (typeof OPERATIONS)[number];

type Outcome = Readonly<{
  perSecond: number;
  latenciesMs: number[];
  failures: Map<string, number>;
  /** CPU over the loop, by process (see cpuText). */
  cpu: string;
  /** Of one CPU, spent by processes that are not this bench's: another benchmark, say. */
  otherCpu: number | null;
  /** WAL the server wrote per successful request over the loop (see walText). */
  wal: string;
}>;
type Phase = Map<Operation, Outcome>;

async function main(): Promise<void> {
  stopOnCtrlC('finishing the current loop');
  const cleanups: Cleanup[] = [];
  try {
    const database = await openBenchDatabase(cleanups);
    const service = spawnService({
      ...process.env,
      DATABASE_URL: database.url,
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      DEMO_MERCHANT: 'false',
      WORKER_CONCURRENCY: '0',
      WEBHOOK_CONCURRENCY: '0',
    });
    cleanups.push(service.stop);
    await service.ready; // migrated, queues created
    const merchant = await createMerchant(database.url);
    const client = createClient(service.url, merchant.apiKey);
    cleanups.push(async () => client.close());

    const version = await withClient(database.url, async (c) => {
      const { rows } = await c.query<{ v: string }>("select current_setting('server_version') as v");
      return rows[0]?.v;
    });
    process.stdout.write(
      `PostgreSQL ${version} (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'}), ${availableParallelism()} CPUs; ` +
        `${SECONDS} s per loop, ${CONCURRENCY} clients, ${SCRAPES} scrapes; ${count(ORDERS)} orders to load; ` +
        'one gateway (WORKER_CONCURRENCY=0, WEBHOOK_CONCURRENCY=0)\n',
    );

    process.stdout.write('\nphase 1: empty table\n');
    const empty = await measurePhase(client, service.pid, database.url, merchant.id);

    let loaded: Phase | null = null;
    if (!interrupted()) {
      process.stdout.write(`\nloading ${count(ORDERS)} orders in SQL\n`);
      const done = await loadOrders(database.url, merchant.id);
      if (done && !interrupted()) {
        process.stdout.write(`\nphase 2: ${count(ORDERS)} orders stored\n`);
        loaded = await measurePhase(client, service.pid, database.url, merchant.id);
      }
    }

    report(empty, loaded);
    if (interrupted()) {
      process.stdout.write('interrupted: the figures above are of the loops that ran to the end\n');
      process.exitCode = 130;
    }
  } finally {
    await runCleanups(cleanups);
  }
}

// ---------------------------------------------------------------------------------------------
// One phase: the same loops on whatever the table holds

async function measurePhase(
  client: Client,
  gatewayPid: number | undefined,
  databaseUrl: string,
  merchantId: string,
): Promise<Phase> {
  const phase: Phase = new Map();
  let pids: (number | undefined)[] = [];
  const run = async (operation: Operation, send: () => Promise<Reply>, onOk?: (reply: Reply) => void) => {
    if (interrupted()) return;
    await closedLoop(CONCURRENCY, WARMUP_SECONDS, send);
    if (interrupted()) return;
    pids = [gatewayPid, process.pid, ...(await backendPids(databaseUrl))];
    const walBefore = await walStats(databaseUrl);
    const before = cpuSnapshot(pids);
    const outcome = await closedLoop(CONCURRENCY, SECONDS, send, onOk);
    if (interrupted()) return; // a cut-short loop would report misleading figures
    const cpu = cpuText(before, pids);
    const wal = walText(walBefore, await walStats(databaseUrl), outcome.latenciesMs.length);
    const measured = { ...outcome, cpu: cpu.text, otherCpu: cpu.other, wal };
    phase.set(operation, measured);
    progress(operation, measured, wal === '-' ? '' : `; WAL ${wal}`);
  };

  const created: string[] = [];
  await run(POST, client.post, (reply) => {
    const id = /"id":"([^"]+)"/.exec(reply.body)?.[1];
    if (id) created.push(id);
  });
  // What autovacuum does within a minute or so: plan the reads on the table as it now is. Before a
  // first ANALYZE the planner does not know one merchant holds every row, and lists it with a bitmap
  // scan and a sort of all the merchant's orders (a few ms per request at a few thousand orders).
  if (!interrupted()) await withClient(databaseUrl, (c) => c.query(`analyze ${ANALYZED.join(', ')}`));
  if (created.length > 0) {
    await run(GET_BY_ID, () => client.get(`/payment-orders/${created[Math.floor(Math.random() * created.length)]}`));
  }
  await run(LIST, () => client.get('/payment-orders?limit=10'));
  await run(LIST_STATUS, () => client.get('/payment-orders?status=PENDING&limit=10'));
  const cursor = interrupted() ? null : await firstPageCursor(client);
  if (cursor) await run(LIST_PAGE_2, () => client.get(`/payment-orders?limit=10&startingAfter=${cursor}`));
  else if (!interrupted()) process.stdout.write('  no second page: the first page did not answer a cursor\n');

  if (!interrupted()) {
    pids = [gatewayPid, process.pid, ...(await backendPids(databaseUrl))];
    const before = cpuSnapshot(pids);
    const { outcome, inFlight } = await scrapes(client);
    if (!interrupted()) {
      const cpu = cpuText(before, pids);
      const measured = { ...outcome, cpu: cpu.text, otherCpu: cpu.other, wal: '-' };
      phase.set(METRICS, measured);
      progress(METRICS, measured, `, max ${Math.max(0, ...measured.latenciesMs).toFixed(1)} ms; ${inFlight}`);
    }
  }
  const orderId = created[0];
  if (EXPLAIN && orderId && !interrupted()) await explain(databaseUrl, merchantId, orderId, cursor);
  return phase;
}

/**
 * EXPLAIN ANALYZE of what the measured requests run: the statements of GET /payment-orders/{id}
 * (src/db: findOrder, listTransitions, listAttempts, listReviews) and of the lists (listOrders), as
 * their doc comments give them, and the metrics scrape's own statement (databaseFiguresQuery).
 */
async function explain(databaseUrl: string, merchantId: string, orderId: string, cursor: string | null): Promise<void> {
  const statements: Array<[string, string, unknown[]]> = [
    ['findOrder', 'select * from payment_orders where merchant_id = $1 and id = $2', [merchantId, orderId]],
    ['listTransitions', 'select * from payment_order_transitions where order_id = $1 order by id', [orderId]],
    ['listAttempts', 'select * from provider_attempts where order_id = $1 order by attempt_number', [orderId]],
    ['listReviews', 'select * from payment_order_reviews where order_id = $1 order by opened_at, id', [orderId]],
    ['list', 'select * from payment_orders where merchant_id = $1 order by id desc limit 11', [merchantId]],
    [
      'list, status',
      'select * from payment_orders where merchant_id = $1 and status = $2 order by id desc limit 11',
      [merchantId, 'PENDING'],
    ],
    [
      'list, page 2',
      'select * from payment_orders where merchant_id = $1 and id < $2 order by id desc limit 11',
      [merchantId, cursor ?? orderId],
    ],
  ];
  const out: string[] = ['  plans (EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)):'];
  const add = (name: string, rows: readonly Record<string, unknown>[]) => {
    out.push(`    ${name}:`);
    for (const row of rows) out.push(`      ${String(Object.values(row)[0])}`);
  };
  await withClient(databaseUrl, async (c) => {
    for (const [name, text, values] of statements) {
      add(name, (await c.query(`explain (analyze, buffers, costs off) ${text}`, values)).rows);
    }
  });
  const db = createDb(createPool(databaseUrl, 1, 'bench-explain'));
  try {
    const query = databaseFiguresQuery({ kafka: false });
    add(
      'metrics (readDatabaseFigures)',
      (await sql`explain (analyze, buffers, costs off) ${query}`.execute(db)).rows as Record<string, unknown>[],
    );
  } finally {
    await db.destroy();
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

/** The first page's nextStartingAfter; null if there is no second page (or the list did not answer). */
async function firstPageCursor(client: Client): Promise<string | null> {
  const reply = await client.get('/payment-orders?limit=10');
  if (reply.status !== 200) return null;
  return (JSON.parse(reply.body) as { nextStartingAfter?: string | null }).nextStartingAfter ?? null;
}

/** SCRAPES scrapes one after the other (after a few unmeasured ones), as Prometheus sends them. */
async function scrapes(client: Client): Promise<{ outcome: Measured; inFlight: string }> {
  const latenciesMs: number[] = [];
  const failures = new Map<string, number>();
  let last = '';
  const started = performance.now();
  for (let i = 0; i < WARMUP_SCRAPES + SCRAPES && !interrupted(); i++) {
    const t0 = performance.now();
    const failure = await client.get('/metrics').then(
      (reply) => {
        if (reply.status !== 200) return `HTTP ${reply.status}`;
        // The gauges keep their last values when the database does not answer: a fast scrape
        // without the database's figures would measure nothing.
        if (!/^payment_gateway_database_up 1$/m.test(reply.body)) return 'payment_gateway_database_up is not 1';
        last = reply.body;
        return null;
      },
      (error: unknown) => `error: ${(error as Error)?.message ?? String(error)}`,
    );
    if (i < WARMUP_SCRAPES) continue;
    if (failure === null) latenciesMs.push(performance.now() - t0);
    else failures.set(failure, (failures.get(failure) ?? 0) + 1);
  }
  const gauge = (status: string) =>
    new RegExp(`^payment_orders_in_flight\\{status="${status}"\\} (\\S+)$`, 'm').exec(last)?.[1] ?? '?';
  const elapsedSeconds = (performance.now() - started) / 1_000;
  return {
    outcome: { perSecond: latenciesMs.length / elapsedSeconds, latenciesMs, failures },
    inFlight: `the scrape counted ${gauge('PENDING')} PENDING, ${gauge('PROCESSING')} PROCESSING`,
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP

type Client = Readonly<{ post(): Promise<Reply>; get(path: string): Promise<Reply>; close(): void }>;

function createClient(baseUrl: string, apiKey: string): Client {
  // One kept-alive socket per client, as a real client pool would hold.
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const body = JSON.stringify(BENCH_ORDER);
  return {
    post: () =>
      httpRequest(agent, new URL('/payment-orders', baseUrl), 'POST', body, {
        Authorization: `Bearer ${apiKey}`,
        'Content-Type': 'application/json',
        'Content-Length': String(Buffer.byteLength(body)),
        'Idempotency-Key': `bench-${randomUUID()}`,
      }),
    get: (path) => httpRequest(agent, new URL(path, baseUrl), 'GET', null, { Authorization: `Bearer ${apiKey}` }),
    close: () => agent.destroy(),
  };
}

// ---------------------------------------------------------------------------------------------
// The load, in SQL

// src/lib/ids.ts in SQL: Crockford's base32 (sorts as the numbers it encodes), 10 characters of
// millisecond time and 16 of randomness (two 40-bit numbers here).
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const base32 = (expr: string, chars: number) =>
  Array.from(
    { length: chars },
    (_, i) => `substr('${ALPHABET}', (((${expr}) >> ${5 * (chars - 1 - i)}) & 31)::int + 1, 1)`,
  ).join(' || ');
const sqlId = (prefix: string, ms: string, r1: string, r2: string) =>
  `'${prefix}_' || ${base32(ms, 10)} || ${base32(r1, 8)} || ${base32(r2, 8)}`;
const RANDOM_40 = '(random() * 1099511627776)::bigint';
const iso = (ts: string) => `to_char((${ts}) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** orderJson (src/domain/order-json.ts) of a bench_load row, with these status and updatedAt. */
function orderJsonSql(status: string, updatedAt: string, settled: boolean, review: string): string {
  return `'id', l.id, 'object', 'payment_order', 'status', ${status}, 'amount', l.amount, 'currency', l.currency,
    'provider', l.provider, 'paymentMethod', l.payment_method, 'reference', 'order-' || l.n, 'description', null,
    'metadata', '{}'::jsonb,
    'providerReference', ${settled ? 'l.provider_reference' : 'null'},
    'failure', ${settled ? "case when l.failure_code is null then null else jsonb_build_object('code', l.failure_code, 'message', l.failure_message) end" : 'null'},
    'nextAttemptAt', null, 'reconcilingSince', null, 'review', ${review},
    'createdAt', ${iso('l.created_at')}, 'updatedAt', ${iso(updatedAt)}`;
}

const CREATE_STAGING = `
  create temp table bench_load (
    n bigint, id text, event_id text, review_id text, review_event_id text, merchant_id text, status text,
    provider text, currency text, amount bigint, payment_method jsonb, provider_reference text,
    failure_code text, failure_message text, callback_token text, created_at timestamptz,
    moved_at timestamptz, settled_at timestamptz, reconciling_since timestamptz, review text, review_at timestamptz
  ) on commit drop`;

// $1, $2: the batch's first and last n; $3: all orders; $4: the first order's time (ms); $5: the
// span (ms); $6: the bench merchant; $7: the others; $8: the bench merchant's share.
const FILL_STAGING = `
  with r as (
    select n, $4::bigint + (n - 1) * $5::bigint / $3::bigint as ms,
           random() as rs, random() as rm, random() as rp, random() as rr, random() as rt,
           ${RANDOM_40} as r1, ${RANDOM_40} as r2, ${RANDOM_40} as e1, ${RANDOM_40} as e2
      from generate_series($1::bigint, $2::bigint) n
  ), s as (
    select r.*,
           case when rs < 0.01 then 'PENDING' when rs < 0.02 then 'PROCESSING'
                when rs < 0.87 then 'COMPLETED' else 'FAILED' end as status,
           case when rp < 0.8 then 'stripe' else 'mpesa' end as provider,
           to_timestamp(ms / 1000.0) as created_at
      from r
  )
  insert into bench_load
  select n,
         ${sqlId('po', 'ms', 'r1', 'r2')},
         ${sqlId('evt', 'ms + 1500', 'e1', 'e2')},
         case when rr < 0.05 and status = 'PROCESSING' or rr < 0.002 and status in ('COMPLETED', 'FAILED')
              then ${sqlId('rev', 'ms + 1000', 'r2', 'e1')} end,
         case when rr < 0.05 and status = 'PROCESSING' or rr < 0.002 and status in ('COMPLETED', 'FAILED')
              then ${sqlId('evt', 'ms + 1000', 'e2', 'e1')} end,
         case when rm < $8 then $6 else ($7::text[])[(1 + n % cardinality($7::text[]))::int] end,
         status, provider,
         case provider when 'stripe' then 'USD' else 'KES' end,
         case provider when 'stripe' then 100 + (rt * 99900)::bigint else 100 * (1 + (rt * 500)::bigint) end,
         case provider when 'stripe' then '{"type": "card", "token": "pm_card_visa"}'::jsonb
              else jsonb_build_object('type', 'mpesa', 'phone', '2547' || lpad((n % 100000000)::text, 8, '0')) end,
         case when status = 'PENDING' then null
              when provider = 'stripe' then 'pi_' || substr(md5(n::text), 1, 24)
              else 'ws_CO_' || substr(md5(n::text), 1, 20) end,
         case when status <> 'FAILED' then null when provider = 'stripe' then 'card_declined' else '1032' end,
         case when status <> 'FAILED' then null when provider = 'stripe' then 'Your card was declined.'
              else 'Request cancelled by user' end,
         case when provider = 'mpesa' and status <> 'PENDING' then md5(n::text || 'cb') end,
         created_at,
         case when status <> 'PENDING' then created_at + interval '40 ms' end,
         case when status in ('COMPLETED', 'FAILED') then created_at + interval '1500 ms' + rt * interval '2 s' end,
         case when status = 'PROCESSING' and rr < 0.1 then created_at + interval '500 ms' end,
         case when rr < 0.05 and status = 'PROCESSING' then 'open'
              when rr < 0.002 and status in ('COMPLETED', 'FAILED') then 'resolved' end,
         case when rr < 0.05 and status = 'PROCESSING' or rr < 0.002 and status in ('COMPLETED', 'FAILED')
              then created_at + interval '1 s' end
    from s
   order by n`;

const INSERT_ORDERS = `
  insert into payment_orders (id, merchant_id, status, amount, currency, provider, payment_method, reference,
    description, metadata, provider_reference, failure_code, failure_message, idempotency_key, created_at,
    updated_at, processing_generation, callback_token, reconciling_since, next_attempt_at, review_reason, review_since)
  select id, merchant_id, status, amount, currency, provider, payment_method, 'order-' || n, null, '{}'::jsonb,
         provider_reference, failure_code, failure_message, 'load-' || n, created_at,
         coalesce(settled_at, review_at, moved_at, created_at), case when status = 'PENDING' then 0 else 1 end,
         callback_token, reconciling_since,
         case when status = 'PROCESSING' then coalesce(reconciling_since, moved_at) + interval '60 s' end,
         case when review = 'open' then 'outcome_unknown' end, case when review = 'open' then review_at end
    from bench_load order by n`;

const INSERT_TRANSITIONS = `
  insert into payment_order_transitions (order_id, from_status, to_status, reason, created_at)
  select l.id, t.from_status, t.to_status, t.reason, t.at
    from bench_load l
   cross join lateral (values
     (1, null, 'PENDING', 'accepted', l.created_at),
     (2, 'PENDING', 'PROCESSING', 'sending to ' || l.provider, l.moved_at),
     (3, 'PROCESSING', l.status,
         case when l.status = 'COMPLETED' then 'charge: succeeded' else 'charge: declined (' || l.failure_code || ')' end,
         l.settled_at)
   ) t (step, from_status, to_status, reason, at)
   where t.step <= case l.status when 'PENDING' then 1 when 'PROCESSING' then 2 else 3 end
   order by l.n, t.step`;

// The saved 201: orderDetailJson of the order as it was created (a PENDING order, one transition).
const INSERT_KEYS = `
  insert into idempotency_keys (merchant_id, idempotency_key, request_fingerprint, order_id, response_status,
    response_body, created_at, expires_at)
  select l.merchant_id, 'load-' || l.n, md5(l.n::text) || md5(l.n::text || 'fp'), l.id, 201,
         jsonb_build_object(${orderJsonSql("'PENDING'", 'l.created_at', false, 'null')},
           'attempts', '[]'::jsonb,
           'history', jsonb_build_array(jsonb_build_object('from', null, 'to', 'PENDING', 'reason', 'accepted',
             'at', ${iso('l.created_at')})),
           'reviews', '[]'::jsonb)::text,
         l.created_at, l.created_at + interval '24 hours'
    from bench_load l order by l.n`;

const INSERT_ATTEMPTS = `
  insert into provider_attempts (order_id, provider, attempt_number, kind, idempotency_key, started_at, ended_at,
    outcome, http_status, latency_ms, error, provider_reference, decline_code)
  select id, provider, 1, 'charge', id || ':1', moved_at, moved_at + interval '350 ms',
         case status when 'COMPLETED' then 'succeeded' when 'FAILED' then 'declined'
                     else case when reconciling_since is null then 'pending' else 'unknown' end end,
         case when status = 'FAILED' and provider = 'stripe' then 402
              when reconciling_since is not null then null else 200 end,
         350, case when reconciling_since is not null then 'timeout' end, provider_reference, failure_code
    from bench_load where status <> 'PENDING' order by n`;

const INSERT_REVIEWS = `
  insert into payment_order_reviews (id, order_id, reason, detail, opened_at, resolved_at, resolved_by,
    resolution, note)
  select review_id, id, 'outcome_unknown', 'The provider did not answer; it may have charged.', review_at,
         case when review = 'resolved' then settled_at end, case when review = 'resolved' then 'provider' end,
         case when review = 'resolved' then status end,
         case when review = 'resolved' then 'charge: ' || lower(status) end
    from bench_load where review is not null order by n`;

const INSERT_EVENTS = `
  insert into outbox_events (id, merchant_id, order_id, type, payload, created_at, relayed_at)
  select id, merchant_id, order_id, type, payload, created_at, created_at + interval '25 ms'
    from (
      select l.event_id as id, l.merchant_id, l.id as order_id,
             case l.status when 'COMPLETED' then 'payment_order.completed' else 'payment_order.failed' end as type,
             jsonb_build_object(${orderJsonSql('l.status', 'l.settled_at', true, 'null')}) as payload,
             l.settled_at as created_at
        from bench_load l where l.status in ('COMPLETED', 'FAILED')
      union all
      select l.review_event_id, l.merchant_id, l.id, 'payment_order.review_required',
             jsonb_build_object(${orderJsonSql(
               "'PROCESSING'", // a review is opened while the order is in flight
               'l.review_at',
               false,
               `jsonb_build_object('reason', 'outcome_unknown', 'since', ${iso('l.review_at')})`,
             )}),
             l.review_at
        from bench_load l where l.review is not null
    ) e
   order by created_at`;

/** What a create writes, analyzed after each phase's POST loop. */
const ANALYZED = ['payment_orders', 'payment_order_transitions', 'idempotency_keys'];

const VACUUMED = [
  'payment_orders',
  'payment_order_transitions',
  'idempotency_keys',
  'provider_attempts',
  'payment_order_reviews',
  'outbox_events',
];

/** BENCH_ORDERS orders and what belongs to them, LOAD_BATCH a transaction; false if Ctrl-C cut it short. */
async function loadOrders(databaseUrl: string, benchMerchantId: string): Promise<boolean> {
  const setup = createDb(createPool(databaseUrl, 2, 'bench-setup'));
  const others: string[] = [];
  try {
    for (let i = 1; i <= OTHER_MERCHANTS; i++) others.push((await ensureMerchant(setup, `scale-${i}`)).id);
  } finally {
    await setup.destroy();
  }
  return withClient(databaseUrl, async (client) => {
    const started = performance.now();
    const firstMs = Date.now() - HISTORY_MS;
    const triggersOff = await client
      .query('set session_replication_role = replica')
      .then(() => true)
      .catch(() => false);
    if (!triggersOff) process.stdout.write('  (session_replication_role not settable: triggers stay on)\n');
    for (let lo = 1; lo <= ORDERS; lo += LOAD_BATCH) {
      if (interrupted()) return false;
      const hi = Math.min(ORDERS, lo + LOAD_BATCH - 1);
      await client.query('begin');
      try {
        await client.query(CREATE_STAGING);
        await client.query(FILL_STAGING, [
          lo,
          hi,
          ORDERS,
          firstMs,
          HISTORY_MS,
          benchMerchantId,
          others,
          BENCH_MERCHANT_SHARE,
        ]);
        for (const statement of [
          INSERT_ORDERS,
          INSERT_TRANSITIONS,
          INSERT_KEYS,
          INSERT_ATTEMPTS,
          INSERT_REVIEWS,
          INSERT_EVENTS,
        ]) {
          await client.query(statement);
        }
        await client.query('commit');
      } catch (error) {
        await client.query('rollback').catch(() => {});
        throw error;
      }
      const seconds = (performance.now() - started) / 1_000;
      process.stdout.write(`  ${count(hi)} orders, ${seconds.toFixed(1)} s\n`);
    }
    if (triggersOff) await client.query('reset session_replication_role');
    const loadedSeconds = (performance.now() - started) / 1_000;

    const vacuumStarted = performance.now();
    await client.query(`vacuum (analyze) ${VACUUMED.join(', ')}`);
    const checkpointed = await client
      .query('checkpoint')
      .then(() => true)
      .catch(() => false);
    const vacuumSeconds = (performance.now() - vacuumStarted) / 1_000;

    const { rows } = await client.query<{ status: string; n: string; bench: string }>(
      `select status, count(*) as n, count(*) filter (where merchant_id = $1) as bench
         from payment_orders group by status order by status`,
      [benchMerchantId],
    );
    const sizes = await client.query<{ name: string; size: string }>(
      `select relname as name, pg_size_pretty(pg_total_relation_size(oid)) as size from pg_class
        where relname = any ($1::text[]) order by pg_total_relation_size(oid) desc`,
      [VACUUMED],
    );
    process.stdout.write(
      `loaded ${count(ORDERS)} orders in ${loadedSeconds.toFixed(1)} s ` +
        `(${Math.round(ORDERS / loadedSeconds)} orders/s, triggers ${triggersOff ? 'off' : 'on'}); ` +
        `vacuum (analyze)${checkpointed ? ' + checkpoint' : ''} ${vacuumSeconds.toFixed(1)} s\n` +
        `  by status (all merchants / bench merchant): ${rows.map((r) => `${r.status} ${r.n} / ${r.bench}`).join(', ')}\n` +
        `  sizes with indexes: ${sizes.rows.map((r) => `${r.name} ${r.size}`).join(', ')}\n`,
    );
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// Report

function report(empty: Phase, loaded: Phase | null): void {
  const ms = (o: Outcome | undefined, p: number) => (o ? percentile(o.latenciesMs, p).toFixed(1) : '-');
  const rate = (o: Outcome | undefined) => (o ? o.perSecond.toFixed(0) : '-');
  const label = count(ORDERS);
  const rows = OPERATIONS.map((operation) => {
    const before = empty.get(operation);
    const after = loaded?.get(operation);
    const p99Before = before ? percentile(before.latenciesMs, 0.99) : 0;
    const p99After = after ? percentile(after.latenciesMs, 0.99) : 0;
    const ratio = before && after && p99Before > 0 ? p99After / p99Before : null;
    const isMetrics = operation === METRICS;
    const met = !after
      ? '-'
      : (isMetrics ? p99After < METRICS_TARGET_MS : ratio !== null && ratio <= P99_RATIO_TARGET)
        ? 'met'
        : 'MISSED';
    return [
      operation,
      ms(before, 0.5),
      ms(before, 0.99),
      ms(after, 0.5),
      ms(after, 0.99),
      ratio === null ? '-' : `${ratio.toFixed(2)}×`,
      isMetrics ? `< ${METRICS_TARGET_MS} ms` : `≤ ${P99_RATIO_TARGET}×`,
      met,
      rate(before),
      rate(after),
    ];
  });
  const out: string[] = ['', `latency in ms; closed loops of ${CONCURRENCY} clients, ${SCRAPES} sequential scrapes`];
  out.push(
    formatTable(
      [
        'operation',
        'empty p50',
        'empty p99',
        `${label} p50`,
        `${label} p99`,
        'p99 ratio',
        'target',
        'result',
        'empty req/s',
        `${label} req/s`,
      ],
      rows,
    ),
  );
  out.push(
    `targets: p99 with ${label} orders ≤ ${P99_RATIO_TARGET}× p99 on the empty table; ` +
      `${METRICS} p99 (of ${SCRAPES}: the slowest) < ${METRICS_TARGET_MS} ms with ${label} orders`,
  );
  out.push(
    '',
    `CPU over each measured loop, % of one CPU (${availableParallelism()} CPUs): the machine = the gateway + ` +
      "its database connections + this bench + anything else's",
  );
  out.push(
    formatTable(
      ['operation', 'empty', label],
      OPERATIONS.map((operation) => [operation, empty.get(operation)?.cpu ?? '-', loaded?.get(operation)?.cpu ?? '-']),
    ),
  );
  out.push('', 'WAL per request over each loop (pg_stat_wal, the whole server): bytes, full-page images');
  out.push(
    formatTable(
      ['operation', 'empty', label],
      OPERATIONS.filter((operation) => operation !== METRICS).map((operation) => [
        operation,
        empty.get(operation)?.wal ?? '-',
        loaded?.get(operation)?.wal ?? '-',
      ]),
    ),
  );
  let failed = 0;
  for (const [name, phase] of [
    ['empty', empty],
    [label, loaded],
  ] as const) {
    for (const [operation, outcome] of phase ?? []) {
      for (const [failure, n] of outcome.failures) {
        failed += n;
        out.push(`${name}, ${operation}: ${n} × ${failure}`);
      }
    }
  }
  if (failed === 0) out.push('every request answered 200/201 (and every scrape had the database up)');
  const busiest = Math.max(
    0,
    ...[empty, loaded ?? new Map<Operation, Outcome>()].flatMap((phase) =>
      [...phase.values()].map((o) => o.otherCpu ?? 0),
    ),
  );
  if (busiest > OTHER_CPU_WARNING) {
    out.push(
      `warning: something else on this machine used up to ${Math.round(100 * busiest)} % of a CPU during a loop ` +
        '(column "other" above): its p99s compare this bench with that load, not only the two tables',
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

function progress(operation: string, o: Outcome, extra = ''): void {
  const failed = [...o.failures].map(([failure, n]) => `, ${n} × ${failure}`).join('');
  process.stdout.write(
    `  ${operation}: ${o.perSecond.toFixed(0)}/s, p50 ${percentile(o.latenciesMs, 0.5).toFixed(1)} ms, ` +
      `p99 ${percentile(o.latenciesMs, 0.99).toFixed(1)} ms${extra}${failed}; CPU ${o.cpu}\n`,
  );
}

type WalStats = Readonly<{ bytes: number; fpi: number }> | null;

/** The server's WAL so far (pg_stat_wal, PostgreSQL 14+; null without it): bytes and full-page images. */
async function walStats(databaseUrl: string): Promise<WalStats> {
  return withClient(databaseUrl, (client) =>
    client.query<{ bytes: string; fpi: string }>('select wal_bytes as bytes, wal_fpi as fpi from pg_stat_wal'),
  ).then(
    ({ rows }) => (rows[0] ? { bytes: Number(rows[0].bytes), fpi: Number(rows[0].fpi) } : null),
    () => null,
  );
}

/**
 * WAL per request over a loop, the whole server's (another database's writes count too): bytes, and
 * full-page images (a page's first change after a checkpoint logs the whole 8 kB page).
 */
function walText(before: WalStats, after: WalStats, requests: number): string {
  if (!before || !after || requests === 0) return '-';
  const bytes = (after.bytes - before.bytes) / requests;
  const fpi = (after.fpi - before.fpi) / requests;
  return `${bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} kB` : `${Math.round(bytes)} B`}, ${fpi.toFixed(2)} FPI`;
}

/**
 * The server processes serving the bench database (the gateway's and pg-boss's connections), so that
 * what the machine spent on anything else shows: another benchmark on this machine skews a p99.
 */
async function backendPids(databaseUrl: string): Promise<number[]> {
  return withClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ pid: number }>(
      'select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
    );
    return rows.map((row) => row.pid);
  });
}

/** CPU over the loop (% of one CPU): the machine, the gateway, its database connections, the bench, the rest. */
function cpuText(before: CpuSnapshot, pids: readonly (number | undefined)[]): { text: string; other: number | null } {
  const use = cpuUse(before, cpuSnapshot(pids));
  if (!use) return { text: 'n/a', other: null };
  const [gateway, bench, ...backends] = use.perPid;
  const database = backends.reduce<number>((sum, share) => sum + (share ?? 0), 0);
  const other = Math.max(0, use.machineBusy - (gateway ?? 0) - (bench ?? 0) - database);
  const pct = (share: number | null | undefined) =>
    share === null || share === undefined ? '?' : Math.round(100 * share);
  return {
    text: `${pct(use.machineBusy)} = gateway ${pct(gateway)} + database ${pct(database)} + bench ${pct(bench)} + other ${pct(other)}`,
    other,
  };
}

/** 1000000 → "1M", 100000 → "100k". */
function count(n: number): string {
  if (n >= 1_000_000 && n % 100_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1_000 && n % 1_000 === 0) return `${n / 1_000}k`;
  return String(n);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exitCode = 1;
});
