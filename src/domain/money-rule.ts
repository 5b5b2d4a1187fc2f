import type { Failure } from './payment-order.ts';

/**
 * The money rule: whether an order may have been charged, derived from every provider call since
 * the last conclusive answer — never from the last call alone. A payments reviewer reads this first.
 *
 * Conclusive answers are a success, a decline and "no such charge". Everything else leaves the doubt
 * as it was: a charge that may have reached the provider (timeout, lost answer, 5xx, a process that
 * died mid-call) opens a doubt, and a status query that got no conclusive answer (429, 401/403, 5xx,
 * refused, timeout) does not close it. A charge refused before the provider acted on it (429, 401,
 * connection refused) neither opens nor closes one.
 */

/** How a provider call ended, as its attempt row records it. */
export type CallOutcome =
  | 'succeeded'
  | 'declined'
  | 'pending'
  | 'not_found'
  /** Refused before the provider acted on it (on a status call: simply no answer). */
  | 'retry'
  /** No answer, and the provider may have acted on it (on a status call: no answer). */
  | 'unknown'
  | 'error';

/** One charge or status call of an order, oldest first (token requests do not charge). */
export type CallFact = Readonly<{
  kind: 'charge' | 'status';
  /** null: the call never finished (the process died between the gate's grant and the answer). */
  outcome: CallOutcome | null;
  /** The provider's reference the call asked about, or the one its answer named. */
  reference: string | null;
  startedAt: Date;
  /** For a conclusive decline: what the order's failure says. */
  decline?: Failure | null | undefined;
}>;

export type ProviderTraits = Readonly<{
  /**
   * Every call for an order is the same charge at the provider (Stripe: one Idempotency-Key, one
   * PaymentIntent), so a conclusive answer settles every earlier call. Without it (M-Pesa: each STK
   * push is a charge of its own, and Daraja has no idempotency key) an answer settles only the push
   * it names, and a push whose reference we never learnt can only be settled by its callback.
   */
  idempotent: boolean;
}>;

export type Knowledge =
  /** Nothing since the last conclusive answer may have charged: charging is safe. */
  | Readonly<{ state: 'clear' }>
  /** The provider said the money moved. */
  | Readonly<{ state: 'paid'; reference: string }>
  /** The provider said no, conclusively, and no other charge may be pending. */
  | Readonly<{ state: 'declined'; failure: Failure }>
  /**
   * Money may have moved. `since`: when the oldest unsettled call started (deadlines run from it).
   * `askAbout`: the reference to ask the provider about (null: ask by idempotency key). `askable`:
   * whether any status query can settle it. `open`: the references of the unsettled calls (null for
   * a call whose reference we never learnt).
   */
  | Readonly<{
      state: 'in_doubt';
      since: Date;
      askAbout: string | null;
      askable: boolean;
      open: readonly (string | null)[];
    }>;

type Open = Readonly<{ reference: string | null; since: Date }>;

const DECLINED: Failure = { code: 'declined', message: 'The provider declined the payment.' };

/**
 * What the order's calls so far say about its money. `leads`: references the evidence suggests for
 * a charge whose reference we never learnt (a success callback naming a push we did not know, with
 * the order's amount and phone): such a charge can then be asked about, by that reference — asking
 * is confirming; only the provider's answer settles it.
 */
export function knowledgeOf(
  traits: ProviderTraits,
  calls: readonly CallFact[],
  leads: readonly string[] = [],
): Knowledge {
  let open: Open[] = [];
  let declined: Failure | null = null;
  const settle = (reference: string | null) => {
    open = traits.idempotent ? [] : open.filter((o) => o.reference !== reference);
  };
  // References the provider named in its answers to our charges (a push's CheckoutRequestID).
  const named = new Set<string>();
  for (const call of calls) {
    // A decline is the last word only until the order charges again.
    if (call.kind === 'charge') declined = null;
    if (call.kind === 'charge' && call.reference !== null) named.add(call.reference);
    switch (call.outcome) {
      case 'succeeded':
        return { state: 'paid', reference: call.reference ?? 'unknown' };
      case 'declined':
        settle(call.reference);
        declined = call.decline ?? DECLINED;
        break;
      case 'not_found':
        // Proof that nothing was charged — but only about something the provider did not itself
        // name: "no such push" for a CheckoutRequestID Daraja gave us is the provider erring, not
        // proof (treated as no answer); so is a charge call answering "not found".
        if (call.kind === 'status' && !(call.reference !== null && named.has(call.reference))) {
          settle(call.reference);
          declined = null;
        }
        break;
      case 'pending':
        // Accepted, final result to come: a doubt with a reference to ask about.
        if (!open.some((o) => o.reference === call.reference))
          open.push({ reference: call.reference, since: call.startedAt });
        break;
      case 'retry':
        // A charge refused before the provider acted; a status query that got no answer.
        break;
      default:
        // 'unknown', 'error' or never finished: a charge may have been made; a query learnt nothing.
        if (call.kind === 'charge') open.push({ reference: call.reference, since: call.startedAt });
    }
  }
  if (open.length === 0) return declined ? { state: 'declined', failure: declined } : { state: 'clear' };
  const since = new Date(Math.min(...open.map((o) => o.since.getTime())));
  // A lead the provider has already answered (not paid, or unknown to it) leads nowhere.
  const answered = (reference: string) =>
    calls.some(
      (c) =>
        c.kind === 'status' && c.reference === reference && (c.outcome === 'declined' || c.outcome === 'not_found'),
    );
  const lead = open.some((o) => o.reference === null) ? leads.findLast((l) => !answered(l)) : undefined;
  const askAbout = open.findLast((o) => o.reference !== null)?.reference ?? lead ?? null;
  return {
    state: 'in_doubt',
    since,
    askAbout,
    askable: traits.idempotent || askAbout !== null,
    open: open.map((o) => o.reference),
  };
}
