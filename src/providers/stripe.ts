import Stripe from 'stripe';
import type {
  ChargeRequest,
  PaymentProvider,
  ProviderAnswer,
  ProviderCalls,
  ProviderOutcome,
} from '../domain/provider.ts';
import { retryAfterMs } from '../lib/retry-after.ts';
import { toAnswer } from './answer.ts';
import { createProviderHttp } from './provider-http.ts';
import { stripeAmountOrThrow } from './stripe-amounts.ts';

export type StripeAdapterConfig = Readonly<{
  secretKey: string;
  /** Base URL, e.g. https://api.stripe.com or the sandbox's http://127.0.0.1:12111. */
  apiUrl: string;
  timeoutMs: number;
}>;

type PaymentIntent = Stripe.PaymentIntent;

/** Stripe keeps idempotency keys at least 24 hours; an hour of slack for clocks and queues. */
const KEY_SAFE_AGE_MS = 23 * 3_600_000;
/** Stripe's search lags new objects by "less than a minute" (docs.stripe.com/search); twice that. */
const SEARCH_CONSISTENT_AFTER_MS = 120_000;

function olderThan(at: Date | null, ms: number): boolean {
  return at !== null && Date.now() - at.getTime() > ms;
}

/** A 5xx that Stripe replays from the idempotency key's saved result (Idempotent-Replayed: true). */
function isReplayedServerError(error: unknown): boolean {
  if (!(error instanceof Stripe.errors.StripeError) || (error.statusCode ?? 0) < 500) return false;
  const replayed = error.headers?.['idempotent-replayed'];
  return replayed === 'true' || (Array.isArray(replayed) && replayed.includes('true'));
}

/**
 * Stripe PaymentIntents through the official SDK: one `create` with `confirm: true` per charge,
 * with an Idempotency-Key derived from the order, so a retry can never charge twice (Stripe answers
 * a repeated key with the saved result). The SDK's own retries are off (we own retries and every
 * call goes through the rate gate), and it talks through undici's fetch: the SDK's Node client
 * would quietly resend once on a reset connection, behind the gate's back. That fetch takes the gate
 * slot once the SDK has built the request, on a warm connection (provider-http.ts).
 */
