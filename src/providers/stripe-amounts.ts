import { isCurrencyCode, minorUnits } from '../domain/currencies.ts';
import type { AmountRefusal } from '../domain/routing.ts';

/**
 * Our amounts are ISO 4217 minor units; Stripe's `amount` is "the currency's minor unit" as Stripe
 * counts it, which is not always ISO's. This turns one into the other exactly, or says why it
 * cannot: it never rounds (a rounded amount charges a different sum than the order says).
 *
 * Sources: https://docs.stripe.com/currencies ("Supported currencies"), read in three stored
 * copies (one from 2023, after 2023-04-14; one from 2024; one fetched in 2026-07), which agree on
 * everything below unless said:
 * - "Currencies are two-decimal currencies unless otherwise specified."
 * - Zero-decimal: BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF ("to charge
 *   500 JPY, provide an amount value of 500"). All but MGA have 0 decimals in ISO too; MGA has 2
 *   in ISO, so 1500.00 ariary is 150000 to us and 1500 to Stripe.
 * - Special cases: ISK and UGX "transitioned to a zero-decimal currency, but backwards
 *   compatibility requires you to represent it as a two-decimal value, where the decimal amount
 *   is always 00. For example, to charge 5 ISK, provide an amount value of 500." ISO gives both 0
 *   decimals, so Stripe's amount is ours × 100. (Stripe's page still lists UGX among the
 *   zero-decimal currencies too; the special case is the specific, later rule, and the only one
 *   with an example, so it is the one followed. Verify against a live test account before going
 *   live in UGX.) HUF and TWD are zero-decimal "for payouts, even though you can charge
 *   two-decimal amounts": for charges they are two-decimal, as in ISO.
 * - Three-decimal (the 2023 copy; the 2026 one no longer prints this section):
 *   BHD JOD KWD OMR TND — "these API calls require the least-significant (last) digit to be 0 ...
 *   5.124 KWD must be rounded to 5120 or 5130". We refuse instead of rounding.
 * - Maximum: "The amount value supports up to eight digits (e.g., a value of 99999999 for a USD
 *   charge of $999,999.99)" (API reference, PaymentIntent `amount`, as stripe-node 23.1 still
 *   quotes it); the currencies page allows "12 digits for IDR", "9 digits for INR" (2024, 2026)
 *   and "10 digits for COP" (2024 for cards, 2026 for other methods). For cards the page has
 *   allowed more in places (2024: HUF, JPY 10 digits, LBP 11; 2026: 12 digits on most cards) but
 *   also less (2026: 9 on American Express, 8 for JCB, Diners and Discover on Japanese accounts),
 *   and the card's brand is not known at create time: eight digits is what holds for every card,
 *   so it is kept, with the larger limits the page gives IDR, INR and COP. A network that allows
 *   less is answered by Stripe at charge time (a decline: the order fails, nothing charged).
 * - Not checked here: the minimum charge (0.50 USD and equivalents), which Stripe applies in the
 *   account's settlement currency after conversion, so it cannot be known from the order alone.
 */

/** Stripe's decimals where they are not two. */
const STRIPE_DECIMALS: Readonly<Record<string, number>> = {
  BIF: 0,
  CLP: 0,
  DJF: 0,
  GNF: 0,
  JPY: 0,
  KMF: 0,
  KRW: 0,
  MGA: 0,
  PYG: 0,
  RWF: 0,
  VND: 0,
  VUV: 0,
  XAF: 0,
  XOF: 0,
  XPF: 0,
  BHD: 3,
  JOD: 3,
  KWD: 3,
  OMR: 3,
  TND: 3,
};

/** What Stripe's amount must be a multiple of: whole krónur and shillings; three-decimal amounts end in 0. */
const STRIPE_STEP: Readonly<Record<string, number>> = {
  ISK: 100,
  UGX: 100,
  BHD: 10,
  JOD: 10,
  KWD: 10,
  OMR: 10,
  TND: 10,
};

/** Largest Stripe amount, in Stripe's units: eight digits, except where the docs allow more. */
const STRIPE_MAX_DEFAULT = 99_999_999;
const STRIPE_MAX: Readonly<Record<string, number>> = { IDR: 999_999_999_999, INR: 999_999_999, COP: 9_999_999_999 };

