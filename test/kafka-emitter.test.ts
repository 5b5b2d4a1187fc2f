/**
 * The Kafka emitter, against real PostgreSQL.
 *
 * These run in `npm test`, with no broker: the record built from an outbox row; the selection of
 * unpublished rows (order, marks, an out-of-order commit, skip locked); and the whole emitter
 * against a refused broker port, where it must retry with backoff, mark nothing, stop promptly,
 * and LISTEN again after losing its connection. Publishing to a real Apache Kafka broker (acks,
 * marks, a broker killed mid-stream, records it refuses, two instances) is `npm run test:kafka`,
 * in test/kafka/.
 */
import { once } from 'node:events';
import net from 'node:net';
import { MultipleErrors, NetworkError, ResponseError, UserError } from '@platformatic/kafka';
import { type Logger, pino } from 'pino';
import t, { type Test } from 'tap';
import { createDb, type Db } from '../src/db/connection.ts';
import { createNotifications } from '../src/db/notifications.ts';
import { markPublished, takeUnpublishedEvents } from '../src/db/outbox-events.repository.ts';
import { eventBody, type OutboxEvent } from '../src/domain/event-body.ts';
import { enqueueFirstDeliveries } from '../src/jobs/queues.ts';
import { eventRecord } from '../src/kafka/event-record.ts';
import { failureReason, recordRejection, sendSplittingRejects, startKafkaEmitter } from '../src/kafka/kafka-emitter.ts';
import { backoffDelay } from '../src/lib/backoff.ts';
import { relayPass } from '../src/outbox/relay.ts';
import { type TestDatabase, testDatabase } from './helpers/database.ts';
import { startTestService } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

const TOPIC = 'payment-orders.events';
const PUBLISH_FAILED = 'kafka publish failed; nothing unacknowledged marked published, will retry';

type Queryable = { query(text: string, values?: unknown[]): Promise<unknown> };

const MERCHANT = 'mer_kafka';
let sequence = 0;

/** A test database with one merchant in it. */
async function databaseWithMerchant(t: Test): Promise<TestDatabase> {
  const database = await testDatabase(t);
  await database.pool.query(`insert into merchants (id, name) values ($1, 'kafka')`, [MERCHANT]);
  return database;
}

/** A COMPLETED order and its outbox event, inserted directly; returns the event id. */
async function insertEvent(database: TestDatabase, on: Queryable = database.pool): Promise<string> {
  sequence += 1;
  const merchantId = MERCHANT;
  const orderId = `po_kafka_${process.pid}_${sequence}`;
  const eventId = `evt_kafka_${process.pid}_${sequence}`;
  await on.query(
    `insert into payment_orders (id, merchant_id, status, amount, currency, provider, idempotency_key)
     values ($1, $2, 'COMPLETED', 2500, 'EUR', 'stripe', $3)`,
    [orderId, merchantId, `key-${sequence}`],
  );
  const payload = { id: orderId, object: 'payment_order', status: 'COMPLETED', amount: 2500, currency: 'EUR' };
  await on.query(
    `insert into outbox_events (id, merchant_id, order_id, type, payload)
     values ($1, $2, $3, 'payment_order.completed', $4)`,
    [eventId, merchantId, orderId, JSON.stringify(payload)],
  );
  return eventId;
}

const take = (db: Db, limit = 100) => db.transaction().execute((trx) => takeUnpublishedEvents(trx, limit));
const ids = (events: readonly OutboxEvent[]) => events.map((event) => event.id);

/** A port on 127.0.0.1 that refuses connections: listened on, then closed. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** The emitter, with quick backoff, against a port that refuses connections; stopped at teardown. */
async function emitterOnRefusedBroker(t: Test, database: TestDatabase, logger: Logger) {
  const notifications = createNotifications(database.pool, logger, { baseMs: 20, maxMs: 100 });
  const started = await startKafkaEmitter({
    db: createDb(database.pool),
    notifications,
    brokers: [`127.0.0.1:${await closedPort()}`],
    topic: TOPIC,
    clientId: 'kafka-emitter-test',
    logger,
    backoff: { baseMs: 20, maxMs: 100 },
  });
  // The emitter, then the process's notifications connection (as the service stops them).
  const emitter = {
    async stop() {
      await started.stop();
      await notifications.close();
    },
  };
  t.teardown(() => emitter.stop());
  return emitter;
}

