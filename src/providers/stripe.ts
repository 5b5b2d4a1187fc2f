import Stripe from 'stripe';
import { fetch as undiciFetch } from 'undici';
import type {
  ChargeRequest,
  PaymentProvider,
  ProviderAnswer,
  ProviderCalls,
  ProviderOutcome,
} from '../domain/provider.ts';
import { toAnswer } from './answer.ts';

export type StripeAdapterConfig = Readonly<{
  secretKey: string;
  /** Base URL, e.g. https://api.stripe.com or the sandbox's http://127.0.0.1:12111. */
  apiUrl: string;
  timeoutMs: number;
}>;

type PaymentIntent = Stripe.PaymentIntent;

/** Stripe keeps idempotency keys at least 24 hours; an hour of slack for clocks and queues. */
const KEY_SAFE_AGE_MS = 23 * 3_600_000;

/**
 * Stripe PaymentIntents through the official SDK: one `create` with `confirm: true` per charge,
 * with an Idempotency-Key derived from the order, so a retry can never charge twice (Stripe answers
 * a repeated key with the saved result). The SDK's own retries are off (we own retries and every
 * call goes through the rate gate), and it talks through undici's fetch: the SDK's Node client
 * would quietly resend once on a reset connection, behind the gate's back.
 */
export function createStripeAdapter(config: StripeAdapterConfig): PaymentProvider {
  const url = new URL(config.apiUrl);
  const stripe = new Stripe(config.secretKey, {
    host: url.hostname,
    port: url.port || (url.protocol === 'https:' ? 443 : 80),
    protocol: url.protocol === 'https:' ? 'https' : 'http',
    maxNetworkRetries: 0,
    timeout: config.timeoutMs,
    telemetry: false,
    httpClient: Stripe.createFetchHttpClient(undiciFetch as unknown as typeof fetch),
  });

  async function create(
    request: ChargeRequest,
    calls: ProviderCalls,
    kind: 'charge' | 'status',
  ): Promise<ProviderAnswer> {
    const ticket = await calls.start(kind, request.idempotencyKey);
    const started = performance.now();
    try {
      const intent = await stripe.paymentIntents.create(chargeParams(request), {
        idempotencyKey: request.idempotencyKey,
      });
      return toAnswer(ticket, started, fromIntent(intent), intent.lastResponse?.statusCode ?? 200);
    } catch (error) {
      return toAnswer(ticket, started, fromError(error), statusOf(error), errorText(error));
    }
  }

  /** The order's PaymentIntent by metadata[order_id] (Stripe's search; fully consistent after ~1 min). */
  async function search(request: ChargeRequest, calls: ProviderCalls): Promise<ProviderAnswer> {
    const ticket = await calls.start('status');
    const started = performance.now();
    try {
      const found = await stripe.paymentIntents.search({ query: `metadata['order_id']:'${request.orderId}'` });
      const intent = found.data[0];
      const outcome: ProviderOutcome = intent ? fromIntent(intent) : { kind: 'not_found' };
      return toAnswer(ticket, started, outcome, found.lastResponse?.statusCode ?? 200);
    } catch (error) {
      return toAnswer(ticket, started, fromError(error), statusOf(error), errorText(error));
    }
  }

  return {
    name: 'stripe',
    usesCallback: false,
    charge: (request, calls) => create(request, calls, 'charge'),
    async status(request, calls) {
      // Without the PaymentIntent's id, Stripe's way to ask is the same request with the same
      // idempotency key: it answers the saved result, or runs the charge if it never ran. Stripe
      // keeps keys 24 h; past that the same request could charge again, so we search instead.
      if (!request.providerReference) {
        const keyMayHaveExpired =
          request.firstCallAt !== null && Date.now() - request.firstCallAt.getTime() > KEY_SAFE_AGE_MS;
        return keyMayHaveExpired ? search(request, calls) : create(request, calls, 'status');
      }
      const ticket = await calls.start('status');
      const started = performance.now();
      try {
        const intent = await stripe.paymentIntents.retrieve(request.providerReference);
        return toAnswer(ticket, started, fromIntent(intent), intent.lastResponse?.statusCode ?? 200);
      } catch (error) {
        const outcome: ProviderOutcome = statusOf(error) === 404 ? { kind: 'not_found' } : fromError(error);
        return toAnswer(ticket, started, outcome, statusOf(error), errorText(error));
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
    amount: request.amount,
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
function fromIntent(intent: PaymentIntent): ProviderOutcome {
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

/** A Stripe error, as an outcome (see https://docs.stripe.com/error-handling). */
function fromError(error: unknown): ProviderOutcome {
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

/** Retry-After in seconds (or an HTTP date), as milliseconds. */
export function retryAfterMs(value: string | undefined | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 3_600_000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.min(date - Date.now(), 3_600_000));
}
