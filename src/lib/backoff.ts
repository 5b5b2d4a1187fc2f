/** Retry delays that grow: base · 2^(attempt-1), capped, with "equal jitter". */
export type Backoff = Readonly<{ baseMs: number; maxMs: number }>;

/**
 * The delay before retry `attempt` (1, 2, ...): base · 2^(attempt-1), capped at max, with "equal
 * jitter" (half fixed, half random) so that instances retrying together spread out while the delay
 * still grows (AWS Architecture Blog, "Exponential Backoff and Jitter", 2015).
 */
export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  const capped = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30));
  return Math.round(equalJitter(capped, random));
}

/** Half of `ms` fixed, half random: between ms/2 and ms. */
export function equalJitter(ms: number, random: () => number = Math.random): number {
  return ms / 2 + (random() * ms) / 2;
}
