// The database goes away (stopped, crashed, not yet started) under a running gateway, on a
// PostgreSQL of this file's own (test/helpers/postgres-server.ts), never the suite's shared one:
// every answer meanwhile is 503 database_unavailable with Retry-After (never 500), nothing accepted
// is lost, the service heals by itself, and an instance started while the database is down waits.
import pg from 'pg';
import t, { type Test } from 'tap';
import { isDatabaseUnavailable, unavailableCode } from '../src/db/database-errors.ts';
import { DATABASE_RETRY_AFTER_SECONDS } from '../src/http/middleware.ts';
import type { TestDatabase } from './helpers/database.ts';
import { spawnGatewayProcess, tempDataDir, untilListening } from './helpers/gateway-process.ts';
import { type PostgresServer, type StopMode, startPostgresServer } from './helpers/postgres-server.ts';
import { type ApiClient, type ApiResponse, startTestService, validOrder } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

/** Our own server as a TestDatabase, for startTestService and for assertions on the rows. */
function databaseOn(t: Test, server: PostgresServer): TestDatabase {
  const pool = new pg.Pool({ connectionString: server.url, max: 2 });
  // Its connections die with the server; queries report that, the pool replaces them.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  t.teardown(() => pool.end());
  const rows = async (text: string, values: unknown[] = []) => (await pool.query(text, values)).rows;
  return {
    name: 'postgres',
    url: server.url,
    pool,
    rows,
    count: async (table, where = 'true', values = []) =>
      Number((await pool.query(`select count(*)::int as n from ${table} where ${where}`, values)).rows[0].n),
  };
}

type Answer = Readonly<{
  at: number;
  request: 'POST /payment-orders' | 'GET /payment-orders/:id' | 'GET /payment-orders';
  status: number;
  code: string | undefined;
  retryAfter: string | null;
  contentType: string | null;
}>;

/**
 * Clients in a loop, as merchants would be: create an order (a fresh Idempotency-Key once one was
 * accepted, the same key again after a failure, as a retrying client does), read it back, list.
 * Bounded in requests; stop() ends the loops.
 */
function startLoad(api: ApiClient, clients: number, maxRequestsEach = 20_000) {
  const answers: Answer[] = [];
  /** Every 201 and replayed 201: key → order ids it answered. */
  const accepted = new Map<string, Set<string>>();
  let stopping = false;
  const ask = async (request: Answer['request'], call: () => Promise<ApiResponse>) => {
    let response: ApiResponse;
    try {
      response = await call();
    } catch (error) {
      // The service itself must stay reachable: a refused or broken connection is a failure.
      answers.push({ at: Date.now(), request, status: 0, code: String(error), retryAfter: null, contentType: null });
      return null;
    }
    answers.push({
      at: Date.now(),
      request,
      status: response.status,
      code: typeof response.body === 'object' ? response.body?.code : undefined,
      retryAfter: response.headers.get('retry-after'),
      contentType: response.headers.get('content-type'),
    });
    return response;
  };
  const client = async (n: number) => {
    let key = `outage-${n}-${crypto.randomUUID()}`;
    let lastId: string | null = null;
    for (let i = 0; !stopping && i < maxRequestsEach; i += 3) {
      const created = await ask('POST /payment-orders', () => api.createOrder(validOrder, key));
      if (created?.status === 201) {
        const ids = accepted.get(key) ?? new Set<string>();
        ids.add(created.body.id);
        accepted.set(key, ids);
        lastId = created.body.id;
        key = `outage-${n}-${crypto.randomUUID()}`;
      }
      if (lastId) await ask('GET /payment-orders/:id', () => api.get(`/payment-orders/${lastId}`));
      await ask('GET /payment-orders', () => api.get('/payment-orders?limit=5'));
    }
  };
  const running = Promise.all(Array.from({ length: clients }, (_, n) => client(n)));
  return {
    answers,
    accepted,
    stop: async () => {
      stopping = true;
      await running;
    },
  };
}

function tally(answers: readonly Answer[]): Record<string, number> {
  const counts: Record<string, number> = { '201': 0, '200': 0, '503': 0, other: 0 };
  for (const { status } of answers) {
    const key = String(status);
    if (key in counts) counts[key]!++;
    else counts.other!++;
  }
  return counts;
}

