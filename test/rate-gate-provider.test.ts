import t from 'tap';
import type { RequestRecord } from '../sandbox/request-log.ts';
import { createDb } from '../src/db/connection.ts';
import { ensureMerchant, insertApiKey } from '../src/db/merchants.repository.ts';
import { newApiKey } from '../src/domain/api-key.ts';
import { maxInAnySecond, spinCpus } from './helpers/arrivals.ts';
import { testDatabase } from './helpers/database.ts';
import { startGatewayProcess, tempDataDir } from './helpers/gateway-process.ts';
import { SandboxClient } from './helpers/sandbox-client.ts';
import { startSandboxProcess } from './helpers/sandbox-process.ts';
import { ApiClient } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

// The gate judged where the provider counts: the sandbox's own arrival log, stamped in a process of
// its own. Three gateways on one database, a backlog from their very first calls, one of them
// restarted midway, connections the sandbox resets whenever they sit idle (so most calls need a new
// one), and every core kept busy by spinning processes for a third of the run.

const ORDERS = 45;
/** Every fifth order goes to M-Pesa: a token request and an STK push through the gate too. */
const isMpesa = (i: number) => i % 5 === 4;

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
}

t.test(
  'at the provider, never more than 2 calls arrive in any second: first calls, a restart, reset connections, a busy CPU',
  async (t) => {
    const database = await testDatabase(t);
    // A connection idle for 400 ms is reset: each instance calls about every 1.5 s, so most calls
    // need a new connection (made before the grant, or the grant is given back).
    const sandbox = await startSandboxProcess(t, { idleResetMs: 400 });
    const env = {
      DATABASE_URL: database.url,
      STRIPE_API_URL: sandbox.url,
      MPESA_API_URL: sandbox.url,
      PROVIDER_CALLS_PER_SECOND: '2',
      WORKER_CONCURRENCY: '4',
      DEMO_MERCHANT: 'false',
      DATA_DIR: await tempDataDir(t),
      // The restarted instance's pushes get their callbacks on a port that is gone: ask soon.
      MPESA_CALLBACK_TIMEOUT_SECONDS: '2',
      SHUTDOWN_TIMEOUT_MS: '3000',
    };
    const instances = await Promise.all([1, 2, 3].map(() => startGatewayProcess(t, env)));

    const key = newApiKey();
    const db = createDb(database.pool);
    const merchant = await ensureMerchant(db, 'gate-provider');
    await insertApiKey(db, merchant.id, key.hash, key.prefix);

    // The backlog, as fast as the three APIs take it: every instance's first call meets it.
    const created = await Promise.all(
      Array.from({ length: ORDERS }, (_, i) =>
        new ApiClient(instances[i % 3]!.url, key.key).createOrder(
          isMpesa(i)
            ? { amount: 10_000 + i * 100, currency: 'KES', paymentMethod: { type: 'mpesa', phone: '254708374149' } }
            : { amount: 1000 + i, currency: 'USD', paymentMethod: { type: 'card', token: 'pm_card_visa' } },
        ),
      ),
    );
    t.ok(
      created.every((r) => r.status === 201),
      'all accepted',
    );
    const completed = () => database.count('payment_orders', "status = 'COMPLETED'");
    const until = (n: number, timeoutMs: number) =>
      waitFor(`${n} orders COMPLETED`, async () => (await completed()) >= n, { timeoutMs, intervalMs: 100 });

    await until(ORDERS / 3, 30_000);
    // A third done: every core busy from here, and instance 3 restarted under that load.
    const stopSpinning = spinCpus(t, 2);
    const spinningFromMs = Date.now();
    t.equal(await instances[2]!.stop('SIGTERM'), 0, 'instance 3 stops cleanly');
    instances[2] = await startGatewayProcess(t, env);
    const restartedAtMs = Date.now();
    await until((2 * ORDERS) / 3, 40_000);
    await stopSpinning();
    const spinningToMs = Date.now();
    await until(ORDERS, 40_000);

    const arrivals: RequestRecord[] = await new SandboxClient(sandbox.url).requests();
    const arrivalsMs = arrivals.map((r) => r.atMs);
    const max = maxInAnySecond(arrivalsMs);
    t.ok(max <= 2, `the sandbox saw at most 2 calls in any second (max ${max}, ${arrivals.length} calls)`);
    t.equal(
      (await database.rows("select status from payment_orders where status <> 'COMPLETED'")).length,
      0,
      'every order COMPLETED',
    );
    const ledger = await new SandboxClient(sandbox.url).ledger();
    t.equal(ledger.length, ORDERS, 'one charge per order at the provider');
    t.ok(
      ledger.every((entry) => entry.status === 'charged'),
      'every charge went through',
    );

    // The figures: grant (provider_attempts.started_at) → arrival, paired by Idempotency-Key for Stripe.
    const attempts = await database.rows<{ key: string; ms: string; grants: number; kind: string }>(
      `select order_id || '-charge' as key, extract(epoch from started_at) * 1000 as ms, gate_grants as grants, kind
       from provider_attempts order by started_at`,
    );
    const startOf = new Map(attempts.filter((a) => a.kind !== 'token').map((a) => [a.key, Number(a.ms)]));
    const lags = arrivals.flatMap((r) => {
      const start = r.idempotencyKey ? startOf.get(r.idempotencyKey) : undefined;
      return start === undefined ? [] : [{ atMs: r.atMs, lag: r.atMs - start }];
    });
    const lagMs = lags.map((l) => l.lag);
    const firstAfterRestart = lags.find((l) => l.atMs >= restartedAtMs);
    const spanSeconds = (Math.max(...arrivalsMs) - Math.min(...arrivalsMs)) / 1000;
    const busy = arrivalsMs.filter((ms) => ms >= spinningFromMs && ms <= spinningToMs);
    t.comment(
      `${arrivals.length} calls (${attempts.filter((a) => a.kind === 'token').length} token requests), ` +
        `${((arrivals.length - 1) / spanSeconds).toFixed(3)} calls/s over the run (restart and all); ` +
        `max in any 1 s: ${max} overall, ${maxInAnySecond(busy)} of the ${busy.length} with every core busy`,
    );
    t.comment(
      `grant → arrival (${lagMs.length} Stripe calls): p50 ${percentile(lagMs, 0.5).toFixed(1)} ms, ` +
        `p99 ${percentile(lagMs, 0.99).toFixed(1)} ms, max ${Math.max(...lagMs).toFixed(1)} ms; first three calls ` +
        `${lagMs
          .slice(0, 3)
          .map((ms) => ms.toFixed(1))
          .join(', ')} ms; first after the restart ${firstAfterRestart?.lag.toFixed(1) ?? 'n/a'} ms`,
    );
    t.comment(
      `arrivals on a new connection: ${arrivals.filter((r) => r.connection.request === 1).length} of ${arrivals.length}; ` +
        `grants given back unused and asked again: ${attempts.reduce((sum, a) => sum + a.grants - 1, 0)}`,
    );

    for (const instance of instances) t.equal(await instance.stop('SIGTERM'), 0, 'stops cleanly');
  },
);
