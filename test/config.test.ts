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
