import type { Config } from '../config/config.ts';
import type { PaymentProvider } from '../domain/provider.ts';
import { createMpesaAdapter } from './mpesa.ts';
import { createStripeAdapter } from './stripe.ts';

const STRIPE_API_URL = 'https://api.stripe.com';
const DARAJA_API_URL = 'https://sandbox.safaricom.co.ke';

/** Which providers run against the local sandbox: those with neither credentials nor a URL. */
export function providersNeedingSandbox(config: Config): string[] {
  if (!config.providerSandbox) return [];
  const needs: string[] = [];
  if (config.providers.includes('stripe') && !config.stripe.secretKey && !config.stripe.apiUrl) needs.push('stripe');
  if (config.providers.includes('mpesa') && !config.mpesa.consumerKey && !config.mpesa.apiUrl) needs.push('mpesa');
  return needs;
}

/**
 * The configured providers' adapters. A provider with a URL uses it; one with neither credentials
 * nor URL uses the sandbox (if running); one with credentials only uses the provider's own API.
 */
export function createProviders(config: Config, sandboxUrl: string | null): Map<string, PaymentProvider> {
  const providers = new Map<string, PaymentProvider>();
  const timeoutMs = config.providerTimeoutMs;
  if (config.providers.includes('stripe')) {
    const apiUrl = config.stripe.apiUrl ?? (config.stripe.secretKey ? STRIPE_API_URL : sandboxUrl);
    if (apiUrl) {
      providers.set(
        'stripe',
        createStripeAdapter({ secretKey: config.stripe.secretKey ?? 'sk_test_sandbox', apiUrl, timeoutMs }),
      );
    }
  }
  if (config.providers.includes('mpesa')) {
    const apiUrl = config.mpesa.apiUrl ?? (config.mpesa.consumerKey ? DARAJA_API_URL : sandboxUrl);
    if (apiUrl) {
      providers.set(
        'mpesa',
        createMpesaAdapter({
          apiUrl,
          consumerKey: config.mpesa.consumerKey ?? 'sandbox-key',
          consumerSecret: config.mpesa.consumerSecret ?? 'sandbox-secret',
          shortcode: config.mpesa.shortcode,
          passkey: config.mpesa.passkey,
          timeoutMs,
        }),
      );
    }
  }
  return providers;
}
