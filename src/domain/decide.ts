import { backoffDelay } from '../lib/backoff.ts';
import { type CallFact, type Knowledge, knowledgeOf, type ProviderTraits } from './money-rule.ts';
import type { Failure } from './payment-order.ts';
import type { ProviderOutcome } from './provider.ts';

/**
 * The processing decisions, as pure functions of (policy, history, answer): which call an order's
 * next step makes, and what its answer means. No I/O; the table tests list every row
 * (test/decide.test.ts) and a model explores every sequence of answers (test/money-model.test.ts).
 */

/** Why an order needs a person. Stable codes: they are in the API (`review.reason`) and events. */
export type ReviewReason =
  /** The provider has given no conclusive answer for longer than the review deadline (still asked). */
  | 'outcome_unknown'
  /** A push whose outcome nobody can ask about (its answer was lost) is past its deadline. */
  | 'push_unconfirmed'
  /** A success callback named a charge we never saw, while a push of ours is unaccounted for. */
  | 'unmatched_callback'
  /** The provider reports money taken for an order that already FAILED. */
  | 'paid_after_failure'
  /** A second payment for an order already COMPLETED. */
  | 'second_payment'
  /**
   * The provider's answers contradict each other or the order: a success for a push it said had
   * failed, a decline for an order already COMPLETED (by a callback, or by an operator).
   */
  | 'contradiction';

/** Reviews the provider's own conclusive answer settles; the others (anomalies) stay for people. */
export const SELF_SETTLING_REVIEWS: readonly ReviewReason[] = ['outcome_unknown', 'push_unconfirmed'];

export type Review = Readonly<{ reason: ReviewReason; detail: string }>;

/** What one processing step does to the order; written in ONE transaction. */
export type Decision =
  | Readonly<{ type: 'complete'; reference: string; reason: string }>
  | Readonly<{ type: 'fail'; failure: Failure; reason: string }>
  | Readonly<{
      type: 'schedule';
      delayMs: number;
      reason: string;
      reference?: string | undefined;
      /** true: the outcome is unknown after the retries (slow schedule from now on); false: settled. */
      reconciling?: boolean | undefined;
      /** Forget the provider reference (the provider proved that charge does not exist). */
      clearReference?: boolean | undefined;
      review?: Review | undefined;
    }>
  /** No further step is scheduled: nothing can be asked; a callback or an operator settles it. */
  | Readonly<{ type: 'await'; reason: string; review: Review }>;

export type RetryPolicy = Readonly<{
  /** Provider calls (charges, status queries, token requests) before the retries stop. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** The slow schedule of orders whose outcome is still unknown after the retries. */
  reconcileIntervalMs: number;
  /** How long to wait for an asynchronous result (the M-Pesa callback) before asking. */
  pendingCheckDelayMs: (provider: string) => number;
  /** An outcome unknown for this long is flagged for review (the provider is still asked). */
  reviewAfterMs: number;
  /** A charge nobody can ask about (an M-Pesa push whose answer was lost) is flagged after this. */
  unaskableDeadlineMs: (provider: string) => number;
  /** [0, 1): the jitter of the backoff; Math.random in production. */
  random: () => number;
}>;

/** Everything the decisions know about an order before its step's call. */
export type StepHistory = Readonly<{
  provider: string;
  traits: ProviderTraits;
  /** Charge and status calls so far, oldest first. */
  calls: readonly CallFact[];
  /** References evidence points at for a charge whose reference we never learnt (see knowledgeOf). */
  leads?: readonly string[] | undefined;
  /** Every provider call so far, token requests included (a failing token endpoint must run out too). */
  callCount: number;
  reconcilingSince: Date | null;
  underReview: boolean;
  /** The database's clock when the step began. */
  now: Date;
}>;

/** The answer to the step's call. */
export type StepAnswer = Readonly<{
  kind: 'charge' | 'status';
  outcome: ProviderOutcome;
  /** The reference the call asked about (a status query), if any. */
  askedAbout: string | null;
  startedAt: Date;
}>;