for (const mode of ['fast', 'immediate'] as const satisfies readonly StopMode[]) {
  t.test(`PostgreSQL stopped (-m ${mode}) for 3 s under load: 503s, never 500, nothing accepted lost`, async (t) => {
    const server = await startPostgresServer(t);
    const database = databaseOn(t, server);
    const service = await startTestService(t, {}, database);
    const merchant = await service.merchant();
    const load = startLoad(merchant.api, 4);
    t.teardown(() => load.stop());

    await waitFor('orders accepted before the outage', () => load.accepted.size >= 20);
    const stoppedAt = Date.now();
    await server.stop({ mode });
    // The outage lasts 3 s and is felt by every kind of request.
    await waitFor(
      'a 3-second outage seen by POSTs and GETs',
      () =>
        Date.now() - stoppedAt >= 3_000 &&
        (['POST /payment-orders', 'GET /payment-orders/:id', 'GET /payment-orders'] as const).every((request) =>
          load.answers.some((a) => a.at > stoppedAt && a.request === request && a.status === 503),
        ),
      { timeoutMs: 30_000 },
    );
    await server.start();
    const restartedAt = Date.now();
    const healed = await waitFor(
      'POST and GET to succeed again after the restart',
      () => {
        const after = load.answers.filter((a) => a.at > restartedAt);
        const post = after.find((a) => a.status === 201);
        const get = after.find((a) => a.status === 200);
        return post && get ? Math.max(post.at, get.at) - restartedAt : undefined;
      },
      { timeoutMs: 15_000 },
    );
    // A little more load on the healed database, then stop.
    const count = load.answers.length;
    await waitFor('more answers after healing', () => load.answers.length >= count + 30);
    await load.stop();

    const { answers } = load;
    const counts = tally(answers);
    t.comment(
      `-m ${mode}: ${answers.length} answers: ${counts['201']} × 201, ${counts['200']} × 200, ${counts['503']} × 503, ${counts.other} other; POST and GET succeeded ${healed} ms after the restart`,
    );
    t.equal(answers.filter((a) => a.status === 500).length, 0, 'no answer was a 500');
    const failures = answers.filter((a) => a.status < 200 || a.status > 299);
    t.ok(failures.length > 0, 'the outage was felt');
    t.same(
      failures.filter(
        (a) =>
          a.status !== 503 ||
          a.code !== 'database_unavailable' ||
          a.retryAfter !== String(DATABASE_RETRY_AFTER_SECONDS) ||
          !a.contentType?.startsWith('application/problem+json'),
      ),
      [],
      'every other answer is 503 database_unavailable, problem+json, with Retry-After',
    );
    t.ok(
      failures.every((a) => a.at > stoppedAt && a.at < restartedAt + healed + 1_000),
      'and only during the outage',
    );

    // Nothing accepted was lost; no key made two orders (a POST retried after a 503 replays).
    const keysToIds = [...load.accepted];
    t.ok(
      keysToIds.every(([, ids]) => ids.size === 1),
      'every key answered one order id',
    );
    const ids = keysToIds.map(([, set]) => [...set][0]!);
    const stored = await database.rows<{ id: string; idempotency_key: string }>(
      'select id, idempotency_key from payment_orders where id = any($1)',
      [ids],
    );
    t.equal(stored.length, ids.length, `all ${ids.length} accepted orders are in the database`);
    const storedKey = new Map(stored.map((row) => [row.id, row.idempotency_key]));
    t.ok(
      keysToIds.every(([key, set]) => storedKey.get([...set][0]!) === key),
      'each under the key it was accepted for',
    );
    t.same(
      await database.rows('select merchant_id, idempotency_key from payment_orders group by 1, 2 having count(*) > 1'),
      [],
      'no idempotency key maps to two orders',
    );
    t.same(
      await database.rows(`select o.id from payment_orders o
        left join idempotency_keys k on k.merchant_id = o.merchant_id and k.idempotency_key = o.idempotency_key
        where k.order_id is distinct from o.id`),
      [],
      'every order is the one its key answers',
    );
    t.same(
      await database.rows(`select o.id from payment_orders o
        where not exists (select 1 from payment_order_transitions tr where tr.order_id = o.id)
           or not exists (select 1 from pgboss.job j where j.data->>'orderId' = o.id)`),
      [],
      'every order has its first transition and its processing job (one transaction)',
    );

    const warnings = service.logs.filter((line) => line.includes('database unavailable: answering 503'));
    t.ok(warnings.length >= 1 && warnings.length <= 2, `the outage is logged once per 10 s (${warnings.length})`);
    t.notOk(
      service.logs.some((line) => line.includes('"msg":"request failed"')),
      'no request is logged as failed (500)',
    );
  });
}

