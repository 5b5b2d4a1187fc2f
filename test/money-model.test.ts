// A model-based test of the processing decisions (src/domain/decide.ts over the money rule of
// src/domain/money-rule.ts). Every sequence of up to 5 call outcomes, for Stripe (also with its
// idempotency keys expired, where only a search can ask) and for M-Pesa, is played against a model
// of the provider that holds the truth: which charges exist and whether they are paid. Timeouts
// and Stripe 5xx go both ways (the provider did or did not act on the request). After every step
// and at the end (a "heal" phase where the provider answers truthfully), the order must be sound:
//   FAILED ⇒ no charge paid at the provider, and none that may still be paid;
//   COMPLETED ⇒ exactly one paid, the one the order names;
//   never two paid charges; never a fresh charge while money may have moved;
//   in the end terminal, or under review with a reason.
// Pure: no I/O. The same sequences run end to end, through the sandbox and a database, in
// test/money-model-e2e.test.ts.

import Stripe from 'stripe';
import t from 'tap';
import { callFact, type Decision, decide, nextCall, type RetryPolicy, type StepHistory } from '../src/domain/decide.ts';
import { type CallFact, knowledgeOf } from '../src/domain/money-rule.ts';
import type { ProviderOutcome } from '../src/domain/provider.ts';
import { fromPush, fromQuery, type HttpAnswer } from '../src/providers/mpesa.ts';
import { fromError, fromIntent } from '../src/providers/stripe.ts';
import { type Outcome, sequences } from './helpers/outcome-sequences.ts';

type Charge = {
  id: string;
  state: 'paid' | 'declined' | 'pending';
  /** Stripe: what a repeated create answers (the saved result of the first), or a saved 500. */
  saved: 'paid' | 'declined' | 'pending' | '500';
};

/**
 * The provider's truth, and what it answers on the wire. Each answer goes through the real
 * adapter's mapping (src/providers/stripe.ts fromIntent/fromError, src/providers/mpesa.ts
 * fromPush/fromQuery), so a mapping that reads "no" where the provider may have acted fails here.
 */
interface World {
  readonly provider: 'stripe' | 'mpesa';
  charges: Charge[];
  /** A charge call (`acted`: whether a timeout or 5xx reached the provider). */
  charge(outcome: Outcome, acted: boolean): ProviderOutcome;
  /** A status call about `reference` (null: by idempotency key, or a search). */
  status(outcome: Outcome, reference: string | null, acted: boolean): ProviderOutcome;
}

/** What the world chooses for a charge it is free to decide (new, or pending and now settling). */
const choiceOf = (outcome: Outcome): Charge['state'] =>
  outcome === 'decline' ? 'declined' : outcome === 'pending' ? 'pending' : 'paid';

// --- Stripe on the wire: PaymentIntents, or errors as stripe-node builds them (StripeError.generate).

const INTENT_STATUS = { paid: 'succeeded', declined: 'requires_payment_method', pending: 'processing' } as const;
const intent = (charge: Charge, state: Exclude<Charge['state'], never>) =>
  fromIntent({ id: charge.id, status: INTENT_STATUS[state], last_payment_error: null } as never);
const stripeError = (raw: Record<string, unknown>, kind: 'charge' | 'status') =>
  fromError(Stripe.errors.StripeError.generate(raw as never), kind);
const connection = (code: string, kind: 'charge' | 'status') =>
  fromError(new Stripe.errors.StripeConnectionError({ message: code, detail: { code } } as never), kind);
/** A fault that never reaches Stripe's logic, as our adapter hears it. */
function stripeFault(outcome: Outcome, kind: 'charge' | 'status'): ProviderOutcome | null {
  switch (outcome) {
    case '429':
      return stripeError(
        { type: 'invalid_request_error', code: 'rate_limit', statusCode: 429, headers: { 'retry-after': '1' } },
        kind,
      );
    case '401':
      return stripeError({ type: 'invalid_request_error', message: 'Invalid API Key provided', statusCode: 401 }, kind);
    case 'refused':
      return connection('ECONNREFUSED', kind);
    default:
      return null;
  }
}
const STRIPE_500 = { type: 'api_error', message: 'An unknown error occurred', statusCode: 500 };

