// `npm run bench:ingest`: how much of its database's capacity does the gateway turn into accepted
// orders? Side by side, in one run, on one fresh database (DATABASE_URL's server, or a temporary
// embedded PostgreSQL when it is unset):
//   1. pgbench — PostgreSQL's own load generator — running bench/ingest.pgbench.sql: the rows one
//      accepted order is (idempotency key with its saved response, order, first transition, pg-boss
//      job), one transaction each, prepared; at BENCH_PGBENCH_CLIENTS (default "1,8,16,32,64").
//      Its best tps is the ceiling. Before it runs, the job row it writes is compared with one
//      pg-boss wrote for a real create: the bench stops if they differ.
//   2. the gateway (a child process, as `npm start` runs it): closed-loop clients POSTing orders
//      with unique Idempotency-Keys, at BENCH_CONCURRENCY (default "1,16,64,128,256"). ratio =
//      req/s ÷ pgbench's best tps; the target is ≥ 50 % where the gateway peaks.
//   3. open loops at half the gateway's peak and at half the target (25 % of pgbench's best):
//      requests at a fixed rate, latency counted from when
//      each was due (so a stall shows up as latency, not as fewer requests); target p99 ≤ 20 ms.
//   4. GET /payment-orders/{id} and the list, closed loop at BENCH_READ_CONCURRENCY (default 16).
//   5. two gateway instances on the one database, the peak concurrency split between them.
// Each run lasts BENCH_SECONDS (default 10). Everything is dropped at the end.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../src/db/embedded-postgres.ts';
import {
  BENCH_ORDER,
  type Cleanup,
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
  positiveNumber,
  type Reply,
  ROOT,
  runCleanups,
  type ServiceProcess,
  spawnService,
  stopOnCtrlC,
} from './support.ts';

const SECONDS = positiveNumber('BENCH_SECONDS', process.env.BENCH_SECONDS, 10);
const LEVELS = levels('BENCH_CONCURRENCY', '1,16,64,128,256');
const PGBENCH_CLIENTS = levels('BENCH_PGBENCH_CLIENTS', '1,8,16,32,64');
const READ_CONCURRENCY = levels('BENCH_READ_CONCURRENCY', '16')[0] as number;
/** Untimed runs first, so JIT warm-up and pool connects are in no figure. */
const WARMUP_SECONDS = Math.min(2, SECONDS);
const PGBENCH_SCRIPT = path.join(ROOT, 'bench', 'ingest.pgbench.sql');
const P99_TARGET_MS = 20;
const RATIO_TARGET = 0.5;

type Outcome = Measured;
type Level = Readonly<{ concurrency: number; outcome: Outcome; cpu: string }>;
type OpenRun = Readonly<{ label: string; rate: number; outcome: Outcome }>;

