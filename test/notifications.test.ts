// The process's notifications connection (src/db/notifications.ts), against real PostgreSQL: a
// first connection that cannot be made does not fail the subscriber, it is retried, and NOTIFYs
// arrive once it is made; a channel subscribed later is LISTENed on the open connection.
import pg from 'pg';
import { type Logger, pino } from 'pino';
import t from 'tap';
import { createNotifications } from '../src/db/notifications.ts';
import { testDatabase } from './helpers/database.ts';
import { startRefusingProxy } from './helpers/refusing-proxy.ts';
import { waitFor } from './helpers/wait.ts';

function captureLogs(): { logger: Logger; messages: () => string[] } {
  const lines: Array<{ msg: string }> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, messages: () => lines.map((line) => line.msg) };
}

t.test('database unreachable at the first subscribe: no failure, retried, then notified', async (t) => {
  const database = await testDatabase(t);
  // The pool reaches the database through a relay that refuses connections until told otherwise.
  const proxy = await startRefusingProxy(t, database.url.replace(/^postgres:/, 'http:'));
  await proxy.refuse();
  const viaProxy = new URL(database.url);
  viaProxy.port = new URL(proxy.url).port;
  const pool = new pg.Pool({ connectionString: viaProxy.toString(), max: 2 });
  t.teardown(() => pool.end());
  const logs = captureLogs();
  const notifications = createNotifications(pool, logs.logger, { baseMs: 20, maxMs: 100 });
  t.teardown(() => notifications.close());

  let woken = 0;
  await notifications.subscribe('outbox_events', () => woken++);
  t.ok(logs.messages().includes('notifications could not connect; retrying in the background'));
  t.equal(woken, 0);

  await proxy.accept();
  await waitFor('the connection made', () => logs.messages().includes('notifications reconnected'));
  const afterConnect = await waitFor('subscribers woken once connected', () => woken > 0 && woken);
  await database.pool.query(`select pg_notify('outbox_events', 'evt_x')`);
  await waitFor('the NOTIFY delivered', () => woken > afterConnect);

  // A channel subscribed after the connection exists is LISTENed on it.
  let other = 0;
  await notifications.subscribe('other_channel', () => other++);
  await database.pool.query(`select pg_notify('other_channel', 'x')`);
  await waitFor('the later channel notified', () => other > 0);
  await notifications.close();
  t.equal(pool.totalCount, pool.idleCount, 'the connection is back in the pool after close');
});