export function createStripeAdapter(config: StripeAdapterConfig): PaymentProvider {
  const url = new URL(config.apiUrl);
  const http = createProviderHttp({ origin: url.origin, timeoutMs: config.timeoutMs });
  const stripe = new Stripe(config.secretKey, {
    host: url.hostname,
    port: url.port || (url.protocol === 'https:' ? 443 : 80),
    protocol: url.protocol === 'https:' ? 'https' : 'http',
    maxNetworkRetries: 0,
    timeout: config.timeoutMs,
    telemetry: false,
    httpClient: Stripe.createFetchHttpClient(http.fetch),
  });

  async function create(
    request: ChargeRequest,
    calls: ProviderCalls,
    kind: 'charge' | 'status',
  ): Promise<ProviderAnswer> {
    let params: Stripe.PaymentIntentCreateParams;
    try {
      params = chargeParams(request);
    } catch (error) {
      return unsendable(request, calls, kind, error);
    }
    const call = http.call(calls, kind, request.idempotencyKey);
    try {
      const intent = await call.run(() =>
        stripe.paymentIntents.create(params, { idempotencyKey: request.idempotencyKey }),
      );
      return toAnswer(
        await call.ticket(),
        call.startedAt(),
        fromIntent(intent),
        intent.lastResponse?.statusCode ?? 200,
      );
    } catch (error) {
      const answer = toAnswer(
        await call.ticket(),
        call.startedAt(),
        fromError(error, kind),
        statusOf(error),
        errorText(error),
      );
      if (kind === 'status' && isReplayedServerError(error)) {
        // Stripe saves a request's result under its key even when it is a 500 it hit while
        // executing, and replays it for 24 h: asking by key will never tell. Search instead.
        await calls.finish(answer.ticket, answer.call);
        return search(request, calls, olderThan(request.firstCallAt, SEARCH_CONSISTENT_AFTER_MS));
      }
      return answer;
    }
  }

  /**
   * A request that cannot be built (an order stored before a rule that now refuses it): nothing is
   * sent. For a charge that is a decline — nothing can have been charged by it; for a status query
   * it is no answer (an earlier create, built under the old rule, may have charged).
   */
  async function unsendable(
    request: ChargeRequest,
    calls: ProviderCalls,
    kind: 'charge' | 'status',
    error: unknown,
  ): Promise<ProviderAnswer> {
    const message = `not sent: ${(error as Error)?.message ?? String(error)}`;
    const ticket = await http.call(calls, kind, request.idempotencyKey).ticket();
    const outcome: ProviderOutcome =
      kind === 'charge'
        ? { kind: 'declined', code: 'request_not_sendable', message }
        : { kind: 'retry', charged: 'unknown', reason: message };
    return toAnswer(ticket, performance.now(), outcome, null, message);
  }

  /**
   * The order's PaymentIntents by metadata[order_id] (Stripe's search). A success among them is the
   * answer; then one still in progress; "not found" only when there is none at all — and, since a
   * search shows a new PaymentIntent only within about a minute, only as proof (`notFoundIsProof`)
   * for calls old enough; otherwise it is no answer yet.
   */
  async function search(
    request: ChargeRequest,
    calls: ProviderCalls,
    notFoundIsProof: boolean,
  ): Promise<ProviderAnswer> {
    const call = http.call(calls, 'status');
    try {
      const found = await call.run(() =>
        stripe.paymentIntents.search({ query: `metadata['order_id']:'${request.orderId}'` }),
      );
      const outcomes = found.data.map(fromIntent);
      const none: ProviderOutcome = notFoundIsProof
        ? { kind: 'not_found' }
        : {
            kind: 'retry',
            charged: 'unknown',
            reason: 'search: nothing yet (search lags new PaymentIntents by up to a minute)',
          };
      const outcome: ProviderOutcome =
        outcomes.find((o) => o.kind === 'succeeded') ??
        outcomes.find((o) => o.kind === 'pending') ??
        outcomes[0] ??
        none;
      return toAnswer(await call.ticket(), call.startedAt(), outcome, found.lastResponse?.statusCode ?? 200);
    } catch (error) {
      return toAnswer(
        await call.ticket(),
        call.startedAt(),
        fromError(error, 'status'),
        statusOf(error),
        errorText(error),
      );
    }
  }

  return {
    name: 'stripe',
    usesCallback: false,
    // One Idempotency-Key per order: every create for it is the same PaymentIntent.
    traits: { idempotent: true },
    charge: (request, calls) => create(request, calls, 'charge'),
    async status(request, calls) {
      // Without the PaymentIntent's id, Stripe's way to ask is the same request with the same
      // idempotency key: it answers the saved result, or runs the charge if it never ran. Stripe
      // keeps keys 24 h; past that the same request could charge again, so we search instead.
      // With the id we only ever retrieve it: a failed retrieve is asked again, never turned into
      // a fresh create (which, past the key window, could charge a second time).
      if (!request.providerReference) {
        const keyMayHaveExpired = olderThan(request.firstCallAt, KEY_SAFE_AGE_MS);
        return keyMayHaveExpired ? search(request, calls, true) : create(request, calls, 'status');
      }
      const call = http.call(calls, 'status');
      const id = request.providerReference;
      try {
        const intent = await call.run(() => stripe.paymentIntents.retrieve(id));
        return toAnswer(
          await call.ticket(),
          call.startedAt(),
          fromIntent(intent),
          intent.lastResponse?.statusCode ?? 200,
        );
      } catch (error) {
        // A 404 for an id Stripe gave us is not "no charge": the key or account changed, or Stripe
        // is wrong. Proof that nothing was charged must not rest on it: no answer, ask again.
        const outcome: ProviderOutcome =
          statusOf(error) === 404
            ? { kind: 'retry', charged: 'unknown', reason: 'invalid_request_error 404 for a known PaymentIntent' }
            : fromError(error, 'status');
        return toAnswer(await call.ticket(), call.startedAt(), outcome, statusOf(error), errorText(error));
      }
    },
  };
}

function chargeParams(request: ChargeRequest): Stripe.PaymentIntentCreateParams {
  if (request.paymentMethod?.type !== 'card') {
    // Refused at create time already; kept as a guard for orders stored before that rule.
    throw new Error(`order ${request.orderId} has no card payment method`);
  }
  return {
    // ISO minor units to Stripe's (MGA ÷ 100, ISK and UGX × 100): see stripe-amounts.ts. Create
    // refuses what cannot convert; an order stored before that rule throws here, unsent.
    amount: stripeAmountOrThrow(request.currency, request.amount),
    currency: request.currency.toLowerCase(),
    payment_method: request.paymentMethod.token,
    // Confirmed server-side with no customer present: no redirect-based methods, so no return_url.
    automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
    confirm: true,
    metadata: { order_id: request.orderId },
    ...(request.description ? { description: request.description } : {}),
  };
}

