import { minorUnits } from './currencies.ts';
import { DomainError } from './errors.ts';
import type { NewPaymentOrder } from './payment-order.ts';

export type RoutingRules = Readonly<{
  providers: readonly string[];
  providerByCurrency: Readonly<Record<string, string>>;
  defaultProvider: string;
}>;

/** Which payment method types each shipped provider can charge. */
const METHOD_TYPES_BY_PROVIDER: Readonly<Record<string, readonly string[]>> = {
  stripe: ['card'],
  mpesa: ['mpesa'],
};

/**
 * Picks the provider for a new order (the one it names, else the currency's default) and checks
 * that the provider can take it. Everything that would make the provider refuse the order for
 * what it is, rather than for how the call went, is refused here, before anything is stored.
 */
export function chooseProvider(order: NewPaymentOrder, rules: RoutingRules): string {
  const provider = order.provider ?? rules.providerByCurrency[order.currency] ?? rules.defaultProvider;
  if (!rules.providers.includes(provider)) {
    throw new DomainError('unknown_provider', `No provider named '${provider}' is configured.`, {
      details: { param: 'provider', providers: rules.providers },
    });
  }
  const methodTypes = METHOD_TYPES_BY_PROVIDER[provider];
  if (order.paymentMethod && methodTypes && !methodTypes.includes(order.paymentMethod.type)) {
    throw new DomainError(
      'payment_method_unsupported',
      `Provider '${provider}' does not take payment methods of type '${order.paymentMethod.type}'.`,
      { details: { param: 'paymentMethod.type' } },
    );
  }
  if (provider === 'mpesa') checkMpesa(order);
  return provider;
}

function checkMpesa(order: NewPaymentOrder): void {
  // Daraja charges whole Kenyan shillings only: 10100 (KSh 101.00) can go, 10150 cannot.
  if (order.currency !== 'KES') {
    throw new DomainError('currency_unsupported', `Provider 'mpesa' only takes KES, not ${order.currency}.`, {
      details: { param: 'currency' },
    });
  }
  const perShilling = 10 ** minorUnits('KES');
  if (order.amount % perShilling !== 0) {
    throw new DomainError(
      'amount_invalid',
      `M-Pesa charges whole shillings: ${order.amount} is not a multiple of ${perShilling} minor units.`,
      { details: { param: 'amount' } },
    );
  }
}
