import { DomainError } from './errors.ts';
import type { NewPaymentOrder } from './payment-order.ts';

export type RoutingRules = Readonly<{
  providers: readonly string[];
  providerByCurrency: Readonly<Record<string, string>>;
  defaultProvider: string;
}>;

/** Why a provider cannot charge an amount of a currency exactly, in the code create answers with. */
export type AmountRefusal = Readonly<{ code: 'amount_invalid' | 'currency_unsupported'; message: string }>;

/**
 * The port to each provider's money rules: can `provider` charge `amount` (ISO 4217 minor units)
 * of `currency` exactly, in its own units? null when it can. The adapters' pure conversions
 * (src/providers/*-amounts.ts) implement it; the domain never sees a provider's units.
 */
export type AmountRules = (provider: string, currency: string, amount: number) => AmountRefusal | null;

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
export function chooseProvider(order: NewPaymentOrder, rules: RoutingRules, amountRules: AmountRules): string {
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
  const refusal = amountRules(provider, order.currency, order.amount);
  if (refusal) {
    throw new DomainError(refusal.code, refusal.message, {
      details: { param: refusal.code === 'amount_invalid' ? 'amount' : 'currency' },
    });
  }
  return provider;
}