async function main(): Promise<void> {
  stopOnCtrlC('finishing the current run');
  const cleanups: Cleanup[] = [];
  try {
    const database = await openBenchDatabase(cleanups);
    const env = async (): Promise<NodeJS.ProcessEnv> => ({
      ...process.env,
      DATABASE_URL: database.url,
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      DEMO_MERCHANT: 'false',
      // e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the gateway under this load
      ...(process.env.BENCH_GATEWAY_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_GATEWAY_NODE_OPTIONS } : {}),
    });
    const service = spawnService(await env(), 'gateway');
    cleanups.push(service.stop);
    await service.ready; // migrated, queues created
    const merchant = await createMerchant(database.url);
    const pool = new pg.Pool({ connectionString: database.url, max: 2 });
    pool.on('error', () => {});
    cleanups.push(() => pool.end());
    const version = (await pool.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v;
    process.stdout.write(
      `PostgreSQL ${version} (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'}), ${availableParallelism()} CPUs, ` +
        `${SECONDS} s per run; gateway as \`npm start\` runs it (defaults: CREATE_BATCH_MAX 100, CREATE_BATCHES_IN_FLIGHT 4)\n`,
    );

    // pgbench's rows must be the gateway's: one real create first, then compare.
    const client = createClient([service.url], merchant.apiKey);
    const first = await client.post();
    if (first.status !== 201) throw new Error(`the first create answered ${first.status}`);
    const bodyLength = await checkPgbenchRows(
      pool,
      database.url,
      merchant.id,
      (JSON.parse(first.body) as { id: string }).id,
    );

    const pgbench: Level[] = [];
    await runPgbench(database.url, merchant.id, bodyLength, Math.max(...PGBENCH_CLIENTS), WARMUP_SECONDS);
    for (const clients of PGBENCH_CLIENTS) {
      if (interrupted()) break;
      const before = cpuSnapshot([]);
      const outcome = await runPgbench(database.url, merchant.id, bodyLength, clients, SECONDS);
      pgbench.push({ concurrency: clients, outcome, cpu: cpuText(before, []) });
      progress(`pgbench -c ${clients}`, outcome);
    }

    const gateway: Level[] = [];
    await closedLoop(Math.max(...LEVELS), WARMUP_SECONDS, client.post);
    for (const concurrency of LEVELS) {
      if (interrupted()) break;
      const before = cpuSnapshot([service.pid, process.pid]);
      const outcome = await closedLoop(concurrency, SECONDS, client.post);
      gateway.push({ concurrency, outcome, cpu: cpuText(before, [service.pid, process.pid]) });
      progress(`gateway, ${concurrency} clients`, outcome);
    }
    const ceiling = best(pgbench);
    const peak = best(gateway);

    // Two readings of "half the load": half the gateway's peak, and half the target (50 % of pgbench).
    const opens: OpenRun[] = [];
    const openRates: Array<[string, number]> = [];
    if (peak) openRates.push(["half the gateway's peak", peak.outcome.perSecond / 2]);
    if (ceiling) openRates.push(['half the target (25 % of pgbench)', (ceiling.outcome.perSecond * RATIO_TARGET) / 2]);
    for (const [label, perSecond] of openRates) {
      if (interrupted()) break;
      const rate = Math.max(1, Math.round(perSecond));
      const outcome = await openLoop(rate, SECONDS, client.post);
      opens.push({ label, rate, outcome });
      progress(`open loop at ${rate}/s`, outcome);
    }

    const reads: Array<[string, Outcome]> = [];
    if (!interrupted()) {
      const ids = (
        await pool.query<{ id: string }>(
          "select id from payment_orders where merchant_id = $1 and id not like 'po_pgbench%' limit 10000",
          [merchant.id],
        )
      ).rows.map((row) => row.id);
      for (const [name, path] of [
        ['GET /payment-orders/{id}', () => `/payment-orders/${ids[Math.floor(Math.random() * ids.length)]}`],
        ['GET /payment-orders?limit=10', () => '/payment-orders?limit=10'],
      ] as const) {
        if (interrupted()) break;
        await closedLoop(READ_CONCURRENCY, WARMUP_SECONDS, () => client.get(path()));
        const outcome = await closedLoop(READ_CONCURRENCY, SECONDS, () => client.get(path()));
        reads.push([name, outcome]);
        progress(name, outcome);
      }
    }

    let two: Level | null = null;
    if (peak && !interrupted()) {
      const second = spawnService(await env(), 'gateway-2');
      cleanups.push(second.stop);
      await second.ready;
      const both = createClient([service.url, second.url], merchant.apiKey);
      await closedLoop(peak.concurrency, WARMUP_SECONDS, both.post);
      const pids = [service.pid, second.pid, process.pid];
      const before = cpuSnapshot(pids);
      const outcome = await closedLoop(peak.concurrency, SECONDS, both.post);
      two = { concurrency: peak.concurrency, outcome, cpu: cpuText(before, pids, ['gateway 1', 'gateway 2']) };
      progress(`two gateways, ${peak.concurrency} clients`, outcome);
      await stopService(second, cleanups);
    }

    report({ pgbench, gateway, ceiling, peak, opens, reads, two });
    if (interrupted()) {
      process.stdout.write('interrupted: the runs above are complete, the rest were not run\n');
      process.exitCode = 130;
    }
  } finally {
    await runCleanups(cleanups);
  }
}

// ---------------------------------------------------------------------------------------------
// pgbench

/**
 * Runs the script once (one transaction) and compares its rows with the real create's: the job
 * column for column (but ids, payload and times, whose offsets must match instead), the saved
 * response's size. The columns a worker changes when it takes the job are not compared (the
 * gateway's workers run, as under `npm start`). Returns the size the pgbench body is given.
 */
