import type { Server } from 'node:http';
import type { Config } from '../config/config.ts';
import { createOrderStore } from '../db/create-order-store.ts';
import { findMerchantIdByKeyHash } from '../db/merchants.repository.ts';
import { findOperatorByKeyHash } from '../db/operators.repository.ts';
import { createResolutionStore } from '../db/resolution-store.ts';
import { createApp } from '../http/app.ts';
import { enqueueDeliverWebhook, enqueueNewOrders, QUEUES } from '../jobs/queues.ts';
import { cachedLookup } from '../lib/cached-lookup.ts';
import type { Logger } from '../lib/logger.ts';
import { refreshDatabaseGauges } from '../metrics/database-gauges.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { providerAmountRules } from '../providers/amount-rules.ts';
import type { Database } from './database.ts';
import type { Processing } from './processing.ts';
import type { Queue } from './queue.ts';
import type { Started } from './stop-stack.ts';

export type Http = Started & Readonly<{ url: string; port: number }>;

/**
 * The HTTP API, listening. Stopping it stops accepting, lets requests in flight finish (up to the
 * shutdown timeout), then cuts what remains; it is stopped before the queue and the database.
 */
export async function startHttp(
  config: Config,
  parts: { database: Database; queue: Queue; processing: Processing; metrics: Metrics },
  logger: Logger,
): Promise<Http> {
  const { db } = parts.database;
  const { boss } = parts.queue;
  const app = createApp({
    db,
    logger,
    // Revocation reaches this process within API_KEY_CACHE_SECONDS.
    lookupMerchant: cachedLookup(
      (hash: Buffer) => findMerchantIdByKeyHash(db, hash),
      (hash) => hash.toString('hex'),
      {
        ttlMs: config.apiKeyCacheMs,
      },
    ),
    createOrder: {
      store: createOrderStore(parts.database.pool, enqueueNewOrders(boss), config.createBatch),
      routing: config,
      amountRules: providerAmountRules,
      idempotencyKeyTtlHours: config.idempotencyKeyTtlHours,
    },
    processing: parts.processing.deps,
    lookupOperator: (hash) => findOperatorByKeyHash(db, hash),
    resolve: createResolutionStore(db),
    webhooks: {
      db,
      urlPolicy: { allowedCidrs: config.webhooks.allowedCidrs, allowHttp: config.webhooks.allowHttp },
      secretRotationMs: config.webhooks.secretRotationMs,
      timeoutMs: config.webhooks.timeoutMs,
      enqueue: enqueueDeliverWebhook(boss),
    },
    enqueueDelivery: enqueueDeliverWebhook(boss),
    operatorConsole: { gate: config.gate, kafka: config.kafka !== null },
    metrics: {
      metrics: parts.metrics,
      refresh: () =>
        refreshDatabaseGauges({
          db,
          boss,
          metrics: parts.metrics,
          queues: Object.values(QUEUES),
          kafka: config.kafka !== null,
        }),
    },
  });
  const server = await listen(app, config.port, config.host);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port }, 'payment order gateway listening');
  return { url: `http://127.0.0.1:${port}`, port, stop: () => closeServer(server, config.shutdownTimeoutMs) };
}

function listen(app: ReturnType<typeof createApp>, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, (error?: Error) => (error ? reject(error) : resolve(server)));
    // Slow or idle clients must not hold a connection (and a shutdown) forever.
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    server.keepAliveTimeout = 5_000;
  });
}

/** Stop accepting; let in-flight requests finish (up to the timeout); then cut what remains. */
function closeServer(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
