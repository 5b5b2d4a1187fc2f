import type { Config } from '../config/config.ts';
import type { PaymentProvider } from '../domain/provider.ts';
import type { Logger } from '../lib/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { instrumentProvider } from '../providers/instrumented.ts';
import { createProviders, providersNeedingSandbox } from '../providers/registry.ts';
import type { Started } from './stop-stack.ts';

export type Providers = Started &
  Readonly<{
    providers: ReadonlyMap<string, PaymentProvider>;
    /** The provider sandbox this instance started, if any. */
    sandboxUrl: string | null;
  }>;

/**
 * The provider adapters, instrumented. Providers without credentials are sent to the provider
 * sandbox, started here in-process; it is imported only then, so that the fake provider is not in
 * the production import graph.
 */
export async function startProviders(config: Config, metrics: Metrics, logger: Logger): Promise<Providers> {
  const sandboxed = providersNeedingSandbox(config);
  let sandbox: { url: string; stop(): Promise<void> } | null = null;
  if (sandboxed.length > 0) {
    const { startSandbox } = await import('../../sandbox/sandbox.ts');
    sandbox = await startSandbox({ port: 0, host: '127.0.0.1' });
    logger.info({ url: sandbox.url, providers: sandboxed }, 'provider sandbox started (no credentials configured)');
  }
  const sandboxUrl = sandbox?.url ?? null;
  const providers = new Map(
    [...createProviders(config, sandboxUrl)].map(([name, provider]) => [name, instrumentProvider(provider, metrics)]),
  );
  return { providers, sandboxUrl, stop: async () => sandbox?.stop() };
}
