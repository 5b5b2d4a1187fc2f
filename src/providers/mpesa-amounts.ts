import { minorUnits } from '../domain/currencies.ts';
import type { AmountRefusal } from '../domain/routing.ts';

/**
 * M-Pesa Daraja's STK push takes `Amount` in whole Kenyan shillings, and nothing but KES. Ours are
 * ISO 4217 minor units (KES has 2 decimals): 10100 is KSh 101, and 10150 (KSh 101.50) cannot be
 * sent at all. Never rounded: a rounded push asks the customer for a different sum than the order.
 */
export type MpesaAmount = Readonly<{ ok: true; amount: number }> | Readonly<{ ok: false; refusal: AmountRefusal }>;

const PER_SHILLING = 10 ** minorUnits('KES');

/** Daraja's `Amount` for `isoMinorAmount` of `currency`, or why M-Pesa cannot charge it. */
export function toMpesaAmount(currency: string, isoMinorAmount: number): MpesaAmount {
  if (currency.toUpperCase() !== 'KES') {
    return refuse('currency_unsupported', `Provider 'mpesa' only takes KES, not ${currency.toUpperCase()}.`);
  }
  if (!Number.isSafeInteger(isoMinorAmount) || isoMinorAmount < PER_SHILLING || isoMinorAmount % PER_SHILLING !== 0) {
    return refuse(
      'amount_invalid',
      `M-Pesa charges whole shillings: ${isoMinorAmount} is not a multiple of ${PER_SHILLING} minor units.`,
    );
  }
  return { ok: true, amount: isoMinorAmount / PER_SHILLING };
}

/** Daraja's `Amount`, for the adapter building a push; throws what create would have refused. */
export function mpesaAmountOrThrow(currency: string, isoMinorAmount: number): number {
  const result = toMpesaAmount(currency, isoMinorAmount);
  if (!result.ok) throw new Error(`cannot push to M-Pesa: ${result.refusal.message}`);
  return result.amount;
}

function refuse(code: AmountRefusal['code'], message: string): MpesaAmount {
  return { ok: false, refusal: { code, message } };
}
