// npm run migrate: apply the numbered migrations in sql/ (the service also does this at start).
import { loadConfig } from '../config/config.ts';
import { createPool } from '../db/connection.ts';
import { startEmbeddedPostgres } from '../db/embedded-postgres.ts';
import { migrate } from '../db/migrate.ts';
import { createLogger } from '../lib/logger.ts';

const config = loadConfig();
const logger = createLogger(config.logLevel, { format: config.logFormat });
const embedded = config.databaseUrl
  ? null
  : await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort, logger });
const pool = createPool(config.databaseUrl ?? (embedded?.url as string), 2, 'payment-order-gateway:migrate');
try {
  const applied = await migrate(pool);
  process.stdout.write(applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'up to date\n');
} finally {
  await pool.end();
  await embedded?.stop();
}
