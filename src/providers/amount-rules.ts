import type { AmountRules } from '../domain/routing.ts';
import { toMpesaAmount } from './mpesa-amounts.ts';
import { toStripeAmount } from './stripe-amounts.ts';

/**
 * The create step's amount rules (the domain's AmountRules port): an amount a provider cannot be
 * sent exactly, in its own units, is refused before the order is stored. Pure, no I/O. The
 * adapters build their requests with the same conversions, so what passes here is what is sent.
 */
export const providerAmountRules: AmountRules = (provider, currency, amount) => {
  const converted =
    provider === 'stripe'
      ? toStripeAmount(currency, amount)
      : provider === 'mpesa'
        ? toMpesaAmount(currency, amount)
        : null;
  return converted && !converted.ok ? converted.refusal : null;
};
