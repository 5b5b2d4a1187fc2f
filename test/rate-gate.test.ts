import t from 'tap';
import { startSandbox } from '../sandbox/sandbox.ts';
import { createDb } from '../src/db/connection.ts';
import { ensureMerchant, insertApiKey } from '../src/db/merchants.repository.ts';
import { newApiKey } from '../src/domain/api-key.ts';
import { maxInAnySecond } from './helpers/arrivals.ts';
import { testDatabase } from './helpers/database.ts';
import { startGatewayProcess, tempDataDir } from './helpers/gateway-process.ts';
import { SandboxClient } from './helpers/sandbox-client.ts';
import { ApiClient } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

t.test('three instances on one database: never more than 2 calls in any second, at least 1.9/s', async (t) => {
  const database = await testDatabase(t);
  const sandbox = await startSandbox({ port: 0, host: '127.0.0.1' });
  t.teardown(() => sandbox.stop());
  const env = {
    DATABASE_URL: database.url,
    STRIPE_API_URL: sandbox.url,
    MPESA_API_URL: sandbox.url,
    PROVIDER_CALLS_PER_SECOND: '2',
    WORKER_CONCURRENCY: '4',
    DEMO_MERCHANT: 'false',
    DATA_DIR: await tempDataDir(t),
  };
  const instances: Array<Awaited<ReturnType<typeof startGatewayProcess>>> = [];
  for (let i = 0; i < 3; i++) instances.push(await startGatewayProcess(t, env));

  const key = newApiKey();
  const db = createDb(database.pool);
  const merchant = await ensureMerchant(db, 'gate');
  await insertApiKey(db, merchant.id, key.hash, key.prefix);

  // 32 orders through the three APIs, as fast as they take them: a backlog for the gate.
  const created = await Promise.all(
    Array.from({ length: 32 }, (_, i) =>
      new ApiClient(instances[i % 3]!.url, key.key).createOrder({
        amount: 1000 + i,
        currency: 'USD',
        paymentMethod: { type: 'card', token: 'pm_card_visa' },
      }),
    ),
  );
  t.ok(created.every((r) => r.status === 201));
  await waitFor(
    'every order to complete',
    async () => (await database.count('payment_orders', "status = 'COMPLETED'")) === 32,
    { timeoutMs: 60_000, intervalMs: 250 },
  );

  const rows = await database.rows<{ ms: number }>(
    'select extract(epoch from started_at) * 1000 as ms from provider_attempts order by started_at',
  );
  const starts = rows.map((r) => Number(r.ms));
  t.equal(starts.length, 32, 'one call per order (nothing retried)');
  t.ok(maxInAnySecond(starts) <= 2, `recorded starts: at most 2 in any second (max ${maxInAnySecond(starts)})`);
  const rate = (starts.length - 1) / (((starts.at(-1) as number) - (starts[0] as number)) / 1000);
  t.ok(rate >= 1.9, `rate ${rate.toFixed(3)} calls/s ≥ 1.9`);

  // The provider's view: every call arrived, once. This sandbox runs in the test's own process, so
  // its arrival stamps wait for this event loop: reported here, asserted in
  // test/rate-gate-provider.test.ts, where the sandbox has a process of its own.
  const requests = await new SandboxClient(sandbox.url).requests();
  t.equal(requests.length, 32);
  const delays = requests.map((r, i) => r.atMs - (starts[i] as number));
  t.comment(
    `provider-side: max ${maxInAnySecond(requests.map((r) => r.atMs))} arrivals in any second; grant → arrival ${Math.min(...delays).toFixed(0)}..${Math.max(...delays).toFixed(0)} ms`,
  );

  for (const instance of instances) t.equal(await instance.stop('SIGTERM'), 0);
});