/** The step's call: none (the history settles it), a charge, a status query, or none possible. */
export type NextCall =
  | Readonly<{ type: 'settled'; decision: Decision }>
  | Readonly<{ type: 'charge' }>
  | Readonly<{ type: 'status'; reference: string | null }>
  | Readonly<{ type: 'none' }>;

/**
 * Charge only when nothing may have been charged; otherwise ask (about the reference we hold, never
 * by charging afresh), or, when nothing can be asked, make no call at all.
 */
export function nextCall(policy: RetryPolicy, history: StepHistory): NextCall {
  const knowledge = knowledgeOf(history.traits, history.calls, history.leads);
  switch (knowledge.state) {
    case 'paid':
    case 'declined':
      // The answer is already in the history (it came after the order had moved on): apply it.
      return { type: 'settled', decision: decide(policy, history, null) };
    case 'clear':
      return { type: 'charge' };
    case 'in_doubt':
      return knowledge.askable ? { type: 'status', reference: knowledge.askAbout } : { type: 'none' };
  }
}

/**
 * A step on an instance that does not have the order's provider (configured elsewhere, or
 * removed): no call can be made. Nothing charged: it fails; settled in the history: applied; money
 * may have moved: wait on the slow schedule (another instance may have the provider), and past the
 * review deadline, flag it — never fail it, and never drop it.
 */
export function withoutProvider(policy: RetryPolicy, history: StepHistory): Decision {
  const knowledge = knowledgeOf(history.traits, history.calls, history.leads);
  if (knowledge.state === 'clear') {
    return {
      type: 'fail',
      failure: { code: 'provider_not_configured', message: `Provider '${history.provider}' is not configured.` },
      reason: `provider '${history.provider}' is not configured; nothing was charged`,
    };
  }
  if (knowledge.state !== 'in_doubt') return decide(policy, history, null);
  const overdue = history.now.getTime() - knowledge.since.getTime() >= policy.reviewAfterMs;
  return {
    type: 'schedule',
    delayMs: policy.reconcileIntervalMs,
    reconciling: true,
    reason: `provider '${history.provider}' is not configured on this instance; the provider may have charged, waiting`,
    review:
      overdue && !history.underReview
        ? {
            reason: 'outcome_unknown',
            detail: `No instance that has provider '${history.provider}' has settled the order since ${knowledge.since.toISOString()}.`,
          }
        : undefined,
  };
}

/** The call's answer as the money rule records it. */
export function callFact(answer: StepAnswer): CallFact {
  const { outcome } = answer;
  const reference = 'reference' in outcome && outcome.reference ? outcome.reference : answer.askedAbout;
  const recorded = outcome.kind === 'retry' ? (outcome.charged === 'unknown' ? 'unknown' : 'retry') : outcome.kind;
  const decline = outcome.kind === 'declined' ? { code: outcome.code, message: outcome.message } : null;
  return { kind: answer.kind, outcome: recorded, reference, startedAt: answer.startedAt, decline };
}

/** What the step's answer (null: no call could be made) means for the order. */
export function decide(policy: RetryPolicy, history: StepHistory, answer: StepAnswer | null): Decision {
  const calls = answer ? [...history.calls, callFact(answer)] : history.calls;
  const knowledge = knowledgeOf(history.traits, calls, history.leads);
  const callCount = history.callCount + (answer ? 1 : 0);
  switch (knowledge.state) {
    case 'paid':
      return { type: 'complete', reference: knowledge.reference, reason: `${label(answer)}: succeeded` };
    case 'declined':
      return {
        type: 'fail',
        failure: knowledge.failure,
        reason: `${label(answer)}: declined (${knowledge.failure.code})`,
      };
    case 'clear':
      return whenClear(policy, history, answer, callCount);
    case 'in_doubt':
      return whileInDoubt(policy, history, knowledge, answer, callCount);
  }
}