t.test('while the database is down, every route answers 503 with Retry-After (health stays 200)', async (t) => {
  const server = await startPostgresServer(t);
  const service = await startTestService(t, {}, databaseOn(t, server));
  const merchant = await service.merchant();
  const order = await merchant.api.createOrder(validOrder);
  t.equal(order.status, 201);
  await server.stop({ mode: 'immediate' });

  const anonymous = service.api();
  const token = 'A'.repeat(32);
  const callback = {
    Body: { stkCallback: { MerchantRequestID: 'm', CheckoutRequestID: 'ws_CO_1', ResultCode: 0, ResultDesc: 'ok' } },
  };
  const requests: Array<[string, () => Promise<ApiResponse>]> = [
    ['POST /payment-orders', () => merchant.api.createOrder(validOrder)],
    ['GET /payment-orders/:id', () => merchant.api.get(`/payment-orders/${order.body.id}`)],
    ['GET /payment-orders', () => merchant.api.get('/payment-orders')],
    [
      'POST /webhook-subscriptions',
      () => merchant.api.request('POST', '/webhook-subscriptions', { body: { url: 'https://example.com/hook' } }),
    ],
    ['GET /webhook-subscriptions', () => merchant.api.get('/webhook-subscriptions')],
    [
      'DELETE /webhook-subscriptions/:id',
      () => merchant.api.request('DELETE', `/webhook-subscriptions/whs_${'0'.repeat(26)}`),
    ],
    ['GET /events', () => merchant.api.get('/events')],
    ['POST /callbacks/mpesa/:token', () => anonymous.request('POST', `/callbacks/mpesa/${token}`, { body: callback })],
    ['GET /readyz', () => anonymous.get('/readyz')],
  ];
  for (const [name, call] of requests) {
    const res = await call();
    t.match(
      {
        status: res.status,
        type: res.headers.get('content-type'),
        retryAfter: res.headers.get('retry-after'),
        body: res.body,
      },
      {
        status: 503,
        type: /^application\/problem\+json/,
        retryAfter: String(DATABASE_RETRY_AFTER_SECONDS),
        body: { status: 503, code: 'database_unavailable' },
      },
      name,
    );
  }
  t.equal((await anonymous.get('/healthz')).status, 200, '/healthz: the process is up');
  const metrics = await anonymous.get('/metrics');
  t.equal(metrics.status, 200, '/metrics still serves the instance figures');
  t.match(metrics.text, /payment_gateway_database_up 0/);

  await server.start();
  await waitFor('/readyz to answer 200 again', async () => (await anonymous.get('/readyz')).status === 200);
  t.equal((await merchant.api.get(`/payment-orders/${order.body.id}`)).status, 200, 'and the API is back');
});

