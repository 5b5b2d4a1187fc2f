import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { type Backoff, backoffDelay } from '../lib/backoff.ts';
import type { Logger } from '../lib/logger.ts';

/**
 * PostgreSQL notifications for the whole process: one connection, LISTENing on every channel a
 * part subscribed to. A NOTIFY is only a latency hint: every subscriber also polls, so a
 * notification lost while the connection is down costs at most one poll interval.
 *
 * - The connection is made by the first subscribe; if it cannot be made, it is retried in the
 *   background like a lost one (the database was reachable a moment before: the migrations ran).
 * - When it is lost, it reconnects with backoff (500 ms doubling to 30 s, jittered), LISTENs again
 *   on every channel, and calls every subscriber once (something may have committed meanwhile).
 * - Channel names are our own constants (never input): LISTEN takes an identifier, not a parameter.
 */
export type Notifications = Readonly<{
  subscribe(channel: string, onNotify: () => void): Promise<void>;
  /** UNLISTENs, releases the connection, ends a reconnection in progress. */
  close(): Promise<void>;
}>;

const DEFAULT_BACKOFF: Backoff = { baseMs: 500, maxMs: 30_000 };
const CHANNEL_NAME = /^[a-z_][a-z0-9_]*$/;

type Listening = Readonly<{ client: pg.PoolClient; release(error?: Error): void }>;

export function createNotifications(pool: pg.Pool, logger: Logger, backoff: Backoff = DEFAULT_BACKOFF): Notifications {
  const log = logger.child({ component: 'notifications' });
  const subscribers = new Map<string, Set<() => void>>();
  const closing = new AbortController();
  let current: Listening | undefined;
  let connecting: Promise<void> | undefined;
  let reconnecting: Promise<void> | undefined;

  const onNotification = (message: pg.Notification) => {
    for (const fn of subscribers.get(message.channel) ?? []) fn();
  };
  const wakeEveryone = () => {
    for (const set of subscribers.values()) for (const fn of set) fn();
  };

  const connect = async (): Promise<void> => {
    const client = await pool.connect();
    let released = false;
    const listening: Listening = {
      client,
      release(error) {
        if (released) return;
        released = true;
        client.removeListener('notification', onNotification);
        // An error destroys the connection instead of returning it to the pool.
        client.release(error ?? false);
      },
    };
    client.on('error', (error) => {
      listening.release(error);
      if (current !== listening) return;
      current = undefined;
      log.warn({ err: error }, 'notifications connection lost; reconnecting');
      reconnecting = reconnect();
    });
    client.on('notification', onNotification);
    try {
      for (const channel of subscribers.keys()) await client.query(`listen ${channel}`);
    } catch (error) {
      listening.release(error as Error);
      throw error;
    }
    if (closing.signal.aborted) {
      listening.release(new Error('closed while connecting'));
      return;
    }
    current = listening;
    wakeEveryone();
  };

  const reconnect = async (): Promise<void> => {
    for (let attempt = 1; !closing.signal.aborted; attempt++) {
      await sleep(backoffDelay(attempt, backoff), undefined, { signal: closing.signal }).catch(() => {});
      if (closing.signal.aborted) return;
      try {
        await connect();
        log.info({ attempt }, 'notifications reconnected');
        return;
      } catch (error) {
        log.warn({ err: error, attempt }, 'notifications could not reconnect');
      }
    }
  };

  return {
    async subscribe(channel, onNotify) {
      if (!CHANNEL_NAME.test(channel)) throw new Error(`bad channel name ${channel}`);
      const known = subscribers.has(channel);
      subscribers.set(channel, (subscribers.get(channel) ?? new Set()).add(onNotify));
      if (connecting) await connecting;
      else if (!current && !reconnecting) {
        // The first subscriber connects (LISTENing on every channel known by then). If that fails
        // (the database blinked), it goes on trying in the background: the subscribers poll
        // meanwhile, so a start-up is not failed for a latency hint.
        connecting = connect()
          .catch((error: unknown) => {
            log.warn({ err: error }, 'notifications could not connect; retrying in the background');
            reconnecting = reconnect();
          })
          .finally(() => {
            connecting = undefined;
          });
        await connecting;
        return;
      }
      // Already connected: this channel may be new to the connection. (While reconnecting, the
      // new connection LISTENs on every channel, this one included.)
      if (current && !known) await current.client.query(`listen ${channel}`);
    },
    async close() {
      closing.abort();
      await reconnecting;
      await connecting?.catch(() => {});
      const listening = current;
      current = undefined;
      if (!listening) return;
      try {
        await listening.client.query('unlisten *');
        listening.release();
      } catch (error) {
        listening.release(error as Error);
      }
    },
  };
}
