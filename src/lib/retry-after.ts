/**
 * A Retry-After header (RFC 9110 §10.2.3: delay-seconds or an HTTP date) as milliseconds, capped at
 * an hour; undefined when absent or unreadable. Used for Stripe, Daraja and webhook subscribers.
 */
export function retryAfterMs(value: string | undefined | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 3_600_000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.min(date - Date.now(), 3_600_000));
}