/**
 * Stripe: one PaymentIntent per Idempotency-Key; a repeated create answers the saved result, a
 * 500 hit while executing included (replayed, and then our adapter searches). With `keysExpired`
 * (calls older than the 24 h key window) a create always makes a new PaymentIntent and a status
 * without a reference is a search.
 */
class StripeWorld implements World {
  readonly provider = 'stripe';
  charges: Charge[] = [];
  readonly keysExpired: boolean;
  constructor(keysExpired: boolean) {
    this.keysExpired = keysExpired;
  }

  charge(outcome: Outcome, acted: boolean): ProviderOutcome {
    return this.create(outcome, acted, 'charge');
  }

  status(outcome: Outcome, reference: string | null, acted: boolean): ProviderOutcome {
    if (reference) return this.retrieve(outcome, reference);
    return this.keysExpired ? this.search(outcome) : this.create(outcome, acted, 'status');
  }

  private create(outcome: Outcome, acted: boolean, kind: 'charge' | 'status'): ProviderOutcome {
    const fault = stripeFault(outcome, kind);
    if (fault) return fault;
    if ((outcome === 'timeout' || outcome === '5xx') && !acted) {
      return outcome === 'timeout' ? connection('UND_ERR_HEADERS_TIMEOUT', kind) : stripeError(STRIPE_500, kind);
    }
    const replay = this.keysExpired ? undefined : this.charges[0];
    if (replay) {
      if (replay.saved === '500') {
        // Replayed; the adapter then searches (src/providers/stripe.ts), not yet proof of "none".
        const replayed = stripeError({ ...STRIPE_500, headers: { 'idempotent-replayed': 'true' } }, kind);
        return kind === 'status' ? this.search(outcome === 'lost' ? 'lost' : 'success', false) : replayed;
      }
      const saved = outcome === 'lost' || outcome === 'timeout' || outcome === '5xx' ? null : replay.saved;
      return saved === null ? connection('ECONNRESET', kind) : intent(replay, saved);
    }
    if (outcome === 'not_found') {
      // 400 resource_missing (a payment method that does not exist): nothing is made or saved.
      return stripeError({ type: 'invalid_request_error', code: 'resource_missing', statusCode: 400 }, kind);
    }
    const state = choiceOf(outcome === 'lost' || outcome === 'timeout' || outcome === '5xx' ? 'success' : outcome);
    const made: Charge = { id: `pi_${this.charges.length + 1}`, state, saved: outcome === '5xx' ? '500' : state };
    this.charges.push(made);
    if (outcome === '5xx') return stripeError(STRIPE_500, kind);
    if (outcome === 'lost' || outcome === 'timeout') return connection('ECONNRESET', kind);
    if (state === 'declined') {
      return stripeError(
        { type: 'card_error', code: 'card_declined', decline_code: 'generic_decline', statusCode: 402 },
        kind,
      );
    }
    return intent(made, state);
  }

  private retrieve(outcome: Outcome, reference: string): ProviderOutcome {
    const found = this.charges.find((c) => c.id === reference);
    const fault = stripeFault(outcome, 'status');
    if (fault) return fault;
    if (!found || outcome === 'not_found') {
      return stripeError({ type: 'invalid_request_error', code: 'resource_missing', statusCode: 404 }, 'status');
    }
    if (outcome === 'lost' || outcome === 'timeout') return connection('ECONNRESET', 'status');
    if (outcome === '5xx') return stripeError(STRIPE_500, 'status');
    if ((outcome === 'success' || outcome === 'decline') && found.state === 'pending') found.state = choiceOf(outcome);
    return intent(found, found.state);
  }

