import {
  type CallbackContext,
  type CallbackDisposition,
  type CallbackJudgement,
  judgeCallback,
  type ProviderCallback,
} from './callback-evidence.ts';
import {
  callFact,
  type Decision,
  decide,
  nextCall,
  type RetryPolicy,
  type StepAnswer,
  type StepHistory,
  withoutProvider,
} from './decide.ts';
import type { CallFact } from './money-rule.ts';
import type { Failure, PaymentOrder } from './payment-order.ts';
import {
  type CallResult,
  type CallTicket,
  type ChargeRequest,
  type PaymentProvider,
  type ProviderCalls,
  providerIdempotencyKey,
} from './provider.ts';

export type ProcessingState = Readonly<{
  order: PaymentOrder;
  generation: number;
  callbackToken: string | null;
  /** The order's charge and status calls so far, oldest first: what the money rule reads. */
  calls: readonly CallFact[];
  /** CheckoutRequestIDs that success callbacks named for a push of ours we never learnt the id of. */
  leads: readonly string[];
  /** Provider calls made so far (charges, status queries, token requests). */
  callCount: number;
  /** When the order's first provider call started. */
  firstCallAt: Date | null;
  /** The database's clock when the state was read. */
  now: Date;
}>;

/** A finished call: its attempt row's ticket, how the HTTP call went, and what the money rule records. */
export type FinishedCall = Readonly<{ ticket: CallTicket; result: CallResult; fact: CallFact }>;

export interface ProcessingStore {
  /** Runs `work` holding this order's lock (one processor per order at a time); 'busy' if another holds it. */
  withOrderLock<T>(orderId: string, work: () => Promise<T>): Promise<T | 'busy'>;
  load(orderId: string): Promise<ProcessingState | null>;
  /** PENDING → PROCESSING, with its transition row. */
  markProcessing(orderId: string, reason: string): Promise<void>;
  /** The order's callback token, created on first use. */
  callbackToken(orderId: string): Promise<string>;
  /** Provider calls for this order: each takes a gate slot and is recorded as an attempt. */
  calls(order: PaymentOrder): ProviderCalls;
  /**
   * In ONE transaction: the call's attempt row finished, the decision applied (a terminal
   * transition with its outbox event, the next job, a review opened with its event), the generation
   * moved on. Returns false when the order had moved on (another generation, or no longer
   * PROCESSING): nothing but the attempt row is written.
   */
  /**
   * The decision (and the call it follows), in one transaction. `fromPending`: the order is still
   * PENDING and moves to PROCESSING (with that reason) in the same transaction.
   */
  apply(
    order: PaymentOrder,
    generation: number,
    decision: Decision,
    call?: FinishedCall,
    options?: Readonly<{ fromPending?: string }>,
  ): Promise<boolean>;
  /** An order no provider was ever called for fails in ONE transaction, from PENDING or PROCESSING. */
  failUnsent(order: PaymentOrder, generation: number, failure: Failure): Promise<boolean>;
  /**
   * In ONE transaction, holding the order's row: reads what `judge` needs about the order the token
   * names, records the callback with the disposition `judge` gives, and applies it (completes the
   * order, schedules its next step at once, opens a review). null when the token names no order.
   */
  receiveCallback(
    token: string,
    callback: ProviderCallback,
    judge: (context: Omit<CallbackContext, 'traits'>) => CallbackJudgement,
  ): Promise<CallbackJudgement | null>;
}

export type ProcessDeps = Readonly<{
  store: ProcessingStore;
  providers: ReadonlyMap<string, PaymentProvider>;
  policy: RetryPolicy;
  callbackUrl: (provider: string, token: string) => string;
}>;

export type ProcessResult = 'stale' | 'busy' | Decision['type'];

/**
 * One processing step for an order: at most one charge or status call — which one, the money rule
 * decides from the order's whole call history — then ONE transaction with what it meant. Safe to
 * run again at any point: a stale job (an older generation) does nothing, and a call whose outcome
 * is unknown is asked about, never repeated as a fresh charge.
 */
