import { SCRIPTED_OUTCOMES, type ScriptedOutcome } from '../../sandbox/scripts.ts';

/** The outcomes a provider call can have, as the model-based tests name them (the sandbox's scripts). */
export const OUTCOMES = SCRIPTED_OUTCOMES;
export type Outcome = ScriptedOutcome;

/** Every sequence of 1..maxLength outcomes. */
export function* sequences(maxLength: number): Generator<Outcome[]> {
  for (let length = 1; length <= maxLength; length++) {
    const digits = new Array<number>(length).fill(0);
    for (;;) {
      yield digits.map((d) => OUTCOMES[d] as Outcome);
      let i = length - 1;
      while (i >= 0 && digits[i] === OUTCOMES.length - 1) digits[i--] = 0;
      if (i < 0) break;
      digits[i] = (digits[i] as number) + 1;
    }
  }
}

/**
 * Sequences of `length` outcomes in which every ordered pair of outcomes appears at least once:
 * a de Bruijn sequence of order 2 over the outcomes (every pair exactly once, cyclically), cut into
 * windows that overlap by one so that no pair is lost at a cut.
 */
export function pairCover(length: number): Outcome[][] {
  const k = OUTCOMES.length;
  // The standard construction (Lyndon words, FKM): B(k, 2) as digits.
  const digits: number[] = [];
  const a = new Array<number>(3).fill(0);
  const db = (t: number, p: number) => {
    if (t > 2) {
      if (2 % p === 0) digits.push(...a.slice(1, p + 1));
      return;
    }
    a[t] = a[t - p] as number;
    db(t + 1, p);
    for (let j = (a[t - p] as number) + 1; j < k; j++) {
      a[t] = j;
      db(t + 1, t);
    }
  };
  db(1, 1);
  const line = [...digits, digits[0] as number].map((d) => OUTCOMES[d] as Outcome);
  const windows: Outcome[][] = [];
  for (let start = 0; start < line.length - 1; start += length - 1) windows.push(line.slice(start, start + length));
  return windows;
}

/** The ordered pairs of consecutive outcomes in a sequence, as "a→b". */
export function pairsOf(sequence: readonly Outcome[]): string[] {
  return sequence.slice(1).map((outcome, i) => `${sequence[i]}→${outcome}`);
}