  private search(outcome: Outcome, notFoundIsProof = true): ProviderOutcome {
    const fault = stripeFault(outcome, 'status');
    if (fault) return fault;
    if (outcome === 'lost' || outcome === 'timeout') return connection('ECONNRESET', 'status');
    if (outcome === '5xx') return stripeError(STRIPE_500, 'status');
    const found =
      this.charges.find((c) => c.state === 'paid') ??
      this.charges.find((c) => c.state === 'pending') ??
      this.charges[0];
    if (found) return intent(found, found.state);
    return notFoundIsProof ? { kind: 'not_found' } : { kind: 'retry', charged: 'unknown', reason: 'search lag' };
  }
}

// --- M-Pesa on the wire: Daraja's JSON answers.

const daraja = (status: number, body: Record<string, unknown>): HttpAnswer => ({ status, body, headers: {} });
const DARAJA_FAULTS: Record<string, HttpAnswer> = {
  // Daraja's internal error: the request may have been acted on.
  '5xx': daraja(500, { errorCode: '500.003.1001', errorMessage: 'Internal Server Error' }),
  '429': {
    ...daraja(429, { errorCode: '500.003.02', errorMessage: 'Spike Arrest Violation' }),
    headers: { 'retry-after': '1' },
  },
  '401': daraja(401, { errorCode: '404.001.03', errorMessage: 'Invalid Access Token' }),
};
/** A network failure, as our adapter maps it (src/providers/mpesa.ts fromNetworkError / the query's). */
const NETWORK = {
  refused: { kind: 'retry', charged: 'no', reason: 'ECONNREFUSED' },
  lost: { kind: 'retry', charged: 'unknown', reason: 'UND_ERR_SOCKET' },
  timeout: { kind: 'retry', charged: 'unknown', reason: 'timeout' },
} as const satisfies Record<string, ProviderOutcome>;

/** M-Pesa: every push is a charge of its own; a query names one push. The customer decides. */
class MpesaWorld implements World {
  readonly provider = 'mpesa';
  charges: Charge[] = [];

  charge(outcome: Outcome, acted: boolean): ProviderOutcome {
    if (outcome === 'refused') return NETWORK.refused;
    if (outcome === '429' || outcome === '401') return fromPush(DARAJA_FAULTS[outcome] as HttpAnswer);
    if (outcome === 'not_found')
      return fromPush(daraja(400, { errorCode: '400.002.02', errorMessage: 'Bad Request - Invalid PhoneNumber' }));
    const reaches = outcome === 'timeout' || outcome === '5xx' ? acted : true;
    if (!reaches) return outcome === '5xx' ? fromPush(DARAJA_FAULTS['5xx'] as HttpAnswer) : NETWORK.timeout;
    // The push is accepted; the customer pays (lost, timeout, 5xx: the worst case), cancels or has not answered.
    const state = choiceOf(outcome === 'lost' || outcome === 'timeout' || outcome === '5xx' ? 'success' : outcome);
    const push: Charge = { id: `ws_CO_${this.charges.length + 1}`, state, saved: state };
    this.charges.push(push);
    if (outcome === 'lost' || outcome === 'timeout') return NETWORK[outcome];
    if (outcome === '5xx') return fromPush(DARAJA_FAULTS['5xx'] as HttpAnswer);
    return fromPush(daraja(200, { ResponseCode: '0', CheckoutRequestID: push.id, MerchantRequestID: 'm' }));
  }

  status(outcome: Outcome, reference: string | null): ProviderOutcome {
    const push = this.charges.find((c) => c.id === reference);
    const invalid = daraja(400, { errorCode: '400.002.02', errorMessage: 'Bad Request - Invalid CheckoutRequestID' });
    if (!push || !reference) return fromQuery(invalid, reference ?? '');
    if (outcome === 'refused' || outcome === 'lost' || outcome === 'timeout') return NETWORK[outcome];
    if (outcome in DARAJA_FAULTS) return fromQuery(DARAJA_FAULTS[outcome] as HttpAnswer, reference);
    // Daraja erring: "no such CheckoutRequestID" for a push it did start (never proof: money-rule.ts).
    if (outcome === 'not_found') return fromQuery(invalid, reference);
    if ((outcome === 'success' || outcome === 'decline') && push.state === 'pending') push.state = choiceOf(outcome);
    if (push.state === 'pending') {
      return fromQuery(
        daraja(500, { errorCode: '500.001.1001', errorMessage: 'The transaction is being processed' }),
        reference,
      );
    }
    const code = push.state === 'paid' ? '0' : '1032';
    return fromQuery(
      daraja(200, { ResponseCode: '0', ResultCode: code, ResultDesc: 'x', CheckoutRequestID: reference }),
      reference,
    );
  }
}

