import type { Failure, PaymentOrder } from './payment-order.ts';
import {
  type CallResult,
  type CallTicket,
  type ChargeRequest,
  type PaymentProvider,
  type ProviderAnswer,
  type ProviderCalls,
  type ProviderOutcome,
  providerIdempotencyKey,
} from './provider.ts';

/** The last charge or status call of an order, as far as processing needs to know it. */
export type LastCall = Readonly<{ kind: 'charge' | 'status'; outcome: CallResult['outcome'] | null }>;

export type ProcessingState = Readonly<{
  order: PaymentOrder;
  generation: number;
  callbackToken: string | null;
  lastCall: LastCall | null;
  /** Provider calls made so far (charges, status queries, token requests). */
  callCount: number;
  /** When the order's first provider call started. */
  firstCallAt: Date | null;
}>;

/** What the outcome of one processing step does to the order; written in ONE transaction. */
export type Decision =
  | Readonly<{ type: 'complete'; reference: string; reason: string }>
  | Readonly<{ type: 'fail'; failure: Failure; reason: string }>
  | Readonly<{
      type: 'schedule';
      delayMs: number;
      reason: string;
      reference?: string | undefined;
      /** Retries ran out while the provider may have charged: from now on, a slow schedule. */
      reconciling?: boolean;
      /** Forget the provider reference (a status query proved that charge does not exist). */
      clearReference?: boolean;
    }>;

export interface ProcessingStore {
  /** Runs `work` holding this order's lock (one processor per order at a time); 'busy' if another holds it. */
  withOrderLock<T>(orderId: string, work: () => Promise<T>): Promise<T | 'busy'>;
  load(orderId: string): Promise<ProcessingState | null>;
  /** The order an asynchronous provider result is about, by the token in its callback URL. */
  loadByCallbackToken(token: string): Promise<ProcessingState | null>;
  /** PENDING → PROCESSING, with its transition row. */
  markProcessing(orderId: string, reason: string): Promise<void>;
  /** The order's callback token, created on first use. */
  callbackToken(orderId: string): Promise<string>;
  /** Provider calls for this order: each takes a gate slot and is recorded as an attempt. */
  calls(order: PaymentOrder): ProviderCalls;
  /**
   * In ONE transaction: the call's attempt row finished, the decision applied (a terminal
   * transition with its outbox event, or the next job), the generation moved on. Returns false
   * when the order had moved on (another generation, or no longer PROCESSING): nothing applied.
   */
  apply(
    order: PaymentOrder,
    generation: number,
    decision: Decision,
    call?: { ticket: CallTicket; result: CallResult },
  ): Promise<boolean>;
}

export type RetryPolicy = Readonly<{
  /** Charge/status calls before giving up on retries. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** The slow schedule of orders whose outcome is unknown after the retries. */
  reconcileIntervalMs: number;
  /** How long to wait for an asynchronous result (M-Pesa callback) before asking. */
  pendingCheckDelayMs: (provider: string) => number;
}>;

export type ProcessDeps = Readonly<{
  store: ProcessingStore;
  providers: ReadonlyMap<string, PaymentProvider>;
  retry: RetryPolicy;
  callbackUrl: (provider: string, token: string) => string;
  random?: () => number;
}>;

export type ProcessResult = 'stale' | 'busy' | Decision['type'];

/**
 * One processing step for an order: at most one charge or status call, then ONE transaction with
 * what it meant. Safe to run again at any point: a stale job (an older generation) does nothing,
 * and an attempt without a known outcome is first reconciled by a status query.
 */
export async function processPaymentOrder(
  deps: ProcessDeps,
  orderId: string,
  generation: number,
): Promise<ProcessResult> {
  const result = await deps.store.withOrderLock(orderId, async (): Promise<ProcessResult> => {
    const state = await deps.store.load(orderId);
    if (!state || state.generation !== generation || isTerminal(state.order)) return 'stale';
    const provider = deps.providers.get(state.order.provider);
    if (!provider) {
      // Nothing sent yet: failing is safe. Otherwise the provider may have charged: leave the job
      // to be retried, perhaps on an instance that has this provider.
      if (state.order.status !== 'PENDING' || state.callCount > 0) {
        throw new Error(`provider '${state.order.provider}' is not configured on this instance`);
      }
      const failure = {
        code: 'provider_not_configured',
        message: `Provider '${state.order.provider}' is not configured.`,
      };
      await deps.store.markProcessing(orderId, 'picked up');
      await deps.store.apply(state.order, generation, { type: 'fail', failure, reason: failure.message });
      return 'fail';
    }
    if (state.order.status === 'PENDING') await deps.store.markProcessing(orderId, `sending to ${provider.name}`);
    if (!state.order.paymentMethod) {
      // Accepted without one (the field is optional), but no provider can charge nothing.
      const failure = { code: 'payment_method_required', message: 'The order has no payment method to charge.' };
      await deps.store.apply(state.order, generation, { type: 'fail', failure, reason: failure.message });
      return 'fail';
    }

    const request = await chargeRequest(deps, state, provider);
    const calls = deps.store.calls(state.order);
    const asking = mustAskFirst(state.lastCall);
    const answer = asking ? await provider.status(request, calls) : await provider.charge(request, calls);
    const decision = answer
      ? decide(deps, state, answer, asking ? 'status' : 'charge')
      : waitForCallback(deps, provider.name);
    await deps.store.apply(
      state.order,
      generation,
      decision,
      answer ? { ticket: answer.ticket, result: answer.call } : undefined,
    );
    return decision.type;
  });
  return result;
}