async function checkPgbenchRows(pool: pg.Pool, url: string, merchantId: string, orderId: string): Promise<number> {
  const saved = await pool.query<{ n: number }>(
    'select length(response_body)::int as n from idempotency_keys where order_id = $1',
    [orderId],
  );
  const bodyLength = saved.rows[0]?.n ?? 0;
  await pgbenchProcess(url, merchantId, bodyLength, ['-c', '1', '-t', '1']);
  const jobs = await pool.query(
    `select *, keep_until - start_after as kept, start_after - created_on as delay
     from pgboss.job where name = 'payment-orders.process' and (data->>'orderId' = $1 or data->>'orderId' like 'po_pgbench_%')`,
    [orderId],
  );
  const ours = jobs.rows.find((row) => row.data.orderId === orderId);
  const theirs = jobs.rows.find((row) => row.data.orderId !== orderId);
  if (!ours || !theirs) throw new Error(`expected two jobs to compare, found ${jobs.rows.length}`);
  // Ids, payload and times differ by nature; the lifecycle columns move once a worker takes the job.
  const skip = new Set(['id', 'data', 'created_on', 'start_after', 'keep_until']);
  for (const lifecycle of ['state', 'retry_count', 'started_on', 'completed_on', 'heartbeat_on', 'output']) {
    skip.add(lifecycle);
  }
  const differ = Object.keys(ours).filter(
    (column) => !skip.has(column) && JSON.stringify(ours[column]) !== JSON.stringify(theirs[column]),
  );
  if (JSON.stringify(Object.keys(ours.data).sort()) !== JSON.stringify(Object.keys(theirs.data).sort())) {
    differ.push('data (keys)');
  }
  if (differ.length > 0) {
    const show = differ.map((c) => `${c}: pg-boss ${JSON.stringify(ours[c])}, pgbench ${JSON.stringify(theirs[c])}`);
    throw new Error(`bench/ingest.pgbench.sql no longer writes the job pg-boss writes:\n  ${show.join('\n  ')}`);
  }
  process.stdout.write(
    `pgbench's rows checked against a real create: the pg-boss job matches column for column; saved response ${bodyLength} bytes\n`,
  );
  return bodyLength;
}

async function runPgbench(
  url: string,
  merchantId: string,
  bodyLength: number,
  clients: number,
  seconds: number,
): Promise<Outcome> {
  const logDir = await mkdtemp(path.join(tmpdir(), 'pgbench-log-'));
  try {
    const threads = Math.min(clients, availableParallelism());
    const output = await pgbenchProcess(url, merchantId, bodyLength, [
      ...['-c', String(clients), '-j', String(threads), '-T', String(Math.round(seconds))],
      ...['-l', '--log-prefix', path.join(logDir, 'tx')],
    ]);
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(output)?.[1] ?? Number.NaN);
    const failed = Number(/number of failed transactions: (\d+)/.exec(output)?.[1] ?? 0);
    // Per-transaction log lines: client_id transaction_no latency_us script_no epoch_s epoch_us
    const latenciesMs: number[] = [];
    for (const file of await readdir(logDir)) {
      for (const line of (await readFile(path.join(logDir, file), 'utf8')).split('\n')) {
        const latencyUs = Number(line.split(' ')[2]);
        if (line !== '' && Number.isFinite(latencyUs)) latenciesMs.push(latencyUs / 1000);
      }
    }
    const failures = new Map<string, number>(failed > 0 ? [['failed transactions', failed]] : []);
    return { perSecond: tps, latenciesMs, failures };
  } finally {
    await rm(logDir, { recursive: true, force: true });
  }
}

function pgbenchProcess(url: string, merchantId: string, bodyLength: number, args: string[]): Promise<string> {
  const fullArgs = [
    ...['-n', '-M', 'prepared', '-f', PGBENCH_SCRIPT],
    ...['-D', `merchant=${merchantId}`, '-D', `body=${'x'.repeat(Math.max(1, bodyLength))}`],
    ...args,
    url,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('pgbench', fullArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk;
    });
    child.once('error', (error) =>
      reject(
        new Error(
          `could not run pgbench (${error.message}): install PostgreSQL's client tools, e.g. apt-get install postgresql-client`,
        ),
      ),
    );
    child.once('exit', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`pgbench exited with ${code}:\n${output}`)),
    );
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP load

type Client = Readonly<{
  post(): Promise<Reply>;
  get(path: string): Promise<Reply>;
}>;