/** A pino logger writing parsed lines to an array. */
function captureLogs() {
  const lines: Array<Record<string, any>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines, with: (msg: string) => lines.filter((line) => line.msg === msg) };
}

t.test('record: key = order id, value = the webhook body, event id and type in headers', async (t) => {
  const event: OutboxEvent = {
    id: 'evt_1',
    type: 'payment_order.failed',
    orderId: 'po_1',
    subscriptionId: null,
    merchantId: 'mer_1',
    createdAt: new Date('2025-01-02T03:04:05.678Z'),
    payload: { id: 'po_1', status: 'FAILED', failure: { code: 'generic_decline' } },
  };
  t.same(eventBody(event), {
    id: 'evt_1',
    type: 'payment_order.failed',
    createdAt: '2025-01-02T03:04:05.678Z',
    data: { id: 'po_1', status: 'FAILED', failure: { code: 'generic_decline' } },
  });
  const record = eventRecord(event, TOPIC);
  t.same(record, {
    topic: TOPIC,
    key: 'po_1',
    value: JSON.stringify(eventBody(event)),
    headers: { 'event-id': 'evt_1', 'event-type': 'payment_order.failed' },
  });
  t.same(JSON.parse(record.value), eventBody(event));
  t.notOk('merchantId' in JSON.parse(record.value), 'the merchant id stays internal');
});

t.test('record from a stored row: data is the row payload, createdAt the row time', async (t) => {
  const database = await databaseWithMerchant(t);
  const db = createDb(database.pool);
  const id = await insertEvent(database);
  const [event] = await take(db);
  const [row] = await database.rows('select * from outbox_events where id = $1', [id]);
  const record = eventRecord(event!, TOPIC);
  t.equal(record.key, row!.order_id);
  t.same(JSON.parse(record.value), {
    id,
    type: 'payment_order.completed',
    createdAt: row!.created_at.toISOString(),
    data: row!.payload,
  });
  t.same(record.headers, { 'event-id': id, 'event-type': 'payment_order.completed' });
});

t.test('cursor: unpublished rows in order, published ones never, the batch limit holds', async (t) => {
  const database = await databaseWithMerchant(t);
  const db = createDb(database.pool);
  const [a, b, c] = [await insertEvent(database), await insertEvent(database), await insertEvent(database)];
  await database.pool.query('update outbox_events set kafka_published_at = now() where id = $1', [b]);
  t.same(ids(await take(db)), [a, c], 'oldest first, the published row skipped');
  t.same(ids(await take(db, 1)), [a], 'limit');

  await db.transaction().execute((trx) => markPublished(trx, [a]));
  t.same(ids(await take(db)), [c]);
  t.equal(await database.count('outbox_events', 'kafka_published_at is not null'), 2);
  t.equal(await database.count('outbox_events', 'relayed_at is not null'), 0, 'the webhook mark is not touched');

  await db
    .transaction()
    .execute(async (trx) => {
      await markPublished(trx, [c]);
      throw new Error('rolled back');
    })
    .catch(() => {});
  t.same(ids(await take(db)), [c], 'a mark rolled back with its transaction is no mark');
});

t.test('cursor: a row whose transaction commits after a later row is still taken', async (t) => {
  const database = await databaseWithMerchant(t);
  const db = createDb(database.pool);
  const late = await database.pool.connect();
  await late.query('begin');
  const early = await insertEvent(database, late); // created_at = its transaction's start: earlier
  const later = await insertEvent(database);
  t.same(ids(await take(db)), [later], 'the uncommitted row is invisible');
  await db.transaction().execute((trx) => markPublished(trx, [later]));

  await late.query('commit');
  late.release();
  const [row] = await database.rows(
    'select created_at < (select created_at from outbox_events where id = $2) as older from outbox_events where id = $1',
    [early, later],
  );
  t.ok(row!.older, 'the late row sorts before the row already published');
  t.same(ids(await take(db)), [early], 'taken anyway: progress is a mark per row, not a cursor');
});

