import { pino } from 'pino';
import { exitOnSignals } from '../src/lib/shutdown.ts';
import { startSandbox } from './sandbox.ts';
import { SwitchesError } from './switches.ts';

/**
 * `npm run sandbox`: the provider sandbox on SANDBOX_HOST:SANDBOX_PORT (default 127.0.0.1:12111),
 * with switches from SANDBOX_SWITCHES (JSON, e.g. '{"errorRate":0.1}'). SIGTERM/SIGINT stop it (exit 0).
 */
async function main(): Promise<void> {
  const logger = pino({ level: process.env.LOG_LEVEL || 'info', base: { service: 'provider-sandbox' } });
  let options: { port: number; host: string; switches: object };
  try {
    options = readEnvironment(process.env);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(78); // EX_CONFIG
  }
  let sandbox: Awaited<ReturnType<typeof startSandbox>>;
  try {
    sandbox = await startSandbox({ ...options, log: (line) => logger.info(line) });
  } catch (error) {
    if (!(error instanceof SwitchesError)) throw error;
    process.stderr.write(`SANDBOX_SWITCHES: ${error.message}\n`);
    process.exit(78);
  }
  logger.info({ url: sandbox.url, port: sandbox.port }, 'provider sandbox listening');

  exitOnSignals(() => sandbox.stop(), logger);
}

function readEnvironment(env: NodeJS.ProcessEnv): { port: number; host: string; switches: object } {
  const port = Number(env.SANDBOX_PORT ?? 12111);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`SANDBOX_PORT: not a port: ${env.SANDBOX_PORT}`);
  let switches: unknown = {};
  if (env.SANDBOX_SWITCHES) {
    try {
      switches = JSON.parse(env.SANDBOX_SWITCHES);
    } catch (error) {
      throw new Error(`SANDBOX_SWITCHES: not JSON: ${(error as Error).message}`);
    }
  }
  if (typeof switches !== 'object' || switches === null) throw new Error('SANDBOX_SWITCHES: not a JSON object');
  return { port, host: env.SANDBOX_HOST || '127.0.0.1', switches };
}

main().catch((error: unknown) => {
  process.stderr.write(`failed to start: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
