import { Kysely, PostgresDialect, type Transaction } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;

export function createPool(connectionString: string, max: number, applicationName = 'payment-order-gateway'): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max,
    application_name: applicationName,
    // Fail fast when the database is gone, so /readyz answers 503 instead of hanging.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // A client that loses its server emits 'error': an idle one on the pool, a checked-out one on
  // itself (e.g. between the statements of a transaction, or while holding an order's lock).
  // Unheard, either would crash the process; the failure already reaches whoever uses the
  // connection through its query, and the pool replaces broken clients.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

export function createDb(pool: pg.Pool): Db {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Closes kysely and the pool under it. Kysely only ends a pool it has used (it initialises its
 * driver lazily), so the pool is ended here too; otherwise an idle connection of a pool that only
 * served raw queries keeps the process alive for its idle timeout.
 */
export async function closeDb(db: Db, pool: pg.Pool): Promise<void> {
  await db.destroy();
  if (!pool.ended) await pool.end();
}