/** A PaymentIntent's status, as an outcome. */
export function fromIntent(intent: Pick<PaymentIntent, 'id' | 'status' | 'last_payment_error'>): ProviderOutcome {
  switch (intent.status) {
    case 'succeeded':
      return { kind: 'succeeded', reference: intent.id };
    case 'requires_payment_method': {
      const last = intent.last_payment_error;
      return {
        kind: 'declined',
        code: last?.decline_code ?? last?.code ?? 'payment_failed',
        message: last?.message ?? 'The payment failed.',
        reference: intent.id,
      };
    }
    case 'requires_action':
      // 3-D Secure or similar: a server-to-server charge cannot complete it.
      return {
        kind: 'declined',
        code: 'authentication_required',
        message: 'The card requires authentication.',
        reference: intent.id,
      };
    case 'canceled':
      return { kind: 'declined', code: 'canceled', message: 'The PaymentIntent was canceled.', reference: intent.id };
    default:
      // processing (and anything newer): the result comes later; ask again.
      return { kind: 'pending', reference: intent.id };
  }
}

/**
 * A Stripe error, as an outcome (see https://docs.stripe.com/error-handling). On a status query
 * only an answer about the PaymentIntent itself is conclusive (a replayed card decline): a request
 * refused for itself (an invalid request: a bad API version, a restricted account) says nothing
 * about the charge, whereas for a charge it means nothing was created.
 */
export function fromError(error: unknown, kind: 'charge' | 'status'): ProviderOutcome {
  if (!(error instanceof Stripe.errors.StripeError)) {
    return { kind: 'retry', charged: 'unknown', reason: `unexpected error: ${(error as Error)?.message ?? error}` };
  }
  const reason = `${error.type} ${error.statusCode ?? ''}`.trim();
  if (error instanceof Stripe.errors.StripeCardError) {
    return { kind: 'declined', code: error.decline_code ?? error.code ?? 'card_declined', message: error.message };
  }
  if (error instanceof Stripe.errors.StripeRateLimitError || error.statusCode === 429) {
    return { kind: 'retry', charged: 'no', reason, retryAfterMs: retryAfterMs(error.headers?.['retry-after']) };
  }
  if (error instanceof Stripe.errors.StripeConnectionError) {
    const code = causeCode(error);
    // Refused or unresolvable: the request never left. Anything else (timeout, reset) may have been processed.
    const neverSent = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
    return { kind: 'retry', charged: neverSent ? 'no' : 'unknown', reason: `connection: ${code ?? error.message}` };
  }
  if (
    error instanceof Stripe.errors.StripeAuthenticationError ||
    error instanceof Stripe.errors.StripePermissionError
  ) {
    return { kind: 'retry', charged: 'no', reason };
  }
  if (error instanceof Stripe.errors.StripeIdempotencyError) {
    // 409: the same key is being processed right now; 400: the key was used with other
    // parameters. Either way the charge may exist: reconcile, never guess.
    return { kind: 'retry', charged: 'unknown', reason };
  }
  if (error instanceof Stripe.errors.StripeInvalidRequestError) {
    if (kind === 'status')
      return { kind: 'retry', charged: 'unknown', reason: `${reason}: ${error.code ?? 'invalid_request'}` };
    return { kind: 'declined', code: error.code ?? 'invalid_request', message: error.message };
  }
  // 5xx (StripeAPIError) and anything else: Stripe may have processed it.
  return { kind: 'retry', charged: 'unknown', reason };
}

function statusOf(error: unknown): number | null {
  return error instanceof Stripe.errors.StripeError ? (error.statusCode ?? null) : null;
}

function errorText(error: unknown): string {
  if (error instanceof Stripe.errors.StripeError) {
    const code = causeCode(error);
    return `${error.type}${error.code ? ` ${error.code}` : ''}: ${error.message}${code ? ` (${code})` : ''}`;
  }
  return String((error as Error)?.message ?? error);
}

function causeCode(error: Stripe.errors.StripeError): string | undefined {
  const detail = error.detail as { code?: string; cause?: { code?: string } } | undefined;
  return detail?.cause?.code ?? detail?.code;
}
