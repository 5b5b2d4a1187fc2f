import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import path from 'node:path';
import { PgBoss } from 'pg-boss';
import { startSandbox } from '../sandbox/sandbox.ts';
import type { Config } from './config/config.ts';
import { closeDb, createDb, createPool, type Db } from './db/connection.ts';
import { createOrderStore } from './db/create-order-store.ts';
import { type EmbeddedDatabase, startEmbeddedPostgres } from './db/embedded-postgres.ts';
import { ensureMerchant, findMerchantIdByKeyHash, insertApiKey } from './db/merchants.repository.ts';
import { migrate } from './db/migrate.ts';
import { createNotifications } from './db/notifications.ts';
import { findOperatorByKeyHash } from './db/operators.repository.ts';
import { createProcessingStore } from './db/processing-store.ts';
import { createResolutionStore } from './db/resolution-store.ts';
import { waitForDatabase } from './db/wait-for-database.ts';
import { hashApiKey, looksLikeApiKey, newApiKey } from './domain/api-key.ts';
import type { RetryPolicy } from './domain/decide.ts';
import type { ProcessDeps } from './domain/process-payment-order.ts';
import { createApp } from './http/app.ts';
import { startWebhookWorkers } from './jobs/deliver-webhook.job.ts';
import { startIdempotencySweeper } from './jobs/idempotency-sweeper.ts';
import { startProcessingWorkers } from './jobs/process-payment-order.job.ts';
import {
  createQueues,
  enqueueDeliverWebhook,
  enqueueFirstDeliveries,
  enqueueProcessPaymentOrder,
  QUEUES,
} from './jobs/queues.ts';
import { startKafkaEmitter } from './kafka/kafka-emitter.ts';
import type { Logger } from './lib/logger.ts';
import { refreshDatabaseGauges } from './metrics/database-gauges.ts';
import { createMetrics } from './metrics/metrics.ts';
import { startRelay } from './outbox/relay.ts';
import { providerAmountRules } from './providers/amount-rules.ts';
import { instrumentProvider } from './providers/instrumented.ts';
import { createProviders, providersNeedingSandbox } from './providers/registry.ts';
import { createSafeDispatcher } from './webhooks/safe-http.ts';

export const PGBOSS_SCHEMA = 'pgboss';

export type RunningService = Readonly<{
  /** Base URL of the HTTP API. */
  url: string;
  databaseUrl: string;
  db: Db;
  boss: PgBoss;
  /** The demo merchant's key, when DEMO_MERCHANT is on. */
  demoApiKey: string | null;
  /** The provider sandbox this instance started, if any. */
  sandboxUrl: string | null;
  /** Stop accepting, finish in-flight requests and jobs, close pools, stop the embedded database. */
  stop(): Promise<void>;
}>;

/**
 * Composition root: builds and starts every part in order, and knows how to stop them in reverse.
 * Aborting `signal` (SIGTERM during start-up) ends a wait for the database; the start then rejects.
 */