/** Requests spread round-robin over `urls`, one kept-alive agent per base URL. */
function createClient(urls: readonly string[], apiKey: string): Client {
  const agents = urls.map(() => new http.Agent({ keepAlive: true, maxSockets: 1024 }));
  const body = JSON.stringify(BENCH_ORDER);
  let next = 0;
  const pick = () => {
    const i = next++ % urls.length;
    return { base: urls[i] as string, agent: agents[i] as http.Agent };
  };
  return {
    post: () => {
      const { base, agent } = pick();
      return httpRequest(agent, new URL('/payment-orders', base), 'POST', body, {
        Authorization: `Bearer ${apiKey}`,
        'Content-Type': 'application/json',
        'Content-Length': String(Buffer.byteLength(body)),
        'Idempotency-Key': `bench-${randomUUID()}`,
      });
    },
    get: (path) => {
      const { base, agent } = pick();
      return httpRequest(agent, new URL(path, base), 'GET', null, { Authorization: `Bearer ${apiKey}` });
    },
  };
}

/**
 * `rate` requests a second for `seconds`, each sent when it is due whatever the others are doing;
 * latency runs from when it was due (no coordinated omission: a stall counts against every request
 * it delayed). The schedule is checked every millisecond.
 */
async function openLoop(rate: number, seconds: number, send: () => Promise<{ status: number }>): Promise<Outcome> {
  const latenciesMs: number[] = [];
  const failures = new Map<string, number>();
  const total = Math.round(rate * seconds);
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let sent = 0; sent < total && !interrupted(); ) {
    const now = performance.now();
    for (; sent < total && started + (sent * 1_000) / rate <= now; sent++) {
      const due = started + (sent * 1_000) / rate;
      inFlight.push(
        send().then(
          (res) => {
            if (res.status === 201) latenciesMs.push(performance.now() - due);
            else failures.set(`HTTP ${res.status}`, (failures.get(`HTTP ${res.status}`) ?? 0) + 1);
          },
          (error: unknown) => {
            const label = `error: ${(error as Error)?.message ?? String(error)}`;
            failures.set(label, (failures.get(label) ?? 0) + 1);
          },
        ),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(inFlight);
  const elapsedSeconds = (performance.now() - started) / 1_000;
  return { perSecond: latenciesMs.length / elapsedSeconds, latenciesMs, failures };
}

// ---------------------------------------------------------------------------------------------
// Report

type Report = Readonly<{
  pgbench: readonly Level[];
  gateway: readonly Level[];
  ceiling: Level | null;
  peak: Level | null;
  opens: readonly OpenRun[];
  reads: ReadonlyArray<[string, Outcome]>;
  two: Level | null;
}>;

function report(r: Report): void {
  const ceiling = r.ceiling?.outcome.perSecond ?? 0;
  const ratio = (perSecond: number) => (ceiling > 0 ? `${((100 * perSecond) / ceiling).toFixed(0)} %` : 'n/a');
  const figures = (o: Outcome) => [
    o.perSecond.toFixed(0),
    percentile(o.latenciesMs, 0.5).toFixed(1),
    percentile(o.latenciesMs, 0.99).toFixed(1),
  ];
  const out: string[] = [''];
  out.push('pgbench (bench/ingest.pgbench.sql: key + order + transition + job, one transaction, prepared)');
  out.push(
    formatTable(
      ['clients', 'tps', 'p50 ms', 'p99 ms', 'CPU'],
      r.pgbench.map((l) => [String(l.concurrency), ...figures(l.outcome), l.cpu]),
    ),
  );
  out.push('', 'gateway, POST /payment-orders (closed loop, unique keys)');
  out.push(
    formatTable(
      ['clients', 'req/s', 'p50 ms', 'p99 ms', 'of pgbench', 'CPU'],
      r.gateway.map((l) => [String(l.concurrency), ...figures(l.outcome), ratio(l.outcome.perSecond), l.cpu]),
    ),
  );
  if (r.two) {
    out.push('', 'two gateway instances on the one database (requests alternate between them)');
    out.push(
      formatTable(
        ['clients', 'req/s', 'p50 ms', 'p99 ms', 'of pgbench', 'CPU'],
        [[String(r.two.concurrency), ...figures(r.two.outcome), ratio(r.two.outcome.perSecond), r.two.cpu]],
      ),
    );
  }
  if (r.reads.length > 0) {
    out.push('', `reads (closed loop, ${READ_CONCURRENCY} clients)`);
    out.push(
      formatTable(
        ['request', 'req/s', 'p50 ms', 'p99 ms'],
        r.reads.map(([name, o]) => [name, ...figures(o)]),
      ),
    );
  }
  out.push('');
  if (r.peak && r.ceiling) {
    const share = r.peak.outcome.perSecond / ceiling;
    out.push(
      `ratio at the gateway's peak (${r.peak.concurrency} clients): ${r.peak.outcome.perSecond.toFixed(0)} req/s ÷ pgbench's best ` +
        `${ceiling.toFixed(0)} tps (${r.ceiling.concurrency} clients) = ${(100 * share).toFixed(0)} %, target ≥ ${100 * RATIO_TARGET} %: ${share >= RATIO_TARGET ? 'met' : 'MISSED'}`,
    );
  }
  for (const open of r.opens) {
    const p99 = percentile(open.outcome.latenciesMs, 0.99);
    out.push(
      `open loop at ${open.label} (${open.rate} req/s due, ${open.outcome.perSecond.toFixed(0)} answered/s): ` +
        `p50 ${percentile(open.outcome.latenciesMs, 0.5).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, target ≤ ${P99_TARGET_MS} ms: ${p99 <= P99_TARGET_MS ? 'met' : 'MISSED'}`,
    );
  }
  const all: Array<[string, Outcome]> = [
    ...r.pgbench.map((l): [string, Outcome] => [`pgbench -c ${l.concurrency}`, l.outcome]),
    ...r.gateway.map((l): [string, Outcome] => [`gateway ${l.concurrency} clients`, l.outcome]),
    ...(r.two ? [[`two gateways`, r.two.outcome] as [string, Outcome]] : []),
    ...r.opens.map((open): [string, Outcome] => [`open loop at ${open.rate}/s`, open.outcome]),
    ...r.reads,
  ];
  let failed = 0;
  for (const [name, outcome] of all) {
    for (const [failure, count] of outcome.failures) {
      failed += count;
      out.push(`${name}: ${count} × ${failure}`);
    }
  }
  if (failed === 0) out.push('every request answered 200/201; every pgbench transaction committed');
  process.stdout.write(`${out.join('\n')}\n`);
}

function progress(what: string, o: Outcome): void {
  process.stdout.write(
    `  ${what}: ${o.perSecond.toFixed(0)}/s, p99 ${percentile(o.latenciesMs, 0.99).toFixed(1)} ms` +
      `${o.failures.size > 0 ? `, ${[...o.failures.values()].reduce((a, b) => a + b, 0)} failed` : ''}\n`,
  );
}

/** CPU over the run: the machine, then each named process (the rest is mostly PostgreSQL). */
function cpuText(
  before: ReturnType<typeof cpuSnapshot>,
  pids: readonly (number | undefined)[],
  names: readonly string[] = ['gateway'],
): string {
  const use = cpuUse(before, cpuSnapshot(pids));
  if (!use) return 'n/a';
  const labels = [...names, 'bench'];
  const per = use.perPid
    .slice(0, pids.length)
    .map((share, i) => `${labels[i] ?? `pid ${i}`} ${share === null ? '?' : Math.round(100 * share)}`)
    .join(', ');
  return `${Math.round(100 * use.machineBusy)} %${per ? ` (${per})` : ''}`;
}

function best(levels: readonly Level[]): Level | null {
  return levels.reduce<Level | null>((top, l) => (!top || l.outcome.perSecond > top.outcome.perSecond ? l : top), null);
}

async function stopService(service: ServiceProcess, cleanups: Cleanup[]): Promise<void> {
  await service.stop();
  const i = cleanups.indexOf(service.stop);
  if (i >= 0) cleanups.splice(i, 1);
}

function levels(name: string, fallback: string): number[] {
  const raw = process.env[name] ?? fallback;
  const values = raw.split(',').map((part) => Number(part.trim()));
  if (values.length === 0 || values.some((n) => !Number.isInteger(n) || n < 1 || n > 1_000)) {
    throw new Error(`${name} must be a comma-separated list of integers from 1 to 1000, got "${raw}"`);
  }
  return values;
}

await main();
