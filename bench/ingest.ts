// `npm run bench:ingest`: how fast does POST /payment-orders accept orders, and how close is that
// to what PostgreSQL can do with the same transaction and no HTTP, express or kysely around it?
//
// For each concurrency level (BENCH_CONCURRENCY, default "1,8,32") it runs, for BENCH_SECONDS
// (default 10) each:
//   1. HTTP: closed-loop clients POSTing orders with unique Idempotency-Keys to the real service,
//      which runs in a child process so that load generator and server do not share an event loop;
//   2. raw: the same SQL transaction the service runs for a create, on a plain `pg` Pool.
// Both run against one fresh database (pog_bench_<random>) on DATABASE_URL's server, or on a
// temporary embedded PostgreSQL when DATABASE_URL is unset. Everything is dropped at the end.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { availableParallelism } from 'node:os';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { loadConfig } from '../src/config/config.ts';
import { freePort } from '../src/db/embedded-postgres.ts';
import { newOrder, requestFingerprint } from '../src/domain/create-payment-order.ts';
import { orderDetailJson } from '../src/domain/order-json.ts';
import { ORDER_ID_PREFIX } from '../src/domain/payment-order.ts';
import { QUEUES } from '../src/jobs/queues.ts';
import { newId } from '../src/lib/ids.ts';
import { PGBOSS_SCHEMA } from '../src/service.ts';
import {
  BENCH_ORDER,
  type Cleanup,
  createMerchant,
  interrupted,
  openBenchDatabase,
  percentile,
  positiveNumber,
  runCleanups,
  spawnService,
  stopOnCtrlC,
} from './support.ts';

const SECONDS = positiveNumber('BENCH_SECONDS', process.env.BENCH_SECONDS, 10);
const LEVELS = concurrencyLevels(process.env.BENCH_CONCURRENCY ?? '1,8,32');
/** Untimed run before the first level, so JIT warm-up and pool connects are not in level 1. */
const WARMUP_SECONDS = Math.min(1, SECONDS);
const REQUEST_TIMEOUT_MS = 30_000;

const OPERATION = 'POST /payment-orders';
const PROVIDER = 'stripe'; // what routing picks for USD with the default configuration

type Outcome = Readonly<{ ok: number; perSecond: number; latenciesMs: number[]; failures: Map<string, number> }>;
type Row = Readonly<{ concurrency: number; http: Outcome; raw: Outcome }>;
type JobInsert = Readonly<{ text: string; values(orderId: string): unknown[] }>;

