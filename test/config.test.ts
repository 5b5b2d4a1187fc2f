// Configuration checks made at load, before anything starts.
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config/config.ts';

const base = { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x', PROVIDER_SANDBOX: 'false' };

t.test('the pool must leave a connection beside the ones held for long', async (t) => {
  // 4 order locks + the relay's LISTEN = 5 held: a pool of 5 deadlocked (every step waited for a
  // connection none could give back); 6 leaves one over.
  t.throws(() => loadConfig({ ...base, WORKER_CONCURRENCY: '4', DATABASE_POOL_SIZE: '5' }), {
    name: 'ConfigError',
    message: /DATABASE_POOL_SIZE: 5 is too small: 5 connections are held .*at least 6/,
  });
  t.equal(loadConfig({ ...base, WORKER_CONCURRENCY: '4', DATABASE_POOL_SIZE: '6' }).databasePoolSize, 6);
  // The Kafka emitter holds one more (the LISTEN connection is shared with the relay).
  t.throws(
    () => loadConfig({ ...base, WORKER_CONCURRENCY: '4', DATABASE_POOL_SIZE: '6', KAFKA_BROKERS: '127.0.0.1:9092' }),
    { message: /Kafka emitter's step\); set it to at least 7/ },
  );
  t.ok(
    loadConfig({ ...base, WORKER_CONCURRENCY: '4', DATABASE_POOL_SIZE: '7', KAFKA_BROKERS: '127.0.0.1:9092' }).kafka,
  );
  // Without workers or a relay nothing is held.
  t.equal(
    loadConfig({ ...base, WORKER_CONCURRENCY: '0', WEBHOOK_CONCURRENCY: '0', DATABASE_POOL_SIZE: '2' })
      .databasePoolSize,
    2,
  );
  t.ok(new ConfigError('x') instanceof Error);
});

t.test('Kafka settings: batch size and the longest retry delay', async (t) => {
  const kafka = loadConfig({
    ...base,
    KAFKA_BROKERS: ' a:9092, b:9092 ',
    KAFKA_BATCH_SIZE: '250',
    KAFKA_RETRY_MAX_DELAY_MS: '5000',
  }).kafka;
  t.same(kafka, {
    brokers: ['a:9092', 'b:9092'],
    topic: 'payment-orders.events',
    clientId: 'payment-order-gateway',
    batchSize: 250,
    retryMaxDelayMs: 5000,
  });
  t.throws(() => loadConfig({ ...base, KAFKA_BROKERS: 'a:9092', KAFKA_BATCH_SIZE: '0' }), /KAFKA_BATCH_SIZE/);
  t.throws(
    () => loadConfig({ ...base, KAFKA_BROKERS: 'a:9092', KAFKA_RETRY_MAX_DELAY_MS: '10' }),
    /KAFKA_RETRY_MAX_DELAY_MS/,
  );
});

t.test('webhook ranges and the sweep cron are checked at load, the variable named', async (t) => {
  for (const bad of ['999.0.0.0/8', '10.0.0.0/33', '10.0.0.0', 'fd00::/129', '10.0.0.0/8/1', 'example.com/8']) {
    t.throws(() => loadConfig({ ...base, WEBHOOK_ALLOWED_CIDRS: bad }), {
      name: 'ConfigError',
      message: new RegExp(`WEBHOOK_ALLOWED_CIDRS: bad range "${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"`),
    });
  }
  t.same(loadConfig({ ...base, WEBHOOK_ALLOWED_CIDRS: ' 10.0.0.0/8, fd00::/8 ' }).webhooks.allowedCidrs, [
    '10.0.0.0/8',
    'fd00::/8',
  ]);
  for (const bad of ['not a cron', '61 * * * *', '0 25 * * *', '0 0 32 * *']) {
    t.throws(() => loadConfig({ ...base, IDEMPOTENCY_SWEEP_CRON: bad }), {
      name: 'ConfigError',
      message: /IDEMPOTENCY_SWEEP_CRON: not a cron expression/,
    });
  }
  t.equal(loadConfig({ ...base, IDEMPOTENCY_SWEEP_CRON: '0 3 * * *' }).idempotencySweepCron, '0 3 * * *');
});

t.test('group commit and the API key cache: defaults and bounds', async (t) => {
  const config = loadConfig(base);
  t.same(config.createBatch, { maxBatch: 100, maxInFlight: 4 });
  t.equal(config.apiKeyCacheMs, 5_000);
  t.equal(loadConfig({ ...base, API_KEY_CACHE_SECONDS: '0' }).apiKeyCacheMs, 0);
  for (const [name, value] of [
    ['CREATE_BATCH_MAX', '0'],
    ['CREATE_BATCHES_IN_FLIGHT', '51'],
    ['API_KEY_CACHE_SECONDS', '-1'],
    ['API_KEY_CACHE_SECONDS', '301'],
  ] as const) {
    t.throws(() => loadConfig({ ...base, [name]: value }), { name: 'ConfigError', message: new RegExp(name) });
  }
});