export async function processPaymentOrder(
  deps: ProcessDeps,
  orderId: string,
  generation: number,
): Promise<ProcessResult> {
  return deps.store.withOrderLock(orderId, async (): Promise<ProcessResult> => {
    const state = await deps.store.load(orderId);
    if (!state || state.generation !== generation || isTerminal(state.order)) return 'stale';
    const provider = deps.providers.get(state.order.provider);
    if (!provider) {
      // Nothing sent yet: failing is safe. Otherwise the provider may have charged: the order
      // waits (perhaps for an instance that has this provider) and is flagged if it waits too long.
      const failure = {
        code: 'provider_not_configured',
        message: `Provider '${state.order.provider}' is not configured.`,
      };
      if (state.callCount === 0) {
        await deps.store.failUnsent(state.order, generation, failure);
        return 'fail';
      }
      const unknownTraits = { idempotent: false };
      const decision = withoutProvider(
        deps.policy,
        stepHistory(state, { name: state.order.provider, traits: unknownTraits }),
      );
      // One transaction: the move out of PENDING and the decision (a crash between two would leave
      // a PROCESSING order whose step never ran).
      const fromPending = state.order.status === 'PENDING' ? 'picked up' : undefined;
      await deps.store.apply(state.order, generation, decision, undefined, { fromPending });
      return decision.type;
    }
    if (!state.order.paymentMethod && state.callCount === 0) {
      // Accepted without one (the field is optional), but no provider can charge nothing.
      const failure = { code: 'payment_method_required', message: 'The order has no payment method to charge.' };
      await deps.store.failUnsent(state.order, generation, failure);
      return 'fail';
    }
    if (state.order.status === 'PENDING') await deps.store.markProcessing(orderId, `sending to ${provider.name}`);

    const history = stepHistory(state, provider);
    const next = nextCall(deps.policy, history);
    if (next.type === 'settled') {
      await deps.store.apply(state.order, generation, next.decision);
      return next.decision.type;
    }
    const request = await chargeRequest(deps, state, provider, next.type === 'status' ? next.reference : null);
    const calls = deps.store.calls(state.order);
    const kind = next.type === 'charge' ? 'charge' : 'status';
    const answer =
      next.type === 'charge'
        ? await provider.charge(request, calls)
        : next.type === 'status'
          ? await provider.status(request, calls)
          : null;
    const step: StepAnswer | null = answer
      ? { kind, outcome: answer.outcome, askedAbout: request.providerReference, startedAt: answer.ticket.startedAt }
      : null;
    const decision = decide(deps.policy, history, step);
    const finished = answer && step ? { ticket: answer.ticket, result: answer.call, fact: callFact(step) } : undefined;
    await deps.store.apply(state.order, generation, decision, finished);
    return decision.type;
  });
}

export type CallbackResult = Readonly<{ known: boolean; disposition: CallbackDisposition | null }>;

/**
 * A provider's asynchronous result (the M-Pesa STK callback), for the order its URL names: recorded
 * as evidence and judged (callback-evidence.ts) in one transaction. A duplicate or late callback
 * changes nothing; one that contradicts a terminal order raises a review.
 */
export async function receiveProviderCallback(
  deps: Pick<ProcessDeps, 'store' | 'providers'>,
  token: string,
  callback: ProviderCallback,
): Promise<CallbackResult> {
  const provider = deps.providers.get(callback.provider);
  const traits = provider?.traits ?? { idempotent: false };
  const judgement = await deps.store.receiveCallback(token, callback, (context) =>
    judgeCallback({ ...context, traits }, callback),
  );
  return { known: judgement !== null, disposition: judgement?.disposition ?? null };
}

function stepHistory(state: ProcessingState, provider: Pick<PaymentProvider, 'name' | 'traits'>): StepHistory {
  return {
    provider: provider.name,
    traits: provider.traits,
    calls: state.calls,
    leads: state.leads,
    callCount: state.callCount,
    reconcilingSince: state.order.reconcilingSince,
    underReview: state.order.review !== null,
    now: state.now,
  };
}

async function chargeRequest(
  deps: ProcessDeps,
  state: ProcessingState,
  provider: PaymentProvider,
  askAbout: string | null,
): Promise<ChargeRequest> {
  const { order } = state;
  const token = provider.usesCallback ? (state.callbackToken ?? (await deps.store.callbackToken(order.id))) : null;
  return {
    orderId: order.id,
    amount: order.amount,
    currency: order.currency,
    paymentMethod: order.paymentMethod,
    description: order.description,
    idempotencyKey: providerIdempotencyKey(order.id),
    providerReference: askAbout,
    firstCallAt: state.firstCallAt,
    callbackUrl: token ? deps.callbackUrl(provider.name, token) : null,
  };
}

function isTerminal(order: PaymentOrder): boolean {
  return order.status === 'COMPLETED' || order.status === 'FAILED';
}
