import type { Test } from 'tap';
import { startSandbox } from '../../sandbox/sandbox.ts';
import { SandboxClient } from './sandbox-client.ts';
import { type ApiClient, startTestService, type TestService } from './service.ts';
import { waitFor } from './wait.ts';

/**
 * Settings that keep processing tests quick without changing what happens: short retry delays,
 * short provider timeout, a fast M-Pesa callback deadline and reconcile schedule, and a gate of
 * 50 calls/s (the 2/s gate has tests of its own).
 */
export const FAST_PROCESSING: Record<string, string> = {
  RETRY_BASE_DELAY_MS: '50',
  RETRY_MAX_DELAY_MS: '200',
  PROVIDER_TIMEOUT_MS: '1000',
  MPESA_CALLBACK_TIMEOUT_SECONDS: '1',
  RECONCILE_INTERVAL_SECONDS: '1',
  PROVIDER_CALLS_PER_SECOND: '50',
};

export type ProcessingHarness = Readonly<{
  service: TestService;
  sandbox: SandboxClient;
  api: ApiClient;
  /** Waits until the order is COMPLETED or FAILED; returns it as GET /payment-orders/{id} shows it. */
  terminal(orderId: string, timeoutMs?: number): Promise<any>;
}>;

/** A sandbox of this test's own, and the service with its providers pointed at it. */
export async function startProcessing(t: Test, env: Record<string, string> = {}): Promise<ProcessingHarness> {
  const sandbox = await startSandbox({ port: 0, host: '127.0.0.1' });
  t.teardown(() => sandbox.stop());
  const service = await startTestService(t, {
    ...FAST_PROCESSING,
    WORKER_CONCURRENCY: '4',
    // Four order locks and the relay's LISTEN hold five connections (config.ts assertPoolLargeEnough).
    DATABASE_POOL_SIZE: '7',
    STRIPE_API_URL: sandbox.url,
    MPESA_API_URL: sandbox.url,
    ...env,
  });
  const { api } = await service.merchant();
  return {
    service,
    sandbox: new SandboxClient(sandbox.url),
    api,
    terminal: (orderId, timeoutMs = 20_000) =>
      waitFor(
        `order ${orderId} to finish`,
        async () => {
          const res = await api.get(`/payment-orders/${orderId}`);
          return res.body.status === 'COMPLETED' || res.body.status === 'FAILED' ? res.body : undefined;
        },
        { timeoutMs },
      ),
  };
}