t.test('one publisher at a time: while a step holds the lock, another instance takes nothing', async (t) => {
  const database = await databaseWithMerchant(t);
  const db = createDb(database.pool);
  const [a, b] = [await insertEvent(database), await insertEvent(database)];
  const held = Promise.withResolvers<OutboxEvent[]>();
  const release = Promise.withResolvers<void>();
  const first = db.transaction().execute(async (trx) => {
    held.resolve(await takeUnpublishedEvents(trx, 100));
    await release.promise;
  });
  t.same(ids(await held.promise), [a, b]);
  t.same(ids(await take(db)), [], 'not the same rows again, and not waited for');
  const locked = await database.rows('select id from outbox_events for update nowait');
  t.equal(locked.length, 2, 'no row locks: the relay can mark its own column meanwhile');
  release.resolve();
  await first;
  t.same(ids(await take(db)), [a, b], 'the next step (nothing was marked) takes them again');
});

t.test('a send hanging on an unanswering broker does not hold up the webhook relay', async (t) => {
  // A "broker" that accepts connections and reads requests but never answers: the emitter's step
  // stays inside producer.send(), its transaction open, until the producer's timeout.
  let requestBytes = 0;
  const sockets = new Set<net.Socket>();
  const blackHole = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('data', (chunk) => (requestBytes += chunk.length));
  });
  blackHole.listen(0, '127.0.0.1');
  await once(blackHole, 'listening');
  t.teardown(() => {
    blackHole.close();
    for (const socket of sockets) socket.destroy();
  });
  const { port } = blackHole.address() as net.AddressInfo;
  // Kafka on; the relay off, so that this test decides when it runs (no race with the emitter).
  const service = await startTestService(t, { KAFKA_BROKERS: `127.0.0.1:${port}`, WEBHOOK_CONCURRENCY: '0' });
  await service.database.pool.query(`insert into merchants (id, name) values ($1, 'kafka')`, [MERCHANT]);
  const event = await insertEvent(service.database);
  await waitFor('the emitter to be inside a send', () => requestBytes > 0 || undefined);

  const relayed = await relayPass({
    db: service.db,
    enqueueMany: enqueueFirstDeliveries(service.boss),
  });
  t.equal(relayed, 1, 'the relay took the event the emitter is sending');
  t.equal(await service.database.count('outbox_events', 'id = $1 and relayed_at is not null', [event]), 1);
  t.equal(
    await service.database.count('outbox_events', 'id = $1 and kafka_published_at is null', [event]),
    1,
    'not published: the broker never answered',
  );
});

t.test('broker refused: retries with backoff, marks nothing, stops promptly', async (t) => {
  const database = await databaseWithMerchant(t);
  const events = [await insertEvent(database), await insertEvent(database), await insertEvent(database)];
  const logs = captureLogs();
  const emitter = await emitterOnRefusedBroker(t, database, logs.logger);

  const failures = await waitFor(
    'two failed publish attempts',
    () => logs.with(PUBLISH_FAILED).length >= 2 && logs.with(PUBLISH_FAILED),
  );
  t.same(
    failures.slice(0, 2).map((line) => line.attempt),
    [1, 2],
    'consecutive attempts counted',
  );
  t.ok(failures.every((line) => line.level === 40 && line.retryInMs >= 10 && line.retryInMs <= 100 && line.err));
  await insertEvent(database); // arrives while it retries: wakes nothing early, breaks nothing
  await waitFor('a third failed attempt', () => logs.with(PUBLISH_FAILED).length >= 3);
  t.equal(await database.count('outbox_events', 'kafka_published_at is not null'), 0, 'nothing marked published');

  const stopping = Date.now();
  await emitter.stop();
  const stopMs = Date.now() - stopping;
  t.ok(stopMs < 2_000, `stop() returned in ${stopMs} ms while retrying`);
  t.ok(logs.with('kafka emitter stopped').length === 1);
  t.equal(await database.count('outbox_events', 'kafka_published_at is not null'), 0, 'still nothing marked');
  t.equal(database.pool.totalCount, database.pool.idleCount, 'every connection back in the pool');
  // No lock left behind: every row can be locked at once, and all are still to be published.
  const locked = await database.rows('select id from outbox_events where kafka_published_at is null for update nowait');
  t.equal(locked.length, events.length + 1);
  await emitter.stop(); // idempotent
});

t.test('listener: LISTENs again after its connection is killed', async (t) => {
  const database = await databaseWithMerchant(t);
  const logs = captureLogs();
  const listenerPid = async () =>
    (
      await database.rows<{ pid: number }>(
        `select pid from pg_stat_activity where datname = current_database() and query = 'listen outbox_events'`,
      )
    )[0]?.pid;
  const emitter = await emitterOnRefusedBroker(t, database, logs.logger);

  const first = await waitFor('the listener', listenerPid);
  await database.pool.query('select pg_terminate_backend($1)', [first]);
  await waitFor('a reconnection', () => logs.with('notifications reconnected').length === 1);
  const second = await waitFor('the new listener', async () => {
    const pid = await listenerPid();
    return pid !== first && pid;
  });
  t.not(second, first);
  t.equal(logs.with('notifications connection lost; reconnecting').length, 1);
  await emitter.stop();
  t.equal(database.pool.totalCount, database.pool.idleCount, 'every connection back in the pool');
});