t.test('connection-level errors, as the driver really raises them, are told from the others', async (t) => {
  const server = await startPostgresServer(t, { migrate: false, settings: { max_connections: '6' } });
  const failure = async (work: () => Promise<unknown>): Promise<unknown> => {
    try {
      await work();
    } catch (error) {
      return error;
    }
    throw new Error('expected a failure');
  };
  const client = (url = server.url) => {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    return c;
  };
  const pool = new pg.Pool({ connectionString: server.url, max: 1, connectionTimeoutMillis: 200 });
  pool.on('error', () => {});
  t.teardown(() => pool.end());

  const unavailable: Array<[string, unknown]> = [];
  const notUnavailable: Array<[string, unknown]> = [];

  // The pool's only connection is busy for longer than connectionTimeoutMillis.
  const busy = await pool.connect();
  unavailable.push(['pool exhausted', await failure(() => pool.query('select 1'))]);
  busy.release();
  // A session ended by the server (pg_terminate_backend is how a fast shutdown ends them: 57P01).
  const victim = client();
  await victim.connect();
  const pid = (await victim.query('select pg_backend_pid() as pid')).rows[0].pid;
  const killer = client();
  await killer.connect();
  const terminated = failure(() => victim.query('select pg_sleep(10)'));
  await waitFor('the sleep to run', async () => {
    const { rows } = await killer.query("select 1 from pg_stat_activity where pid = $1 and state = 'active'", [pid]);
    return rows.length > 0;
  });
  await killer.query('select pg_terminate_backend($1)', [pid]);
  unavailable.push(['session terminated', await terminated]);
  unavailable.push(['query on the dead client', await failure(() => victim.query('select 1'))]);
  // Too many sessions: 53300.
  const crowd: pg.Client[] = [];
  t.teardown(() => Promise.all(crowd.map((c) => c.end().catch(() => {}))));
  unavailable.push([
    'too many connections',
    await failure(async () => {
      for (let i = 0; i < 10; i++) {
        const c = client();
        crowd.push(c);
        await c.connect();
      }
    }),
  ]);
  await Promise.all(crowd.splice(0).map((c) => c.end().catch(() => {})));
  // Errors of statements, and configuration faults: not outages.
  await killer.query('create table t (id int primary key)');
  await killer.query('insert into t values (1)');
  notUnavailable.push(['unique violation', await failure(() => killer.query('insert into t values (1)'))]);
  notUnavailable.push(['syntax error', await failure(() => killer.query('selec 1'))]);
  notUnavailable.push([
    'wrong password',
    await failure(() => client(server.url.replace(':postgres@', ':wrong@')).connect()),
  ]);
  notUnavailable.push(['a plain bug', new TypeError("Cannot read properties of undefined (reading 'id')")]);
  await killer.end();
  // The server gone: a killed session, then a refused connection; wrapped as callers wrap them.
  const survivor = client();
  await survivor.connect();
  await server.kill9();
  unavailable.push(['server killed under a session', await failure(() => survivor.query('select 1'))]);
  const refused = await failure(() => client().connect());
  unavailable.push(['connection refused', refused]);
  unavailable.push(['wrapped in cause', new Error('migration 001_x failed', { cause: refused })]);
  unavailable.push(['inside an AggregateError', new AggregateError([new Error('x'), refused], '')]);

  for (const [name, error] of unavailable) {
    t.ok(isDatabaseUnavailable(error), `${name}: unavailable (${unavailableCode(error)}: ${(error as Error).message})`);
  }
  for (const [name, error] of notUnavailable) {
    t.notOk(isDatabaseUnavailable(error), `${name}: not unavailable (${(error as { code?: string }).code ?? '-'})`);
  }
  t.match(
    unavailable.map(([name, error]) => [name, unavailableCode(error)]),
    [
      ['pool exhausted', 'timeout exceeded when trying to connect'],
      ['session terminated', '57P01'],
      ['query on the dead client', /^(Client has encountered|Connection terminated)/],
      ['too many connections', '53300'],
      // Which one depends on who notices first: the socket, or a backend seeing its postmaster gone.
      ['server killed under a session', /^(ECONNRESET|EPIPE|57P01|Connection terminated|Client has encountered)/],
      ['connection refused', 'ECONNREFUSED'],
      ['wrapped in cause', 'ECONNREFUSED'],
      ['inside an AggregateError', 'ECONNREFUSED'],
    ],
  );
});

const retryLines = (output: readonly string[]) =>
  output.filter((line) => line.includes('database not reachable at start; retrying')).map((line) => JSON.parse(line));

