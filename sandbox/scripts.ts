/**
 * Scripted outcomes: for tests that explore sequences of faults, a payment can be given the
 * outcomes of its next provider requests, in order (POST /__admin/scripts { key, outcomes }). The key
 * is anything the requests about that payment carry, so that a script can be set before the
 * gateway makes its first call: Stripe — metadata[order_id] or the description (of the create, of
 * the PaymentIntent retrieved, the search's order id); M-Pesa — the phone number or AccountReference
 * (the order id's last 12 characters), of the push or of the push a query names. Each such request
 * takes the next outcome. Token requests are never scripted. Faults are applied as the `*Next` switches apply theirs;
 * the other outcomes tell the provider what to do where it is free to choose (a new charge, a
 * pending one settling): it never answers against its own state — a query about a push that exists
 * is never "not found".
 */
export const SCRIPTED_OUTCOMES = [
  'success',
  'decline',
  'lost',
  'timeout',
  '5xx',
  '429',
  '401',
  'refused',
  'pending',
  'not_found',
] as const;
export type ScriptedOutcome = (typeof SCRIPTED_OUTCOMES)[number];

/** What a provider's handler is told to do with a request (null: behave as usual). */
export type Directive = 'success' | 'decline' | 'pending' | 'not_found' | null;

export type ScriptUse = Readonly<{ key: string; outcome: ScriptedOutcome; at: string; path: string }>;

export class Scripts {
  #queues = new Map<string, ScriptedOutcome[]>();
  #used: ScriptUse[] = [];

  set(key: string, outcomes: readonly ScriptedOutcome[]): void {
    this.#queues.set(key, [...outcomes]);
  }

  /** The outcomes still waiting under a key. */
  pending(key: string): ScriptedOutcome[] {
    return [...(this.#queues.get(key) ?? [])];
  }

  /**
   * Takes the next outcome scripted under any of `keys` (what the request carries; an order id's
   * last 12 characters match the whole id).
   */
  take(keys: readonly (string | null | undefined)[], path: string): ScriptedOutcome | null {
    const key = this.#keyFor(keys);
    const outcome = key ? this.#queues.get(key)?.shift() : undefined;
    if (!key || !outcome) return null;
    this.#used.push({ key, outcome, at: new Date().toISOString(), path });
    return outcome;
  }

  /** Drops the next outcome under a key without a request (a refused connection carries none). */
  skip(key: string, expected: ScriptedOutcome): boolean {
    const queue = this.#queues.get(key);
    if (queue?.[0] !== expected) return false;
    queue.shift();
    this.#used.push({ key, outcome: expected, at: new Date().toISOString(), path: '(refused connection)' });
    return true;
  }

  used(): ScriptUse[] {
    return [...this.#used];
  }

  clear(): void {
    this.#queues.clear();
    this.#used = [];
  }

  #keyFor(keys: readonly (string | null | undefined)[]): string | null {
    for (const candidate of keys) {
      if (!candidate) continue;
      if (this.#queues.has(candidate)) return candidate;
      for (const key of this.#queues.keys()) if (candidate.length === 12 && key.endsWith(candidate)) return key;
    }
    return null;
  }
}