/** Nothing may have been charged: charge (again), or fail when the retries are spent. */
function whenClear(policy: RetryPolicy, history: StepHistory, answer: StepAnswer | null, callCount: number): Decision {
  const outcome = answer?.outcome;
  if (outcome?.kind !== 'retry') {
    // "No such charge": proof that nothing was charged, so charging is safe, at once. The old
    // reference is forgotten, so a new charge whose answer is lost is not asked about under it.
    return {
      type: 'schedule',
      delayMs: 0,
      clearReference: true,
      reconciling: false,
      reason: `${label(answer)}: no charge found, charging`,
    };
  }
  if (callCount < policy.maxAttempts && !history.reconcilingSince) {
    return {
      type: 'schedule',
      delayMs: backoff(policy, callCount, outcome.retryAfterMs),
      reason: `${label(answer)}: ${outcome.reason}, retrying`,
    };
  }
  return {
    type: 'fail',
    failure: {
      code: 'provider_unavailable',
      message: `The provider could not be reached after ${callCount} attempts (${outcome.reason}); nothing was charged.`,
    },
    reason: `${label(answer)}: ${outcome.reason}, retries exhausted`,
  };
}

/** Money may have moved: never FAILED; ask again (slower and slower), and flag it past its deadline. */
function whileInDoubt(
  policy: RetryPolicy,
  history: StepHistory,
  knowledge: Extract<Knowledge, { state: 'in_doubt' }>,
  answer: StepAnswer | null,
  callCount: number,
): Decision {
  const elapsedMs = history.now.getTime() - knowledge.since.getTime();
  if (!knowledge.askable) {
    const deadlineMs = policy.unaskableDeadlineMs(history.provider);
    const reason = 'outcome unknown and the provider cannot be asked';
    if (elapsedMs >= deadlineMs) {
      return {
        type: 'await',
        reason: `${reason}; past its deadline: flagged for review`,
        review: {
          reason: 'push_unconfirmed',
          detail: `A charge sent at ${knowledge.since.toISOString()} got no answer and cannot be queried; its callback did not come within ${Math.round(deadlineMs / 1000)} s.`,
        },
      };
    }
    return {
      type: 'schedule',
      delayMs: deadlineMs - elapsedMs,
      reconciling: true,
      reason: `${reason}; waiting for its callback`,
    };
  }

  const review =
    elapsedMs >= policy.reviewAfterMs && !history.underReview
      ? ({
          reason: 'outcome_unknown',
          detail: `No conclusive answer from ${history.provider} since ${knowledge.since.toISOString()}; still asking.`,
        } as const)
      : undefined;
  const outcome = answer?.outcome;
  const budgetLeft = callCount < policy.maxAttempts && !history.reconcilingSince;
  if (outcome?.kind === 'pending') {
    // Accepted, result to come: the first check after a charge waits for the asynchronous result
    // (M-Pesa's callback); then backoff, then the slow schedule — never a gate slot every second.
    const delayMs =
      answer?.kind === 'charge'
        ? policy.pendingCheckDelayMs(history.provider)
        : budgetLeft
          ? backoff(policy, callCount, undefined)
          : policy.reconcileIntervalMs;
    return {
      type: 'schedule',
      delayMs,
      reference: outcome.reference,
      reconciling: answer?.kind === 'status' && !budgetLeft ? true : undefined,
      reason: `${label(answer)}: pending, waiting for the provider's result`,
      review,
    };
  }
  const why =
    outcome?.kind === 'retry' ? outcome.reason : outcome ? `no conclusive answer (${outcome.kind})` : 'no answer';
  const retryAfterMs = outcome?.kind === 'retry' ? outcome.retryAfterMs : undefined;
  if (budgetLeft) {
    return {
      type: 'schedule',
      delayMs: backoff(policy, callCount, retryAfterMs),
      reason: `${label(answer)}: ${why}; the provider may have charged, asking`,
      review,
    };
  }
  return {
    type: 'schedule',
    delayMs: Math.max(policy.reconcileIntervalMs, retryAfterMs ?? 0),
    reconciling: true,
    reason: `${label(answer)}: ${why}; the provider may have charged, reconciling`,
    review,
  };
}

function label(answer: StepAnswer | null): string {
  return answer?.kind ?? 'history';
}

/** Exponential backoff with "equal jitter" (half fixed, half random), at least Retry-After. */
export function backoff(policy: RetryPolicy, calls: number, retryAfterMs: number | undefined): number {
  const jittered = backoffDelay(calls, { baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs }, policy.random);
  return Math.max(jittered, Math.round(retryAfterMs ?? 0));
}