/**
 * The ISO 4217 currencies Stripe charges in: the presentment currencies of docs.stripe.com/currencies
 * (the list as the 2023 copy prints it; the later copies leave the table out) with the three-decimal
 * ones, which that list shows only to accounts in the countries that use them, and XCG, which
 * Stripe's US presentment list carries since ANG gave way to it (as read there in 2026-04 by
 * polarsource/polar#11078). Stripe's list also has ANG, BGN and STD, which ISO no longer lists
 * (STD became STN at 1000:1 in 2018: an STN amount must never go out as STD). Left out, because
 * Stripe does not list them: BTN CUP ERN GHS IQD IRR KPW LYD MRU SDG SSP STN SVC SYP TMT VED VES ZWG.
 */
const STRIPE_CURRENCIES: ReadonlySet<string> = new Set(
  (
    'AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BRL BSD BWP BYN BZD CAD CDF CHF ' +
    'CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP GMD GNF GTQ GYD HKD HNL HTG ' +
    'HUF IDR ILS INR ISK JMD JOD JPY KES KGS KHR KMF KRW KWD KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD ' +
    'MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON ' +
    'RSD RUB RWF SAR SBD SCR SEK SGD SHP SLE SOS SRD SZL THB TJS TND TOP TRY TTD TWD TZS UAH UGX USD UYU ' +
    'UZS VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW'
  ).split(' '),
);

export type StripeAmount = Readonly<{ ok: true; amount: number }> | Readonly<{ ok: false; refusal: AmountRefusal }>;

/**
 * The exact `amount` Stripe must be sent for `isoMinorAmount` (ISO 4217 minor units, a positive
 * safe integer) of `currency`, or why Stripe cannot charge it. E.g. MGA 150000 → 1500, ISK 5 → 500,
 * JPY 500 → 500, KWD 1005 → refused.
 */
export function toStripeAmount(currency: string, isoMinorAmount: number): StripeAmount {
  const code = currency.toUpperCase();
  if (!isCurrencyCode(code) || !STRIPE_CURRENCIES.has(code)) {
    return refuse('currency_unsupported', `Stripe does not charge in ${code}.`);
  }
  if (!Number.isSafeInteger(isoMinorAmount) || isoMinorAmount < 1) {
    return refuse('amount_invalid', `The amount must be a positive integer of minor units, not ${isoMinorAmount}.`);
  }
  const isoDecimals = minorUnits(code);
  // Stripe's amount is ours × 10^shift (ISK, UGX: 2), ours ÷ 10^-shift (MGA: -2), or ours (0).
  const shift = (STRIPE_DECIMALS[code] ?? 2) - isoDecimals;
  const step = STRIPE_STEP[code] ?? 1;
  const max = Math.floor((STRIPE_MAX[code] ?? STRIPE_MAX_DEFAULT) / step) * step;
  // The same two limits in our units (steps and shifts are powers of ten, so these are exact).
  const isoStep = shift >= 0 ? Math.max(1, step / 10 ** shift) : step * 10 ** -shift;
  const isoMax = shift >= 0 ? Math.floor(max / 10 ** shift) : max * 10 ** -shift;
  if (isoMinorAmount % isoStep !== 0) {
    const rule = isoStep === 10 ** isoDecimals ? 'in whole units only' : 'only in amounts whose last digit is 0';
    return refuse(
      'amount_invalid',
      `Stripe charges ${code} ${rule}: ${isoMinorAmount} is not a multiple of ${isoStep} minor units.`,
    );
  }
  if (isoMinorAmount > isoMax) {
    return refuse(
      'amount_invalid',
      `Stripe charges at most ${isoMax} minor units of ${code}; ${isoMinorAmount} is more.`,
    );
  }
  return { ok: true, amount: shift >= 0 ? isoMinorAmount * 10 ** shift : isoMinorAmount / 10 ** -shift };
}

/** The Stripe amount, for an adapter building a request; throws what create would have refused. */
export function stripeAmountOrThrow(currency: string, isoMinorAmount: number): number {
  const result = toStripeAmount(currency, isoMinorAmount);
  if (!result.ok) throw new Error(`cannot charge at Stripe: ${result.refusal.message}`);
  return result.amount;
}

function refuse(code: AmountRefusal['code'], message: string): StripeAmount {
  return { ok: false, refusal: { code, message } };
}
