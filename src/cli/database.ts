import type pg from 'pg';
import type { Config } from '../config/config.ts';
import { closeDb, createDb, createPool, type Db } from '../db/connection.ts';
import { startEmbeddedPostgres } from '../db/embedded-postgres.ts';
import { migrate } from '../db/migrate.ts';
import { createLogger } from '../lib/logger.ts';

/**
 * The database a command-line tool works on: DATABASE_URL, or the embedded PostgreSQL in DATA_DIR
 * (started for the command if no instance is running, and stopped after it). Migrations are applied
 * first, so a tool works on a fresh data directory too — except for a reader (`migrate: false`):
 * an export from a newer checkout must not change a production schema as a side effect. `pool` is the same connections without
 * kysely, for what kysely cannot do (COPY). Logs go to stderr: a tool's stdout is its output
 * (`npm run ops -- export ... > orders.csv`).
 */
export async function withCliDatabase<T>(
  config: Config,
  work: (db: Db, pool: pg.Pool) => Promise<T>,
  options: { migrate?: boolean } = {},
): Promise<T> {
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, {
    format: config.logFormat,
    fd: 2,
  });
  const embedded = config.databaseUrl
    ? null
    : await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort, logger });
  const pool = createPool(config.databaseUrl ?? (embedded?.url as string), 2, 'payment-order-gateway:cli');
  const db = createDb(pool);
  try {
    if (options.migrate !== false) await migrate(pool);
    return await work(db, pool);
  } finally {
    await closeDb(db, pool);
    await embedded?.stop();
  }
}
