import type { ProviderTraits } from './money-rule.ts';
import type { PaymentMethod } from './payment-order.ts';

/**
 * The provider port: charge an order, or ask what became of a charge. Adapters (src/providers/)
 * map every answer of their provider to one of these outcomes.
 */
export type ProviderOutcome =
  /** Money moved. `reference` is the provider's id for the charge. */
  | Readonly<{ kind: 'succeeded'; reference: string }>
  /** A permanent no (a card decline, a cancelled push, an invalid request): the order fails. */
  | Readonly<{ kind: 'declined'; code: string; message: string; reference?: string | undefined }>
  /** Accepted; the final answer comes later (an M-Pesa push awaiting the customer). */
  | Readonly<{ kind: 'pending'; reference: string }>
  /**
   * Try again later: network error, 5xx, 429, timeout. `charged` says whether the provider may have
   * acted on the request: 'no' when it certainly did not (refused before processing), 'unknown'
   * when it may have (timeout, a connection lost after sending).
   */
  | Readonly<{ kind: 'retry'; charged: 'no' | 'unknown'; reason: string; retryAfterMs?: number | undefined }>
  /** A status query found no charge: proof that nothing was charged. */
  | Readonly<{ kind: 'not_found' }>;

export type CallKind = 'charge' | 'status' | 'token';

/** A started provider call: its attempt row and when it started. */
export type CallTicket = Readonly<{
  attemptId: string;
  attemptNumber: number;
  /** The gate's grant, by the database clock: the call's recorded start. */
  startedAt: Date;
  /**
   * When the request may reach its socket (performance.now(), this process): not before `sendAfter`,
   * not after `sendBy` — or the grant is given back (`restart`). Every call leaving in the same
   * window after its grant is what keeps the provider's view of the rate the gate's.
   */
  sendAfter: number;
  sendBy: number;
}>;

/** How one HTTP call to a provider went, for its attempt row. */
export type CallResult = Readonly<{
  outcome: 'succeeded' | 'declined' | 'pending' | 'retry' | 'unknown' | 'not_found' | 'error';
  httpStatus: number | null;
  latencyMs: number;
  error: string | null;
}>;

/**
 * What an adapter is given for each provider call it makes: every call (charge, status query,
 * token request) first takes a slot from the global rate gate and is recorded as an attempt.
 */
export interface ProviderCalls {
  start(kind: CallKind, idempotencyKey?: string): Promise<CallTicket>;
  /** For a call that could not leave by `ticket.sendBy`: gives the grant back and waits for a new one, same attempt. */
  restart(ticket: CallTicket): Promise<CallTicket>;
  /** Records the end of an auxiliary call (a token request). A charge or status call ends with the order's outcome. */
  finish(ticket: CallTicket, result: CallResult): Promise<void>;
}

/** The order, as a provider sees it. */
export type ChargeRequest = Readonly<{
  orderId: string;
  amount: number;
  currency: string;
  paymentMethod: PaymentMethod | null;
  description: string | null;
  /** The same on every attempt for this order, so a provider that dedupes by key charges once. */
  idempotencyKey: string;
  /**
   * For a status query: the charge to ask about (a Stripe PaymentIntent, an M-Pesa
   * CheckoutRequestID), chosen by the money rule from the call history; null: ask by idempotency key.
   */
  providerReference: string | null;
  /** When the first call for this order started (idempotency keys expire: Stripe keeps them 24 h). */
  firstCallAt: Date | null;
  /** Where an asynchronous provider should send its result (M-Pesa); names the order by an unguessable token. */
  callbackUrl: string | null;
}>;

export type ProviderAnswer = Readonly<{ outcome: ProviderOutcome; ticket: CallTicket; call: CallResult }>;

export interface PaymentProvider {
  readonly name: string;
  /** Does it answer asynchronously, to a callback URL of ours (M-Pesa)? */
  readonly usesCallback: boolean;
  /** What the money rule may assume about its calls (one charge per order, or one per call). */
  readonly traits: ProviderTraits;
  charge(request: ChargeRequest, calls: ProviderCalls): Promise<ProviderAnswer>;
  /**
   * What became of the charge named by `request.providerReference` (or, without one, of the
   * order's idempotency key). Returns null when there is nothing to ask (no reference and no
   * idempotent way to ask): the caller keeps waiting for the provider's callback.
   */
  status(request: ChargeRequest, calls: ProviderCalls): Promise<ProviderAnswer | null>;
}

/** The provider-side idempotency key of an order: derived from it, never a fresh one on retry. */
export function providerIdempotencyKey(orderId: string): string {
  return `${orderId}-charge`;
}