const MODEL_POLICY: RetryPolicy = {
  maxAttempts: 4,
  baseDelayMs: 1000,
  maxDelayMs: 8000,
  reconcileIntervalMs: 30_000,
  pendingCheckDelayMs: (provider) => (provider === 'mpesa' ? 20_000 : 1000),
  reviewAfterMs: 120_000,
  unaskableDeadlineMs: () => 300_000,
  random: () => 0.5,
};

type Order = {
  status: 'PROCESSING' | 'COMPLETED' | 'FAILED';
  reference: string | null;
  calls: CallFact[];
  reconcilingSince: Date | null;
  review: string | null;
  nowMs: number;
};

type Run = Readonly<{ order: Order; world: World; violations: string[]; steps: string[] }>;

const HEAL_STEPS = 30;

/** Plays `script` (then truthful answers) against `world`; `acted[i]`: whether call i's timeout/5xx reached the provider. */
function play(world: World, script: readonly Outcome[], acted: readonly boolean[]): Run {
  const order: Order = {
    status: 'PROCESSING',
    reference: null,
    calls: [],
    reconcilingSince: null,
    review: null,
    nowMs: 0,
  };
  const violations: string[] = [];
  const steps: string[] = [];
  let used = 0;
  for (let step = 0; step < script.length + HEAL_STEPS && order.status === 'PROCESSING'; step++) {
    const history: StepHistory = {
      provider: world.provider,
      traits: { idempotent: world.provider === 'stripe' },
      calls: order.calls,
      callCount: order.calls.length,
      reconcilingSince: order.reconcilingSince,
      underReview: order.review !== null,
      now: new Date(order.nowMs),
    };
    const next = nextCall(MODEL_POLICY, history);
    let decision: Decision;
    if (next.type === 'settled') decision = next.decision;
    else if (next.type === 'none') decision = decide(MODEL_POLICY, history, null);
    else {
      const outcome: Outcome = used < script.length ? (script[used] as Outcome) : 'success';
      const didAct = acted[used] ?? true;
      used++;
      if (next.type === 'charge') {
        if (knowledgeOf(history.traits, order.calls).state !== 'clear') violations.push('charged while in doubt');
        if (world.charges.some((c) => c.state === 'pending' || c.state === 'paid')) {
          violations.push(`charged again while ${world.charges.map((c) => `${c.id}:${c.state}`).join(',')} exists`);
        }
      }
      const reference = next.type === 'status' ? next.reference : null;
      const heard = next.type === 'charge' ? world.charge(outcome, didAct) : world.status(outcome, reference, didAct);
      const answer = { kind: next.type, outcome: heard, askedAbout: reference, startedAt: new Date(order.nowMs) };
      decision = decide(MODEL_POLICY, history, answer);
      order.calls = [...order.calls, callFact(answer)];
      steps.push(`${next.type}:${outcome}→${heard.kind}`);
    }
    steps.push(decision.type);
    if (world.charges.filter((c) => c.state === 'paid').length > 1) violations.push('two charges paid');
    switch (decision.type) {
      case 'complete':
        order.status = 'COMPLETED';
        order.reference = decision.reference;
        break;
      case 'fail':
        order.status = 'FAILED';
        break;
      case 'await':
        order.review ??= decision.review.reason;
        return { order, world, violations: [...violations, ...check(order, world)], steps };
      case 'schedule':
        if (decision.review) order.review ??= decision.review.reason;
        if (decision.reconciling === true) order.reconcilingSince ??= new Date(order.nowMs);
        if (decision.reconciling === false) order.reconcilingSince = null;
        order.nowMs += decision.delayMs;
    }
  }
  return { order, world, violations: [...violations, ...check(order, world)], steps };
}

