import type pg from 'pg';
import type { Config } from '../config/config.ts';
import { closeDb, createDb, createPool, type Db } from '../db/connection.ts';
import { startEmbeddedPostgres } from '../db/embedded-postgres.ts';
import { migrate } from '../db/migrate.ts';
import { createNotifications, type Notifications } from '../db/notifications.ts';
import { waitForDatabase } from '../db/wait-for-database.ts';
import type { Logger } from '../lib/logger.ts';
import type { Started } from './stop-stack.ts';

export type Database = Started &
  Readonly<{
    url: string;
    pool: pg.Pool;
    db: Db;
    /** The process's one LISTEN connection (db/notifications.ts). */
    notifications: Notifications;
    /** Retries `work` while a DATABASE_URL is unreachable (start-up only). */
    whileUnreachable<T>(work: () => Promise<T>): Promise<T>;
  }>;

/**
 * The database: the embedded PostgreSQL when no DATABASE_URL is set, the pool, the migrations,
 * and the notifications connection. A DATABASE_URL may be down or restarting as we start (the
 * embedded one has just been started): the migrations, and later pg-boss's start, are retried
 * until it answers (db/wait-for-database.ts). Stops in reverse: notifications, pool, server.
 */
export async function startDatabase(config: Config, logger: Logger, signal?: AbortSignal): Promise<Database> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const step of stops.reverse()) await step();
  };
  try {
    let url = config.databaseUrl;
    if (!url) {
      const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort, logger });
      stops.push(() => embedded.stop());
      url = embedded.url;
    }
    const pool = createPool(url, config.databasePoolSize);
    const db = createDb(pool);
    stops.push(() => closeDb(db, pool));
    const whileUnreachable = <T>(work: () => Promise<T>): Promise<T> =>
      config.databaseUrl
        ? waitForDatabase(work, { timeoutMs: config.databaseStartupTimeoutMs, logger, signal })
        : work();
    const applied = await whileUnreachable(() => migrate(pool));
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    const notifications = createNotifications(pool, logger);
    stops.push(() => notifications.close());
    return { url, pool, db, notifications, whileUnreachable, stop };
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
}
