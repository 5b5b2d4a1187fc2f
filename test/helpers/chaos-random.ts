/**
 * The chaos test's one source of randomness: mulberry32, a small seeded PRNG, so that a failing
 * run's schedule of faults, orders and resends can be replayed with CHAOS_SEED=<seed>. (Timing
 * still differs between runs: the seed fixes the plan, not the interleaving.)
 */
export type Random = Readonly<{
  seed: number;
  /** [0, 1) */
  next(): number;
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  chance(probability: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** Picks by weight: [[item, weight], ...]. */
  weighted<T>(items: ReadonlyArray<readonly [T, number]>): T;
}>;

export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  return {
    seed,
    next,
    int,
    chance: (probability) => next() < probability,
    pick: (items) => {
      const item = items[int(0, items.length - 1)];
      if (item === undefined) throw new Error('pick from an empty list');
      return item;
    },
    weighted: (items) => {
      const total = items.reduce((sum, [, weight]) => sum + weight, 0);
      let point = next() * total;
      for (const [item, weight] of items) {
        point -= weight;
        if (point < 0) return item;
      }
      const last = items.at(-1);
      if (!last) throw new Error('pick from an empty list');
      return last[0];
    },
  };
}

/** CHAOS_SEED if set (a non-negative integer), else a fresh one. */
export function chaosSeed(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.CHAOS_SEED;
  if (raw === undefined || raw === '') return Math.floor(Math.random() * 2 ** 31);
  if (!/^\d+$/.test(raw)) throw new Error(`CHAOS_SEED must be a non-negative integer, got "${raw}"`);
  return Number(raw);
}