t.test('started while the database is down, the entry point waits, then migrates and serves', async (t) => {
  const server = await startPostgresServer(t, { migrate: false });
  await server.stop();
  const gateway = spawnGatewayProcess(t, {
    DATABASE_URL: server.url,
    DATA_DIR: await tempDataDir(t),
    DATABASE_STARTUP_TIMEOUT_SECONDS: '120',
  });
  const retries = await waitFor('three failed attempts in the log', () => {
    if (gateway.child.exitCode !== null)
      throw new Error(`exited (${gateway.child.exitCode}):\n${gateway.output.join('\n')}`);
    const lines = retryLines(gateway.output);
    return lines.length >= 3 ? lines : undefined;
  });
  t.equal(gateway.child.exitCode, null, 'it did not exit');
  t.match(retries.slice(0, 3), [
    { level: 40, attempt: 1, code: 'ECONNREFUSED' },
    { level: 40, attempt: 2, code: 'ECONNREFUSED' },
    { level: 40, attempt: 3, code: 'ECONNREFUSED' },
  ]);
  // Capped exponential backoff with equal jitter: attempt n waits between half and all of 0.5 s · 2^(n-1).
  for (const line of retries.slice(0, 3)) {
    const step = 500 * 2 ** (line.attempt - 1);
    t.ok(line.retryInMs >= step / 2 && line.retryInMs <= step, `attempt ${line.attempt}: ${line.retryInMs} ms`);
  }
  t.notOk(
    gateway.output.some((line) => line.includes('payment order gateway listening')),
    'not listening yet',
  );

  await server.start();
  const running = await untilListening(gateway);
  t.ok(
    running.output.some((line) => line.includes('migrations applied')),
    'then it migrated',
  );
  const ready = await fetch(`${running.url}/readyz`);
  t.equal(ready.status, 200, '/readyz answers 200');

  // Once running, an outage is waited out too: the process (pg-boss, relay, listener) stays up.
  await server.stop({ mode: 'immediate' });
  const down = await fetch(`${running.url}/readyz`);
  t.equal(down.status, 503);
  t.equal(down.headers.get('retry-after'), String(DATABASE_RETRY_AFTER_SECONDS));
  const before = running.output.length;
  await waitFor('pg-boss to meet the outage', () =>
    running.output.slice(before).some((line) => line.includes('"msg":"pg-boss error"')),
  );
  await server.start();
  await waitFor('/readyz to answer 200 again', async () => (await fetch(`${running.url}/readyz`)).status === 200);
  t.equal(running.child.exitCode, null, 'the process is still running');
  t.equal(await running.stop('SIGTERM'), 0, 'and stops cleanly');
});

t.test('SIGTERM while waiting for the database stops cleanly (exit 0)', async (t) => {
  const server = await startPostgresServer(t, { migrate: false });
  await server.stop();
  const gateway = spawnGatewayProcess(t, { DATABASE_URL: server.url, DATA_DIR: await tempDataDir(t) });
  await waitFor('a failed attempt in the log', () => retryLines(gateway.output).length >= 1);
  t.equal(await gateway.stop('SIGTERM'), 0, 'exit code 0');
  t.ok(
    gateway.output.some((line) => line.includes('"msg":"stopped"')),
    'it logged that it stopped',
  );
  t.notOk(
    gateway.output.some((line) => line.includes('failed to start')),
    'not as a failed start',
  );
});

t.test('the wait is bounded (DATABASE_STARTUP_TIMEOUT_SECONDS), and a bad password is not waited out', async (t) => {
  const server = await startPostgresServer(t, { migrate: false });
  const wrongPassword = spawnGatewayProcess(t, {
    DATABASE_URL: server.url.replace(':postgres@', ':wrong@'),
    DATA_DIR: await tempDataDir(t),
  });
  t.equal(await wrongPassword.exited, 1, 'a bad password fails the start at once');
  t.equal(retryLines(wrongPassword.output).length, 0, 'without retrying');
  t.ok(
    wrongPassword.output.some(
      (line) => line.includes('failed to start') && line.includes('password authentication failed'),
    ),
    'saying why',
  );

  await server.stop();
  const bounded = spawnGatewayProcess(t, {
    DATABASE_URL: server.url,
    DATA_DIR: await tempDataDir(t),
    DATABASE_STARTUP_TIMEOUT_SECONDS: '2',
  });
  t.equal(await bounded.exited, 1, 'gives up after the bound');
  t.ok(retryLines(bounded.output).length >= 2, 'after retrying');
  t.ok(
    bounded.output.some((line) => line.includes('failed to start') && line.includes('giving up')),
    'saying so',
  );
});