/** `paid_after_failure`: a success for an order already FAILED — money moved; people must look. */
export type CallbackResult = 'applied' | 'ignored' | 'unknown_order' | 'paid_after_failure';

/**
 * A provider's asynchronous result (the M-Pesa STK callback), for the order its URL names. Applied
 * in one transaction like any other outcome; a duplicate or late callback (the order is already
 * terminal, or has moved on) changes nothing.
 */
export async function applyProviderCallback(
  store: ProcessingStore,
  token: string,
  reference: string,
  outcome: ProviderOutcome,
): Promise<CallbackResult> {
  // A processing step may commit between our read and our write (the generation moves on): read
  // again and retry, so a callback is never acknowledged without being applied.
  for (let tries = 0; tries < 5; tries++) {
    const state = await store.loadByCallbackToken(token);
    if (!state) return 'unknown_order';
    const { order } = state;
    if (order.status === 'FAILED' && outcome.kind === 'succeeded') return 'paid_after_failure';
    if (order.status !== 'PROCESSING') return 'ignored';
    const tracked = order.providerReference === null || order.providerReference === reference;
    let decision: Decision;
    if (outcome.kind === 'succeeded') {
      // Money moved, whichever of this order's pushes it was: the order is paid.
      decision = { type: 'complete', reference: outcome.reference, reason: 'callback: succeeded' };
    } else if (outcome.kind === 'declined' && tracked) {
      decision = {
        type: 'fail',
        failure: { code: outcome.code, message: outcome.message },
        reason: `callback: declined (${outcome.code})`,
      };
    } else {
      // A decline of an older push, or a non-final answer: the order goes on as it is.
      return tracked ? 'ignored' : 'unknown_order';
    }
    if (await store.apply(order, state.generation, decision)) return 'applied';
  }
  throw new Error('the order kept moving while a callback was applied');
}

/**
 * Ask before charging again when the last call's outcome is not known: it never finished (the
 * process died mid-call), it timed out, or the provider said "pending".
 */
function mustAskFirst(last: LastCall | null): boolean {
  if (!last) return false;
  return last.outcome === null || last.outcome === 'unknown' || last.outcome === 'pending';
}

async function chargeRequest(
  deps: ProcessDeps,
  state: ProcessingState,
  provider: PaymentProvider,
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
    providerReference: order.providerReference,
    firstCallAt: state.firstCallAt,
    callbackUrl: token ? deps.callbackUrl(provider.name, token) : null,
  };
}

/** What a provider's answer means for the order. */
export function decide(
  deps: ProcessDeps,
  state: ProcessingState,
  answer: ProviderAnswer,
  kind: 'charge' | 'status',
): Decision {
  const { outcome } = answer;
  const calls = state.callCount + 1;
  switch (outcome.kind) {
    case 'succeeded':
      return { type: 'complete', reference: outcome.reference, reason: `${kind}: succeeded` };
    case 'declined':
      return {
        type: 'fail',
        failure: { code: outcome.code, message: outcome.message },
        reason: `${kind}: declined (${outcome.code})`,
      };
    case 'pending':
      return {
        type: 'schedule',
        delayMs: deps.retry.pendingCheckDelayMs(state.order.provider),
        reference: outcome.reference,
        reason: `${kind}: pending, waiting for the provider's result`,
      };
    case 'not_found':
      // Proof that nothing was charged: charging (again) is safe, at once. The old reference is
      // forgotten, so a new push whose answer is lost is not queried under the old one.
      return { type: 'schedule', delayMs: 0, clearReference: true, reason: 'status: no charge found, charging' };
    case 'retry': {
      // A status call that could not be answered leaves the charge as unknown as it was.
      const charged = kind === 'status' ? 'unknown' : outcome.charged;
      if (calls < deps.retry.maxAttempts && !state.order.reconcilingSince) {
        return {
          type: 'schedule',
          delayMs: backoff(deps, calls, outcome.retryAfterMs),
          reason: `${kind}: ${outcome.reason}, retrying`,
        };
      }
      if (charged === 'no') {
        return {
          type: 'fail',
          failure: {
            code: 'provider_unavailable',
            message: `The provider could not be reached after ${calls} attempts (${outcome.reason}); nothing was charged.`,
          },
          reason: `${kind}: ${outcome.reason}, retries exhausted`,
        };
      }
      return {
        type: 'schedule',
        delayMs: Math.max(deps.retry.reconcileIntervalMs, outcome.retryAfterMs ?? 0),
        reconciling: true,
        reason: `${kind}: ${outcome.reason}; the provider may have charged, reconciling`,
      };
    }
  }
}

/** Nothing to ask the provider (no reference, no idempotent query): wait for its callback. */
function waitForCallback(deps: ProcessDeps, provider: string): Decision {
  return {
    type: 'schedule',
    delayMs: Math.max(deps.retry.reconcileIntervalMs, deps.retry.pendingCheckDelayMs(provider)),
    reconciling: true,
    reason: 'outcome unknown and the provider cannot be asked; waiting for its callback',
  };
}

/** Exponential backoff with "equal jitter" (half fixed, half random), at least Retry-After. */
function backoff(deps: ProcessDeps, calls: number, retryAfterMs: number | undefined): number {
  const exponential = Math.min(deps.retry.maxDelayMs, deps.retry.baseDelayMs * 2 ** (calls - 1));
  const random = deps.random ?? Math.random;
  const jittered = exponential / 2 + random() * (exponential / 2);
  return Math.round(Math.max(jittered, retryAfterMs ?? 0));
}

function isTerminal(order: PaymentOrder): boolean {
  return order.status === 'COMPLETED' || order.status === 'FAILED';
}