async function main(): Promise<void> {
  // The remaining levels are skipped; the current loop ends early.
  stopOnCtrlC('finishing the current loop');

  // Cleanup steps, run in reverse order whatever happens in between.
  const cleanups: Cleanup[] = [];
  try {
    const database = await openBenchDatabase(cleanups);

    const serviceEnv = {
      ...process.env,
      DATABASE_URL: database.url,
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      DEMO_MERCHANT: 'false',
    };
    // The raw loop gets as many connections as the service's pool, so both have the same budget.
    const poolSize = loadConfig(serviceEnv).databasePoolSize;
    const service = spawnService(serviceEnv);
    cleanups.push(service.stop);
    await service.ready; // the service has migrated the database and created the pg-boss queues

    const merchant = await createMerchant(database.url);
    const rawPool = new pg.Pool({ connectionString: database.url, max: poolSize, application_name: 'bench-raw' });
    rawPool.on('error', () => {}); // an idle client losing its server must not crash the bench
    cleanups.push(() => rawPool.end());
    const jobInsert = await captureJobInsert(database.url, rawPool);

    const version = (await rawPool.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v;
    process.stdout.write(
      `PostgreSQL ${version} (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'}), ${availableParallelism()} CPUs, ` +
        `${SECONDS} s per run, concurrency ${LEVELS.join(',')}, service and raw pools of ${poolSize} connections\n`,
    );

    const top = Math.max(...LEVELS);
    await runHttp(service.url, merchant.apiKey, top, WARMUP_SECONDS);
    await runRaw(rawPool, merchant.id, jobInsert, top, WARMUP_SECONDS);

    const rows: Row[] = [];
    for (const concurrency of LEVELS) {
      if (interrupted()) break;
      const httpOutcome = await runHttp(service.url, merchant.apiKey, concurrency, SECONDS);
      const rawOutcome = await runRaw(rawPool, merchant.id, jobInsert, concurrency, SECONDS);
      if (interrupted()) break; // a cut-short level would print a misleading rate
      rows.push({ concurrency, http: httpOutcome, raw: rawOutcome });
      process.stdout.write(
        `  concurrency ${concurrency}: ${Math.round(httpOutcome.perSecond)} req/s HTTP, ${Math.round(rawOutcome.perSecond)} tx/s raw\n`,
      );
    }
    printTable(rows);
    if (interrupted()) {
      process.stdout.write('interrupted: the levels above are complete, the rest were not run\n');
      process.exitCode = 130;
    }
  } finally {
    await runCleanups(cleanups);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP load

async function runHttp(baseUrl: string, apiKey: string, concurrency: number, seconds: number): Promise<Outcome> {
  // One kept-alive socket per client, as a real client pool would hold.
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL('/payment-orders', baseUrl);
  const body = JSON.stringify(BENCH_ORDER);
  try {
    return await closedLoop(concurrency, seconds, async () => {
      const status = await post(agent, url, body, {
        Authorization: `Bearer ${apiKey}`,
        'Content-Type': 'application/json',
        'Content-Length': String(Buffer.byteLength(body)),
        'Idempotency-Key': `bench-${randomUUID()}`,
      });
      return status === 201 ? null : `HTTP ${status}`;
    });
  } finally {
    agent.destroy();
  }
}

function post(agent: http.Agent, url: URL, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      res.resume(); // the body is not needed, but must be read for the socket to be reused
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Raw pg: the service's create transaction, statement for statement (the SQL kysely generates)

const CLAIM_KEY_SQL =
  'insert into "idempotency_keys" ("merchant_id", "idempotency_key", "request_fingerprint", "expires_at") ' +
  'values ($1, $2, $3, now() + make_interval(hours => $4)) on conflict ("merchant_id", "idempotency_key") do update set ' +
  '"request_fingerprint" = "excluded"."request_fingerprint", "order_id" = $5, "response_status" = $6, "response_body" = $7, ' +
  '"created_at" = now(), "expires_at" = "excluded"."expires_at" where "idempotency_keys"."expires_at" <= now() returning "merchant_id"';
const INSERT_ORDER_SQL =
  'insert into "payment_orders" ("id", "merchant_id", "status", "amount", "currency", "provider", "payment_method", ' +
  '"reference", "description", "metadata", "idempotency_key", "created_at", "updated_at") ' +
  'values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)';
const INSERT_TRANSITION_SQL =
  'insert into "payment_order_transitions" ("order_id", "from_status", "to_status", "reason") values ($1, $2, $3, $4)';
const SAVE_RESPONSE_SQL =
  'update "idempotency_keys" set "order_id" = $1, "response_status" = $2, "response_body" = $3 ' +
  'where "merchant_id" = $4 and "idempotency_key" = $5';
const TTL_HOURS = 24;

/**
 * The exact statement pg-boss sends for `boss.send(QUEUES.processPaymentOrder, { orderId })`,
 * captured once through its `db` option on a raw client (and rolled back), then replayed by the
 * raw loop with the new order's id in the job's data.
 */
async function captureJobInsert(databaseUrl: string, pool: pg.Pool): Promise<JobInsert> {
  const boss = new PgBoss({
    connectionString: databaseUrl,
    schema: PGBOSS_SCHEMA,
    supervise: false,
    schedule: false,
    max: 1,
  });
  boss.on('error', () => {});
  await boss.start();
  const client = await pool.connect();
  const marker = newId(ORDER_ID_PREFIX);
  let captured: { text: string; values: unknown[] } | null = null;
  try {
    await client.query('begin');
    await boss.send(
      QUEUES.processPaymentOrder,
      { orderId: marker },
      {
        db: {
          executeSql: (text: string, values: unknown[] = []) => {
            captured = { text, values };
            return client.query(text, values);
          },
        },
      },
    );
  } finally {
    await client.query('rollback');
    client.release();
    await boss.stop({ graceful: false, close: true });
  }
  return jobInsertTemplate(captured, marker);
}

/** pg-boss sends one parameter, a JSON array of jobs; ours is the one whose data holds the marker. */
function jobInsertTemplate(captured: { text: string; values: unknown[] } | null, marker: string): JobInsert {
  const [param, ...rest] = captured?.values ?? [];
  const jobs: unknown = typeof param === 'string' ? JSON.parse(param) : null;
  const job = Array.isArray(jobs) && jobs.length === 1 ? (jobs[0] as { data?: { orderId?: unknown } }) : null;
  if (!captured || rest.length > 0 || job?.data?.orderId !== marker) {
    throw new Error(`pg-boss's job insert no longer looks as expected: ${JSON.stringify(captured?.values)}`);
  }
  const text = captured.text;
  return { text, values: (orderId) => [JSON.stringify([{ ...job, data: { orderId } }])] };
}

async function runRaw(
  pool: pg.Pool,
  merchantId: string,
  jobInsert: JobInsert,
  concurrency: number,
  seconds: number,
): Promise<Outcome> {
  return closedLoop(concurrency, seconds, async () => {
    await createOrderRaw(pool, merchantId, jobInsert, `bench-${randomUUID()}`);
    return null;
  });
}

/** What createPaymentOrder does for a new key, including the values it computes on the way. */
async function createOrderRaw(pool: pg.Pool, merchantId: string, jobInsert: JobInsert, key: string): Promise<void> {
  const fingerprint = requestFingerprint(OPERATION, BENCH_ORDER);
  const client = await pool.connect();
  try {
    await client.query('begin');
    const claimed = await client.query(CLAIM_KEY_SQL, [merchantId, key, fingerprint, TTL_HOURS, null, null, null]);
    if (claimed.rowCount !== 1) throw new Error('idempotency key already taken');
    const order = newOrder(merchantId, PROVIDER, BENCH_ORDER, new Date());
    await client.query(INSERT_ORDER_SQL, [
      order.id,
      merchantId,
      order.status,
      order.amount,
      order.currency,
      order.provider,
      JSON.stringify(order.paymentMethod),
      order.reference,
      order.description,
      JSON.stringify(order.metadata),
      key,
      order.createdAt,
      order.updatedAt,
    ]);
    await client.query(INSERT_TRANSITION_SQL, [order.id, null, 'PENDING', 'accepted']);
    await client.query(jobInsert.text, jobInsert.values(order.id));
    const body = JSON.stringify(
      orderDetailJson(order, [{ from: null, to: 'PENDING', reason: 'accepted', at: order.createdAt }], []),
    );
    await client.query(SAVE_RESPONSE_SQL, [order.id, 201, body, merchantId, key]);
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

// ---------------------------------------------------------------------------------------------
// Load loop and report

/**
 * `concurrency` workers, each running `attempt` back to back until the time is up. An attempt
 * returns null on success or a label for a failure; a throw is a failure labelled by its message.
 * The rate is successes over the wall time until the last attempt in flight has finished.
 */
async function closedLoop(
  concurrency: number,
  seconds: number,
  attempt: () => Promise<string | null>,
): Promise<Outcome> {
  const latenciesMs: number[] = [];
  const failures = new Map<string, number>();
  const started = performance.now();
  const deadline = started + seconds * 1_000;
  const worker = async () => {
    while (performance.now() < deadline && !interrupted()) {
      const t0 = performance.now();
      const failure = await attempt().catch((error: unknown) => `error: ${(error as Error)?.message ?? String(error)}`);
      if (failure === null) latenciesMs.push(performance.now() - t0);
      else failures.set(failure, (failures.get(failure) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedSeconds = (performance.now() - started) / 1_000;
  return { ok: latenciesMs.length, perSecond: latenciesMs.length / elapsedSeconds, latenciesMs, failures };
}

function printTable(rows: readonly Row[]): void {
  const header = ['concurrency', 'http req/s', 'p50 ms', 'p99 ms', 'raw tx/s', 'ratio'];
  const lines = rows.map((row) => [
    String(row.concurrency),
    row.http.perSecond.toFixed(0),
    percentile(row.http.latenciesMs, 0.5).toFixed(1),
    percentile(row.http.latenciesMs, 0.99).toFixed(1),
    row.raw.perSecond.toFixed(0),
    row.raw.perSecond > 0 ? `${((100 * row.http.perSecond) / row.raw.perSecond).toFixed(0)} %` : 'n/a',
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...lines.map((line) => line[i]?.length ?? 0)));
  const format = (cells: readonly string[]) => cells.map((cell, i) => cell.padStart(widths[i] ?? 0)).join('  ');
  process.stdout.write(`\n${format(header)}\n${lines.map(format).join('\n')}\n`);
  process.stdout.write('ratio = HTTP req/s / raw tx/s (target ≥ 50 %); latencies are of 201 responses\n');
  for (const row of rows) {
    for (const [kind, outcome] of [
      ['HTTP', row.http],
      ['raw', row.raw],
    ] as const) {
      for (const [failure, count] of outcome.failures) {
        process.stdout.write(`concurrency ${row.concurrency}, ${kind}: ${count} × ${failure}\n`);
      }
    }
  }
  const failed = rows.reduce((n, row) => n + sum(row.http.failures) + sum(row.raw.failures), 0);
  if (failed === 0 && rows.length > 0)
    process.stdout.write('every HTTP request answered 201; every raw transaction committed\n');
}

function sum(counts: ReadonlyMap<string, number>): number {
  let total = 0;
  for (const count of counts.values()) total += count;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function concurrencyLevels(raw: string): number[] {
  const levels = raw.split(',').map((part) => Number(part.trim()));
  if (levels.length === 0 || levels.some((n) => !Number.isInteger(n) || n < 1 || n > 1_000)) {
    throw new Error(`BENCH_CONCURRENCY must be a comma-separated list of integers from 1 to 1000, got "${raw}"`);
  }
  return levels;
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exitCode = 1;
});