function check(order: Order, world: World): string[] {
  const paid = world.charges.filter((c) => c.state === 'paid');
  const open = world.charges.filter((c) => c.state === 'pending');
  const problems: string[] = [];
  if (order.status === 'FAILED' && paid.length > 0) problems.push('FAILED while the provider holds the money');
  if (order.status === 'FAILED' && open.length > 0) problems.push('FAILED while a charge may still be paid');
  if (order.status === 'COMPLETED' && paid.length !== 1) problems.push(`COMPLETED with ${paid.length} charges paid`);
  if (order.status === 'COMPLETED' && paid[0] && order.reference !== paid[0].id) {
    problems.push(`COMPLETED naming ${order.reference}, paid ${paid[0].id}`);
  }
  if (order.status === 'COMPLETED' && open.length > 0)
    problems.push('COMPLETED while another charge may still be paid');
  if (order.status === 'PROCESSING' && order.review === null)
    problems.push('neither terminal nor under review after healing');
  return problems;
}

const WORLDS: Array<[string, () => World]> = [
  ['stripe', () => new StripeWorld(false)],
  ['stripe, keys expired (search)', () => new StripeWorld(true)],
  ['mpesa', () => new MpesaWorld()],
];

for (const [name, makeWorld] of WORLDS) {
  t.test(`${name}: every sequence of up to 5 outcomes keeps the money right`, async (t) => {
    let runs = 0;
    const failures = new Map<string, string>();
    const ends = new Map<string, number>();
    for (const script of sequences(5)) {
      const branching = script.map((o) => o === 'timeout' || o === '5xx');
      const forks = 2 ** branching.filter(Boolean).length;
      for (let mask = 0; mask < forks; mask++) {
        let bit = 0;
        const acted = branching.map((b) => (b ? ((mask >> bit++) & 1) === 1 : true));
        const run = play(makeWorld(), script, acted);
        runs++;
        const end = run.order.status === 'PROCESSING' ? `review:${run.order.review}` : run.order.status;
        ends.set(end, (ends.get(end) ?? 0) + 1);
        if (run.violations.length > 0 && failures.size < 20) {
          failures.set(
            `${script.join(',')} [acted ${acted.map(Number).join('')}]`,
            `${run.violations.join('; ')} — ${run.steps.join(' ')}`,
          );
        }
      }
    }
    t.comment(`${runs} runs; ends: ${[...ends].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    t.same([...failures], [], 'no sequence breaks the money rules');
    t.ok(runs > 100_000, `explored ${runs} runs`);
  });
}

t.test('the issue and its cousins end COMPLETED (or under review), never FAILED', async (t) => {
  const cases: Array<[string, () => World, Outcome[]]> = [
    ['lost, then 429s (PROVIDER_MAX_ATTEMPTS=4)', () => new StripeWorld(false), ['lost', '429', '429', '429', '429']],
    ['a late answer then 401s', () => new StripeWorld(false), ['timeout', '401', '401', '401', '401']],
    ['two late answers then 429s', () => new StripeWorld(false), ['lost', 'timeout', '429', '429', '429']],
    [
      'reconciling, then a status 429 and a charge 429',
      () => new StripeWorld(false),
      ['5xx', '5xx', '5xx', '5xx', '429', '429'],
    ],
  ];
  for (const [name, makeWorld, script] of cases) {
    const run = play(
      makeWorld(),
      script,
      script.map(() => true),
    );
    t.same(run.violations, [], name);
    t.ok(run.order.status === 'COMPLETED' || run.order.review !== null, `${name}: ${run.order.status}`);
    t.not(run.order.status, 'FAILED', `${name}: ${run.steps.join(' ')}`);
  }
});