t.test('backoff: doubles from the base, capped, jittered between half and all of it', async (t) => {
  const backoff = { baseMs: 500, maxMs: 30_000 };
  t.same(
    [1, 2, 3, 7, 8, 50].map((attempt) => backoffDelay(attempt, backoff, () => 1)),
    [500, 1_000, 2_000, 30_000, 30_000, 30_000],
  );
  t.same(
    [1, 2, 8].map((attempt) => backoffDelay(attempt, backoff, () => 0)),
    [250, 500, 15_000],
  );
});

/** The error @platformatic/kafka's send() throws when the broker answers MESSAGE_TOO_LARGE (code 10). */
function tooLarge(): Error {
  const response = new ResponseError(0, 11, { '/responses/0/partition_responses/0': [10, null] }, {});
  return new MultipleErrors('Producing messages failed.', [response]);
}

t.test('splitting: a refused batch is halved down to the refused record; the rest go, in order', async (t) => {
  const events = Array.from({ length: 9 }, (_, i) => ({ id: `evt_${i}`, size: i === 5 ? 50 : 3 }));
  const sent: string[][] = [];
  // A broker that refuses any batch over 10 units (as max.message.bytes applies to a record batch).
  const send = async (batch: readonly { id: string; size: number }[]) => {
    if (batch.reduce((sum, event) => sum + event.size, 0) > 10) throw tooLarge();
    sent.push(batch.map((event) => event.id));
  };
  const outcome = await sendSplittingRejects(send as never, events as never);
  t.same(
    outcome.dead.map((entry) => (entry.event as unknown as { id: string }).id),
    ['evt_5'],
    'only the record that cannot pass alone is dead',
  );
  t.match(outcome.dead[0]?.error, /^MESSAGE_TOO_LARGE \(/, "with the broker's reason");
  t.same(
    sent.flat(),
    events.filter((event) => event.id !== 'evt_5').map((event) => event.id),
    'every other event sent once, in order',
  );
  t.notOk(outcome.failure);
  t.same(
    (outcome.published as unknown as { id: string }[]).map((event) => event.id),
    sent.flat(),
  );
});

t.test('splitting: any other failure stops it, keeping what was acknowledged before', async (t) => {
  const events = Array.from({ length: 4 }, (_, i) => ({ id: `evt_${i}` }));
  let calls = 0;
  const down = new NetworkError('Connection closed');
  const send = async (batch: readonly unknown[]) => {
    calls += 1;
    if (calls === 1) throw tooLarge(); // the whole batch: split
    if (calls === 3) throw down; // the second half: the broker went away
    return batch;
  };
  const outcome = await sendSplittingRejects(send as never, events as never);
  t.same(
    (outcome.published as unknown as { id: string }[]).map((event) => event.id),
    ['evt_0', 'evt_1'],
  );
  t.same(outcome.dead, []);
  t.equal(outcome.failure, down);
});

t.test('failure reasons: record rejections, a missing topic, an unreachable broker', async (t) => {
  t.match(recordRejection(tooLarge()), /^MESSAGE_TOO_LARGE/);
  t.equal(recordRejection(new UserError('Unknown topic nope.')), null);
  t.equal(recordRejection(new NetworkError('Connection closed')), null);
  t.equal(failureReason(new UserError('Unknown topic nope.')), 'topic_missing');
  const unknownTopic = new MultipleErrors('Producing messages failed.', [
    new ResponseError(0, 11, { '/responses/0/partition_responses/0': [3, null] }, {}),
  ]);
  t.equal(failureReason(unknownTopic), 'topic_missing', 'UNKNOWN_TOPIC_OR_PARTITION (3)');
  t.equal(
    failureReason(
      new MultipleErrors('initProducerId failed 4 times.', [new MultipleErrors('Cannot connect to any broker.', [])]),
    ),
    'broker_unavailable',
  );
  t.equal(failureReason(new Error('something else')), 'other');
});
