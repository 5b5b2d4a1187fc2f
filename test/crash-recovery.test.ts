import t from 'tap';
import { startSandbox } from '../sandbox/sandbox.ts';
import { createDb } from '../src/db/connection.ts';
import { ensureMerchant, insertApiKey } from '../src/db/merchants.repository.ts';
import { newApiKey } from '../src/domain/api-key.ts';
import { testDatabase } from './helpers/database.ts';
import { startGatewayProcess, tempDataDir } from './helpers/gateway-process.ts';
import { SandboxClient } from './helpers/sandbox-client.ts';
import { ApiClient } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

t.test('kill -9 mid-call, restart: every order terminal within 2 minutes, each charged once', async (t) => {
  const database = await testDatabase(t);
  // Slow answers, so that calls are in flight when the process dies.
  const sandbox = await startSandbox({ port: 0, host: '127.0.0.1', switches: { latencyMs: 400 } });
  t.teardown(() => sandbox.stop());
  const env = {
    DATABASE_URL: database.url,
    STRIPE_API_URL: sandbox.url,
    MPESA_API_URL: sandbox.url,
    PROVIDER_CALLS_PER_SECOND: '10',
    WORKER_CONCURRENCY: '4',
    DEMO_MERCHANT: 'false',
    DATA_DIR: await tempDataDir(t),
  };
  const key = newApiKey();
  const merchant = await ensureMerchant(createDb(database.pool), 'crash');
  await insertApiKey(createDb(database.pool), merchant.id, key.hash, key.prefix);

  const first = await startGatewayProcess(t, env);
  const api = new ApiClient(first.url, key.key);
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) {
    const res = await api.createOrder({
      amount: 500 + i,
      currency: 'USD',
      paymentMethod: { type: 'card', token: 'pm_card_visa' },
    });
    ids.push(res.body.id);
  }
  // Wait for a provider call in flight: started, not ended.
  await waitFor('a call in flight', async () => (await database.count('provider_attempts', 'ended_at is null')) > 0, {
    intervalMs: 5,
  });
  first.child.kill('SIGKILL');
  t.equal(await first.exited, null, 'killed by the signal');
  const killedMidCall = await database.count('provider_attempts', 'ended_at is null');
  t.ok(killedMidCall > 0, `${killedMidCall} call(s) were in flight when the process died`);

  const killedAt = Date.now();
  const second = await startGatewayProcess(t, env);
  await waitFor(
    'every order to be terminal',
    async () => (await database.count('payment_orders', "status in ('COMPLETED', 'FAILED')")) === ids.length,
    { timeoutMs: 120_000, intervalMs: 250 },
  );
  t.ok(Date.now() - killedAt < 120_000, `recovered in ${Math.round((Date.now() - killedAt) / 1000)} s`);

  const ledger = await new SandboxClient(sandbox.url).ledger();
  for (const id of ids) {
    const [order] = await database.rows('select status from payment_orders where id = $1', [id]);
    const charges = ledger.filter((e) => e.orderId === id && e.status === 'charged');
    t.equal(order?.status, 'COMPLETED', `${id} completed`);
    t.equal(charges.length, 1, `${id} charged exactly once`);
  }
  // The interrupted calls were reconciled by asking (same idempotency key), not by charging anew.
  t.ok((await database.count('provider_attempts', "kind = 'status'")) >= killedMidCall);
  t.equal(await database.count('outbox_events'), ids.length, 'one event per order');
  t.equal(await second.stop('SIGTERM'), 0);
});
