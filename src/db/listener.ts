import type pg from 'pg';
import type { Logger } from '../lib/logger.ts';

/**
 * LISTEN on a connection of its own and call `onNotify` for each notification. If the connection
 * drops it reconnects (and calls `onNotify` once, since notifications may have been missed).
 * Consumers also poll: NOTIFY is a way to be fast, never the only way to be right.
 */
export async function listen(
  pool: pg.Pool,
  channel: string,
  onNotify: () => void,
  logger: Logger,
): Promise<{ close(): Promise<void> }> {
  let client: pg.PoolClient | null = null;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  let releaseCurrent: () => void = () => {};

  const connect = async (): Promise<void> => {
    try {
      const c = await pool.connect();
      let released = false;
      c.on('notification', onNotify);
      // A dropped connection can report more than one error: release it once, reconnect once.
      c.on('error', (error) => {
        if (released) return;
        released = true;
        if (client === c) client = null;
        c.release(true);
        if (closed) return;
        logger.warn({ err: error, channel }, 'listener connection lost; reconnecting');
        retry = setTimeout(() => void connect(), 1_000);
      });
      await c.query(`listen ${channel}`);
      if (closed) {
        released = true;
        c.release();
        return;
      }
      client = c;
      releaseCurrent = () => {
        if (released) return;
        released = true;
        c.release();
      };
      onNotify();
    } catch (error) {
      logger.warn({ err: error, channel }, 'listen failed; retrying');
      if (!closed) retry = setTimeout(() => void connect(), 1_000);
    }
  };
  await connect();

  return {
    async close() {
      closed = true;
      clearTimeout(retry);
      const c = client;
      client = null;
      if (c) {
        await c.query(`unlisten ${channel}`).catch(() => {});
        releaseCurrent();
      }
    },
  };
}
