/**
 * When to try a delivery again: the schedule's next step (immediately, 5 s, 5 min, 30 min, 2 h,
 * 5 h, 10 h, 14 h, 20 h, 24 h by default), with ±20 % jitter so that a subscriber that comes back
 * is not hit by every waiting delivery at once, and at least any Retry-After it asked for.
 * Returns null when the schedule is used up: the delivery is dead.
 */
export function nextDelayMs(
  scheduleMs: readonly number[],
  attemptsMade: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number | null {
  const step = scheduleMs[attemptsMade];
  if (step === undefined) return null;
  const jittered = step * (0.8 + random() * 0.4);
  return Math.round(Math.max(jittered, retryAfterMs ?? 0));
}
