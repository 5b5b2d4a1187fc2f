import type { Config } from '../config/config.ts';
import { createProcessingStore } from '../db/processing-store.ts';
import type { RetryPolicy } from '../domain/decide.ts';
import type { ProcessDeps } from '../domain/process-payment-order.ts';
import { startProcessingWorkers } from '../jobs/process-payment-order.job.ts';
import { enqueueProcessPaymentOrder } from '../jobs/queues.ts';
import type { Logger } from '../lib/logger.ts';
import type { Database } from './database.ts';
import type { Providers } from './providers.ts';
import type { Queue } from './queue.ts';

export type Processing = Readonly<{
  deps: ProcessDeps;
  /** Sets the public base URL once the HTTP server listens (PORT=0 takes a free port). */
  setPublicBaseUrl(url: string): void;
  /** Starts the workers: last, once the callback endpoint is up. They stop with pg-boss. */
  startWorkers(): Promise<void>;
}>;

/** Order processing: the store behind the use cases, the retry policy, the workers. */
export function createProcessing(
  config: Config,
  parts: { database: Database; queue: Queue; providers: Providers },
  logger: Logger,
): Processing {
  const store = createProcessingStore({
    db: parts.database.db,
    pool: parts.database.pool,
    enqueue: enqueueProcessPaymentOrder(parts.queue.boss),
    gate: {
      global: config.gate.callsPerSecond,
      perProvider: config.gate.perProvider,
      windowMs: 1000 + config.gate.marginMs,
    },
  });
  // Callbacks are built by the workers only, which start after the server listens.
  let publicBaseUrl = config.publicBaseUrl ?? '';
  const deps: ProcessDeps = {
    store,
    providers: parts.providers.providers,
    policy: retryPolicy(config),
    callbackUrl: (provider, token) => `${publicBaseUrl}/callbacks/${provider}/${token}`,
  };
  return {
    deps,
    setPublicBaseUrl(url) {
      publicBaseUrl = config.publicBaseUrl ?? url;
    },
    startWorkers: () => startProcessingWorkers(parts.queue.boss, deps, config.workerConcurrency, logger),
  };
}

/** The processing decisions' policy (domain/decide.ts), from the configuration. */
function retryPolicy(config: Config): RetryPolicy {
  return {
    ...config.retry,
    pendingCheckDelayMs: (provider) =>
      provider === 'mpesa' ? config.mpesa.callbackTimeoutMs : config.retry.baseDelayMs,
    // Only M-Pesa has charges that cannot be asked about (a push whose answer was lost).
    unaskableDeadlineMs: (provider) =>
      provider === 'mpesa' ? config.mpesa.pushDeadlineMs : config.retry.reviewAfterMs,
    random: Math.random,
  };
}