export async function startService(
  config: Config,
  logger: Logger,
  options: { signal?: AbortSignal } = {},
): Promise<RunningService> {
  const stops: Array<() => Promise<void>> = [];
  let stopFirst: (() => Promise<void>) | null = null;
  const stopAll = async () => {
    await stopFirst?.().catch((error: unknown) => logger.error({ err: error }, 'error while stopping'));
    for (const stop of stops.reverse()) {
      await stop().catch((error: unknown) => logger.error({ err: error }, 'error while stopping'));
    }
  };
  try {
    let embedded: EmbeddedDatabase | null = null;
    if (!config.databaseUrl) {
      embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort, logger });
      stops.push(() => (embedded as EmbeddedDatabase).stop());
    }
    const databaseUrl = config.databaseUrl ?? (embedded as EmbeddedDatabase).url;

    const pool = createPool(databaseUrl, config.databasePoolSize);
    const db = createDb(pool);
    stops.push(() => closeDb(db, pool));
    // A DATABASE_URL may be down or restarting as we start (the embedded one has just been started):
    // the migrations, our first statements, and pg-boss's start (safe to call again after a failure)
    // are retried until it answers (db/wait-for-database.ts).
    const whileUnreachable = <T>(work: () => Promise<T>): Promise<T> =>
      config.databaseUrl
        ? waitForDatabase(work, { timeoutMs: config.databaseStartupTimeoutMs, logger, signal: options.signal })
        : work();
    const applied = await whileUnreachable(() => migrate(pool));
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');

    const boss = new PgBoss({
      connectionString: databaseUrl,
      schema: PGBOSS_SCHEMA,
      application_name: 'payment-order-gateway:pg-boss',
      max: 5,
      // New processing jobs wake a worker at once (target: commit → provider call ≤ 100 ms).
      useListenNotify: true,
      // Dead workers' jobs (no heartbeat) are found on this pass: part of the crash-recovery bound.
      superviseIntervalSeconds: 10,
    });
    boss.on('error', (error) => logger.error({ err: error }, 'pg-boss error'));
    await whileUnreachable(() => boss.start());
    stops.push(() => boss.stop({ graceful: true, timeout: config.shutdownTimeoutMs }));
    await createQueues(boss);
    await startIdempotencySweeper(boss, db, config.idempotencySweepCron, logger);

    const demoApiKey = config.demoMerchant ? await ensureDemoApiKey(db, config.dataDir) : null;

    const sandboxed = providersNeedingSandbox(config);
    let sandboxUrl: string | null = null;
    if (sandboxed.length > 0) {
      const sandbox = await startSandbox({ port: 0, host: '127.0.0.1' });
      stops.push(() => sandbox.stop());
      sandboxUrl = sandbox.url;
      logger.info({ url: sandbox.url, providers: sandboxed }, 'provider sandbox started (no credentials configured)');
    }
    const enqueue = enqueueProcessPaymentOrder(boss);
    const processing = createProcessingStore({
      db,
      pool,
      enqueue,
      gate: {
        global: config.gate.callsPerSecond,
        perProvider: config.gate.perProvider,
        windowMs: 1000 + config.gate.marginMs,
      },
    });

    const metrics = createMetrics({ kafka: config.kafka !== null });
    // The public base URL is known once we listen (PORT=0 takes a free port); callbacks are only
    // built by the workers, which start after that.
    let publicBaseUrl = config.publicBaseUrl ?? '';
    const processDeps: ProcessDeps = {
      store: processing,
      providers: new Map(
        [...createProviders(config, sandboxUrl)].map(([name, provider]) => [
          name,
          instrumentProvider(provider, metrics),
        ]),
      ),
      policy: retryPolicy(config),
      callbackUrl: (provider, token) => `${publicBaseUrl}/callbacks/${provider}/${token}`,
    };
    const urlPolicy = { allowedCidrs: config.webhooks.allowedCidrs, allowHttp: config.webhooks.allowHttp };
    const enqueueDelivery = enqueueDeliverWebhook(boss);
    const app = createApp({
      db,
      logger,
      lookupMerchant: (hash) => findMerchantIdByKeyHash(db, hash),
      createOrder: {
        store: createOrderStore(db, enqueue),
        routing: config,
        amountRules: providerAmountRules,
        idempotencyKeyTtlHours: config.idempotencyKeyTtlHours,
      },
      processing: processDeps,
      lookupOperator: (hash) => findOperatorByKeyHash(db, hash),
      resolve: createResolutionStore(db),
      webhooks: { db, urlPolicy, secretRotationMs: config.webhooks.secretRotationMs },
      enqueueDelivery,
      metrics: {
        metrics,
        refresh: () =>
          refreshDatabaseGauges({ db, boss, metrics, queues: Object.values(QUEUES), kafka: config.kafka !== null }),
      },
    });
    const server = await listen(app, config.port, config.host);
    // The HTTP server stops accepting before anything else stops (then last-in first-out).
    stopFirst = () => closeServer(server, config.shutdownTimeoutMs);
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const url = `http://127.0.0.1:${port}`;
    publicBaseUrl = config.publicBaseUrl ?? url;
    logger.info({ port }, 'payment order gateway listening');

    // Workers start last: they need the callback endpoint up. They stop first (boss.stop, above).
    await startProcessingWorkers(boss, processDeps, config.workerConcurrency, logger);

    // Events: the relay turns committed outbox rows into deliveries; the webhook workers send them.
    const dispatcher = createSafeDispatcher(urlPolicy);
    stops.push(async () => {
      // In-flight deliveries first (they use the dispatcher), then the dispatcher.
      await boss.offWork(QUEUES.deliverWebhook, { wait: true }).catch(() => {});
      await dispatcher.close();
    });
    await startWebhookWorkers(
      boss,
      {
        db,
        dispatcher,
        enqueue: enqueueDelivery,
        timeoutMs: config.webhooks.timeoutMs,
        retryScheduleMs: config.webhooks.retryScheduleMs,
      },
      config.webhooks.concurrency,
      logger,
      metrics,
    );
    // One LISTEN connection for the process (db/notifications.ts); closed after its subscribers.
    const notifications = createNotifications(pool, logger);
    stops.push(() => notifications.close());
    if (config.webhooks.concurrency > 0) {
      const relay = await startRelay({ db, notifications, enqueueMany: enqueueFirstDeliveries(boss), logger });
      stops.push(() => relay.stop());
    }
    if (config.kafka) {
      const kafka = await startKafkaEmitter({
        db,
        notifications,
        brokers: [...config.kafka.brokers],
        topic: config.kafka.topic,
        clientId: config.kafka.clientId,
        batchSize: config.kafka.batchSize,
        backoff: { baseMs: 500, maxMs: config.kafka.retryMaxDelayMs },
        logger,
        metrics,
      });
      stops.push(() => kafka.stop());
    }

    let stopping: Promise<void> | null = null;
    return {
      url,
      databaseUrl,
      db,
      boss,
      demoApiKey,
      sandboxUrl,
      stop: () => {
        stopping ??= stopAll();
        return stopping;
      },
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
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

/**
 * The demo merchant's key is kept in <dataDir>/demo-api-key (mode 0600) so that every start can
 * print it again; the database, as for every key, holds only its hash.
 */
async function ensureDemoApiKey(db: Db, dataDir: string): Promise<string> {
  const file = path.resolve(dataDir, 'demo-api-key');
  const saved = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (looksLikeApiKey(saved) && (await findMerchantIdByKeyHash(db, hashApiKey(saved)))) return saved;
  const merchant = await ensureMerchant(db, 'demo');
  const created = newApiKey();
  await insertApiKey(db, merchant.id, created.hash, created.prefix);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${created.key}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return created.key;
}
