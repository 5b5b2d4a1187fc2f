import { type Config, ConfigError, loadConfig } from './config/config.ts';
import { createLogger } from './lib/logger.ts';
import { exitOnSignals } from './lib/shutdown.ts';
import { startService } from './service.ts';

/**
 * `npm start`: the gateway with everything it needs. SIGTERM/SIGINT stop it cleanly (exit 0);
 * a second signal while stopping exits at once.
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  const service = await startService(config, logger);
  if (service.demoApiKey) {
    process.stdout.write(
      `\nGateway on ${service.url} (database: ${config.databaseUrl ? 'DATABASE_URL' : `embedded PostgreSQL in ${config.dataDir}`})\n`,
    );
    process.stdout.write(`API key: ${service.demoApiKey}\n\n`);
  }

  exitOnSignals(() => service.stop(), logger);
}

main().catch((error: unknown) => {
  process.stderr.write(`failed to start: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
