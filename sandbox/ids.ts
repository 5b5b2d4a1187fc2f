import { randomInt } from 'node:crypto';

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const UPPER_ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const DIGITS = '0123456789';

export function randomString(length: number, alphabet: string = ALPHANUMERIC): string {
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** Stripe's object ids: a type prefix and 24 alphanumerics (pi_3MtwBwLkdIwHu7ix28a3tqPa). */
export function stripeId(prefix: string): string {
  return `${prefix}_${randomString(24)}`;
}

/** Stripe's Request-Id header value (req_ and 14 alphanumerics). */
export function stripeRequestId(): string {
  return `req_${randomString(14)}`;
}

/** Daraja's request and merchant request ids look like 29115-34620561-1. */
export function darajaRequestId(): string {
  return `${randomString(5, DIGITS)}-${randomString(8, DIGITS)}-1`;
}

/** ws_CO_ + DDMMYYYYHHmmss (Nairobi time) + digits, as Daraja's CheckoutRequestIDs. */
export function checkoutRequestId(now: Date = new Date()): string {
  const stamp = darajaTimestamp(now);
  const ddmmyyyy = `${stamp.slice(6, 8)}${stamp.slice(4, 6)}${stamp.slice(0, 4)}`;
  return `ws_CO_${ddmmyyyy}${stamp.slice(8)}${randomString(8, DIGITS)}`;
}

/** An M-Pesa receipt number: ten upper-case alphanumerics. */
export function mpesaReceiptNumber(): string {
  return `Q${randomString(9, UPPER_ALPHANUMERIC)}`;
}

/** YYYYMMDDHHmmss in East Africa Time (UTC+3, no daylight saving), Daraja's timestamp format. */
export function darajaTimestamp(now: Date = new Date()): string {
  return new Date(now.getTime() + 3 * 3_600_000).toISOString().replace(/\D/g, '').slice(0, 14);
}
