import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { testDatabase } from './helpers/database.ts';
import { startGatewayProcess, tempDataDir } from './helpers/gateway-process.ts';
import { ApiClient, validOrder } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

t.test('npm start runs src/main.ts', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
  t.equal(pkg.scripts.start, 'node src/main.ts');
});

t.test('on the embedded default: prints a key, keeps data across restarts, stops cleanly', async (t) => {
  const dataDir = await tempDataDir(t);
  const pidFile = path.join(dataDir, 'pg', 'postmaster.pid');

  const first = await startGatewayProcess(t, { DATA_DIR: dataDir });
  const key = await first.printedApiKey();
  t.match(key, /^sk_[A-Za-z0-9_-]{40,}$/, 'prints "API key: <key>"');
  // And an operator key, so that /console opens at once; /docs needs none.
  const operatorKey = await first.printedOperatorKey();
  t.match(operatorKey, /^op_[A-Za-z0-9_-]{40,}$/, 'prints "Operator key: <key>"');
  const overview = await new ApiClient(first.url, operatorKey).get('/operator/overview');
  t.equal(overview.status, 200, 'the printed operator key opens the console overview');
  t.equal((await new ApiClient(first.url).get('/docs')).status, 200, '/docs is served');
  const api = new ApiClient(first.url, key);
  const created = await api.createOrder(validOrder, 'survives-restart');
  t.equal(created.status, 201);
  // No credentials configured: the built-in provider sandbox takes the charge, within seconds.
  t.ok(
    first.output.some((line) => line.includes('provider sandbox started')),
    'the sandbox was started',
  );
  const completed = await waitFor('the order to complete', async () => {
    const res = await api.get(`/payment-orders/${created.body.id}`);
    return res.body.status === 'COMPLETED' ? res.body : undefined;
  });
  t.match(completed, { status: 'COMPLETED', providerReference: /^pi_/ });
  t.ok(existsSync(pidFile), 'the embedded database runs');
  t.equal(await first.stop('SIGTERM'), 0, 'SIGTERM: exit code 0');
  t.notOk(existsSync(pidFile), 'the embedded database was stopped');

  const second = await startGatewayProcess(t, { DATA_DIR: dataDir });
  t.equal(await second.printedApiKey(), key, 'the same key is printed again');
  t.equal(await second.printedOperatorKey(), operatorKey, 'and the same operator key');
  const again = new ApiClient(second.url, key);
  const fetched = await again.get(`/payment-orders/${created.body.id}`);
  t.equal(fetched.status, 200, 'the order survived');
  t.equal(fetched.body.status, 'COMPLETED');
  t.equal(fetched.body.amount, validOrder.amount);
  const replay = await again.createOrder(validOrder, 'survives-restart');
  t.equal(replay.status, 201);
  t.equal(replay.headers.get('idempotent-replayed'), 'true', 'the idempotency key survived');
  t.equal(replay.body.id, created.body.id);
  t.equal(await second.stop('SIGINT'), 0, 'SIGINT: exit code 0');
  t.notOk(existsSync(pidFile));
});

t.test('SIGTERM lets an in-flight request finish, refuses new connections, exits 0', async (t) => {
  const database = await testDatabase(t);
  const gateway = await startGatewayProcess(t, {
    DATABASE_URL: database.url,
    DEMO_MERCHANT: 'true',
    DATA_DIR: await tempDataDir(t),
  });
  const key = await gateway.printedApiKey();
  const { port } = new URL(gateway.url);

  // A request whose headers are in (the server answered "100 Continue") and whose body is not yet.
  const body = JSON.stringify(validOrder);
  const socket = connect(Number(port), '127.0.0.1');
  let received = '';
  socket.on('data', (chunk) => (received += chunk.toString('utf8')));
  socket.write(
    [
      'POST /payment-orders HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      `Authorization: Bearer ${key}`,
      'Content-Type: application/json',
      'Idempotency-Key: in-flight',
      'Expect: 100-continue',
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      '',
    ].join('\r\n'),
  );
  await waitFor('100 Continue', () => received.includes('100 Continue'));

  gateway.child.kill('SIGTERM');
  await waitFor('shutdown to begin', () => gateway.output.some((l) => l.includes('shutting down')));
  await t.rejects(fetch(`${gateway.url}/healthz`), 'no new connections while stopping');

  // write, not end: a half-closed socket would tell Node's server that the client gave up.
  socket.write(body);
  await waitFor('the in-flight response', () => /\r\n\r\n\{.*\}$/s.test(received));
  socket.destroy();
  t.match(received, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 Created/);
  t.equal(await gateway.exited, 0);
  t.equal(await database.count('payment_orders', "idempotency_key = 'in-flight'"), 1, 'and it was stored');
});

t.test('bad configuration: a clear message and exit code 78', async (t) => {
  const database = await testDatabase(t);
  const { spawnSync } = await import('node:child_process');
  const result = spawnSync(process.execPath, ['src/main.ts'], {
    cwd: new URL('..', import.meta.url),
    env: { PATH: process.env.PATH, DATABASE_URL: database.url, PORT: 'eighty', IDEMPOTENCY_KEY_TTL_HOURS: '1' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(result.status, 78);
  t.match(result.stderr, /PORT/);
  t.match(result.stderr, /IDEMPOTENCY_KEY_TTL_HOURS/);
});
