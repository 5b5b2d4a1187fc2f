import { isDeepStrictEqual } from 'node:util';
import { authorization, type HandlerContext, type ProviderApi, type Reply, type SandboxRequest } from './http.ts';
import { stripeId, stripeRequestId } from './ids.ts';
import type { Ledger } from './ledger.ts';
import type { Directive } from './scripts.ts';
import { FormError, parseStripeForm } from './stripe-form.ts';
import type { Switches } from './switches.ts';

/**
 * The subset of Stripe's API that our adapter uses: PaymentIntents create (confirmed at once),
 * retrieve and search, with Stripe's errors and idempotent requests.
 * https://docs.stripe.com/api/payment_intents, https://docs.stripe.com/api/idempotent_requests
 */

export type StripeDependencies = Readonly<{
  ledger: Ledger;
  switches: () => Readonly<Switches>;
  random: () => number;
}>;

type PaymentIntent = {
  id: string;
  object: 'payment_intent';
  amount: number;
  amount_capturable: number;
  amount_received: number;
  capture_method: 'automatic_async';
  client_secret: string;
  confirmation_method: 'automatic';
  created: number;
  currency: string;
  description: string | null;
  last_payment_error: Record<string, unknown> | null;
  latest_charge: string | null;
  livemode: false;
  metadata: Record<string, string>;
  payment_method: string | null;
  payment_method_types: string[];
  status: 'requires_payment_method' | 'requires_confirmation' | 'processing' | 'succeeded';
};

type CreateParams = Readonly<{
  amount: number;
  currency: string;
  paymentMethod: string | null;
  confirm: boolean;
  metadata: Record<string, string>;
  paymentMethodTypes: string[];
  description: string | null;
}>;

type CardDecline = Readonly<{ declineCode: string; message: string }>;

const GENERIC_DECLINE: CardDecline = { declineCode: 'generic_decline', message: 'Your card was declined.' };
const INSUFFICIENT_FUNDS: CardDecline = {
  declineCode: 'insufficient_funds',
  message: 'Your card has insufficient funds.',
};

// Stripe's test payment methods that decline (https://docs.stripe.com/testing#declined-payments), and
// the short names our tests use. Every other pm_ succeeds.
const DECLINING_PAYMENT_METHODS: ReadonlyMap<string, CardDecline> = new Map([
  ['pm_card_chargeDeclined', GENERIC_DECLINE],
  ['pm_card_visa_chargeDeclined', GENERIC_DECLINE],
  ['pm_card_insufficientFunds', INSUFFICIENT_FUNDS],
  ['pm_card_chargeDeclinedInsufficientFunds', INSUFFICIENT_FUNDS],
  ['pm_card_visa_chargeDeclinedInsufficientFunds', INSUFFICIENT_FUNDS],
]);

const CURRENCIES = new Set(Intl.supportedValuesOf('currency').map((code) => code.toLowerCase()));

/** A response saved for an idempotency key, or the mark of a request still being processed with it. */
type KeyState =
  | Readonly<{ state: 'in_progress' }>
  | Readonly<{ state: 'done'; endpoint: string; params: unknown; reply: Reply; requestId: string }>;

export function createStripeApi(deps: StripeDependencies): ProviderApi {
  const intents = new Map<string, PaymentIntent>();
  const keys = new Map<string, KeyState>();

  /** Creates (and, with confirm=true, charges) a PaymentIntent; the result is kept for the idempotency key. */
  async function createIntent(request: SandboxRequest, context: HandlerContext): Promise<Reply> {
    const refused = checkApiKey(request);
    if (refused) return refused;
    let params: Record<string, unknown>;
    try {
      params = parseStripeForm(request.body);
    } catch (error) {
      if (error instanceof FormError) return invalidRequest(error.message);
      throw error;
    }
    const key = singleHeader(request.headers['idempotency-key']);
    if (key === null) return createFromParams(params, null, context.directive).reply;

    const endpoint = `${request.method} ${request.url.pathname}`;
    const saved = keys.get(key);
    if (saved?.state === 'in_progress') {
      return stripeError(409, {
        type: 'idempotency_error',
        code: 'idempotency_key_in_use',
        message: 'There is currently another in-progress request using this idempotency key. Please try again later.',
      });
    }
    if (saved) {
      if (saved.endpoint !== endpoint || !isDeepStrictEqual(saved.params, params)) {
        return stripeError(400, {
          type: 'idempotency_error',
          message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
        });
      }
      return {
        ...saved.reply,
        headers: { ...saved.reply.headers, 'Idempotent-Replayed': 'true', 'Original-Request': saved.requestId },
      };
    }

    // The key is held while the request is processed (the configured latency is its processing
    // time): a concurrent request with it gets 409. Only a request that got as far as creating a
    // PaymentIntent saves its result; a refused one (400) frees the key, as Stripe does.
    keys.set(key, { state: 'in_progress' });
    try {
      await context.pause();
      const made = createFromParams(params, key, context.directive);
      // A fault after processing: the PaymentIntent exists (and may be charged), the answer is a
      // 500 — which Stripe saves for the key and replays ("including 500 errors").
      const { reply, created } = context.serverErrorAfterProcessing ? { reply: serverError(), created: true } : made;
      if (created) {
        keys.set(key, { state: 'done', endpoint, params, reply: structuredClone(reply), requestId: context.requestId });
      } else keys.delete(key);
      return reply;
    } catch (error) {
      keys.delete(key);
      throw error;
    }
  }

  function createFromParams(
    params: Record<string, unknown>,
    idempotencyKey: string | null,
    directive: Directive = null,
  ): { reply: Reply; created: boolean } {
    const parsed = readCreateParams(params);
    if ('status' in parsed) return { reply: parsed, created: false };
    if (directive === 'not_found') {
      // Scripted: a parameter names something that does not exist (nothing is created or saved).
      return {
        reply: invalidRequest(`No such PaymentMethod: '${parsed.paymentMethod}'`, {
          code: 'resource_missing',
          param: 'payment_method',
        }),
        created: false,
      };
    }
    const intent = newIntent(parsed);
    intents.set(intent.id, intent);
    if (!parsed.confirm) return { reply: { status: 200, body: intent }, created: true };

    const decline =
      directive === 'decline'
        ? GENERIC_DECLINE
        : directive === 'success'
          ? undefined
          : (DECLINING_PAYMENT_METHODS.get(parsed.paymentMethod!) ??
            (deps.random() < deps.switches().declineRate ? GENERIC_DECLINE : undefined));
    const charge = stripeId('ch');
    intent.latest_charge = charge;
    const entry = {
      provider: 'stripe' as const,
      id: intent.id,
      orderId: parsed.metadata.order_id ?? null,
      amount: intent.amount,
      currency: intent.currency,
      idempotencyKey,
      createdAt: new Date(intent.created * 1000).toISOString(),
      settledAt: new Date().toISOString(),
    };
    if (decline) {
      const error = cardError(decline, charge, parsed.paymentMethod!);
      // A declined confirmation leaves the PaymentIntent waiting for another payment method.
      Object.assign(intent, { status: 'requires_payment_method', payment_method: null, last_payment_error: error });
      deps.ledger.add({ ...entry, status: 'declined', resultCode: decline.declineCode });
      return { reply: stripeError(402, { ...error, payment_intent: intent }), created: true };
    }
    if (directive === 'pending') {
      // Scripted: the payment is still processing (as some payment methods are for a while); it
      // settles on a later retrieve (scripts.ts), and the saved answer stays this one.
      Object.assign(intent, { status: 'processing' });
      deps.ledger.add({ ...entry, status: 'pending', settledAt: null });
      return { reply: { status: 200, body: structuredClone(intent) }, created: true };
    }
    Object.assign(intent, { status: 'succeeded', amount_received: intent.amount });
    deps.ledger.add({ ...entry, status: 'charged' });
    return { reply: { status: 200, body: intent }, created: true };
  }

  /**
   * A processing PaymentIntent settles when it is retrieved: as scripted (success, decline), or
   * succeeded when nothing is scripted; a scripted 'pending' keeps it processing.
   */
  function settleOnRetrieve(intent: PaymentIntent, directive: Directive): void {
    if (intent.status !== 'processing' || directive === 'pending') return;
    if (directive === 'decline') {
      const error = cardError(
        GENERIC_DECLINE,
        intent.latest_charge ?? stripeId('ch'),
        intent.payment_method ?? 'pm_card',
      );
      Object.assign(intent, { status: 'requires_payment_method', payment_method: null, last_payment_error: error });
      deps.ledger.settle(intent.id, 'declined', GENERIC_DECLINE.declineCode);
      return;
    }
    Object.assign(intent, { status: 'succeeded', amount_received: intent.amount });
    deps.ledger.settle(intent.id, 'charged', 'succeeded');
  }

  function retrieveIntent(request: SandboxRequest, context: HandlerContext): Reply {
    const refused = checkApiKey(request);
    if (refused) return refused;
    const id = request.params[0]!;
    const intent = intents.get(id);
    if (intent) settleOnRetrieve(intent, context.directive);
    if (!intent || context.directive === 'not_found') {
      return stripeError(404, {
        type: 'invalid_request_error',
        code: 'resource_missing',
        param: 'intent',
        message: `No such payment_intent: '${id}'`,
        doc_url: 'https://stripe.com/docs/error-codes/resource-missing',
      });
    }
    return { status: 200, body: intent };
  }

  /** Only `metadata['key']:'value'` queries (https://docs.stripe.com/search#query-fields-for-payment-intents). */
  function searchIntents(request: SandboxRequest): Reply {
    const refused = checkApiKey(request);
    if (refused) return refused;
    const query = request.url.searchParams.get('query');
    if (query === null)
      return invalidRequest('Missing required param: query.', { code: 'parameter_missing', param: 'query' });
    const match = /^\s*metadata\[(['"])([^'"]+)\1\]\s*:\s*(['"])([^'"]*)\3\s*$/.exec(query);
    if (!match) {
      return invalidRequest(`This sandbox only supports queries of the form metadata['key']:'value', not: ${query}`, {
        param: 'query',
      });
    }
    const [, , field, , value] = match as unknown as [string, string, string, string, string];
    const limit = Math.min(Math.max(Number(request.url.searchParams.get('limit') ?? 10) || 10, 1), 100);
    const found = [...intents.values()].filter((intent) => intent.metadata[field] === value).reverse();
    return {
      status: 200,
      body: {
        object: 'search_result',
        data: found.slice(0, limit),
        has_more: found.length > limit,
        next_page: null,
        url: '/v1/payment_intents/search',
      },
    };
  }

  return {
    provider: 'stripe',
    prefixes: ['/v1'],
    routes: [
      { method: 'POST', path: /^\/v1\/payment_intents$/, kind: 'charge', handle: createIntent },
      { method: 'GET', path: /^\/v1\/payment_intents\/search$/, kind: 'status', handle: searchIntents },
      { method: 'GET', path: /^\/v1\/payment_intents\/([^/]+)$/, kind: 'status', handle: retrieveIntent },
    ],
    newRequestId: stripeRequestId,
    headers: (requestId) => ({ 'Request-Id': requestId }),
    faultReply: (fault, _requestId, { retryAfterSeconds }) =>
      fault === 'error'
        ? stripeError(500, { type: 'api_error', message: 'An unknown error occurred. Please try again.' })
        : {
            ...stripeError(429, {
              type: 'invalid_request_error',
              code: 'rate_limit',
              message:
                'Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.',
            }),
            headers: { 'Retry-After': String(retryAfterSeconds) },
          },
    notFound: (method, path) =>
      invalidRequest(`Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs.`, {}, 404),
    unauthorized: () => invalidRequest('Invalid API Key provided: sk_test_********************', {}, 401),
    scriptKeysOf: (request) => {
      if (request.method === 'POST') {
        try {
          const form = parseStripeForm(request.body);
          const metadata = form.metadata as Record<string, unknown> | undefined;
          return [metadata?.order_id as string | undefined, form.description as string | undefined];
        } catch {
          return [];
        }
      }
      if (request.url.pathname.endsWith('/search')) {
        return [/'([^']+)'\s*$/.exec(request.url.searchParams.get('query') ?? '')?.[1]];
      }
      const intent = intents.get(request.params[0] ?? '');
      return [intent?.metadata.order_id, intent?.description];
    },
    reset: () => {
      intents.clear();
      keys.clear();
    },
  };
}

function serverError(): Reply {
  return stripeError(500, { type: 'api_error', message: 'An unknown error occurred. Please try again.' });
}

function newIntent(params: CreateParams): PaymentIntent {
  const id = stripeId('pi');
  return {
    id,
    object: 'payment_intent',
    amount: params.amount,
    amount_capturable: 0,
    amount_received: 0,
    capture_method: 'automatic_async',
    client_secret: `${id}_secret_${stripeId('s').slice(2)}`,
    confirmation_method: 'automatic',
    created: Math.floor(Date.now() / 1000),
    currency: params.currency,
    description: params.description,
    last_payment_error: null,
    latest_charge: null,
    livemode: false,
    metadata: params.metadata,
    payment_method: params.paymentMethod,
    payment_method_types: params.paymentMethodTypes,
    status: params.paymentMethod ? 'requires_confirmation' : 'requires_payment_method',
  };
}

function cardError(decline: CardDecline, charge: string, paymentMethod: string): Record<string, unknown> {
  return {
    type: 'card_error',
    code: 'card_declined',
    decline_code: decline.declineCode,
    message: decline.message,
    charge,
    doc_url: 'https://stripe.com/docs/error-codes/card-declined',
    payment_method: { id: paymentMethod, object: 'payment_method', type: 'card' },
  };
}

/** The create parameters, validated as Stripe does, or the 400 that refuses them. */
function readCreateParams(params: Record<string, unknown>): CreateParams | Reply {
  const { amount, currency, confirm, payment_method, metadata, payment_method_types, description } = params;
  if (amount === undefined) return missing('amount');
  if (typeof amount !== 'string' || !/^-?\d+$/.test(amount)) {
    return invalidRequest(`Invalid integer: ${String(amount)}`, { code: 'parameter_invalid_integer', param: 'amount' });
  }
  if (Number(amount) < 1 || !Number.isSafeInteger(Number(amount))) {
    return invalidRequest('This value must be greater than or equal to 1.', {
      code: 'parameter_invalid_integer',
      param: 'amount',
    });
  }
  if (currency === undefined) return missing('currency');
  if (typeof currency !== 'string' || !CURRENCIES.has(currency.toLowerCase())) {
    return invalidRequest(`Invalid currency: ${String(currency)}.`, { param: 'currency' });
  }
  const amountRefused = checkAmount(Number(amount), currency.toLowerCase());
  if (amountRefused) return amountRefused;
  if (confirm !== undefined && confirm !== 'true' && confirm !== 'false') {
    return invalidRequest(`Invalid boolean: ${String(confirm)}`, { param: 'confirm' });
  }
  if (payment_method !== undefined && typeof payment_method !== 'string') {
    return invalidRequest('Invalid string: payment_method', { param: 'payment_method' });
  }
  if (typeof payment_method === 'string' && !payment_method.startsWith('pm_')) {
    return invalidRequest(`No such PaymentMethod: '${payment_method}'`, {
      code: 'resource_missing',
      param: 'payment_method',
    });
  }
  if (confirm === 'true' && payment_method === undefined) {
    return invalidRequest("You cannot confirm this PaymentIntent because it's missing a payment method.", {
      code: 'parameter_missing',
      param: 'payment_method',
    });
  }
  if (metadata !== undefined && !isStringRecord(metadata))
    return invalidRequest('Invalid object', { param: 'metadata' });
  if (payment_method_types !== undefined && !isStringArray(payment_method_types)) {
    return invalidRequest('Invalid array', { param: 'payment_method_types' });
  }
  if (description !== undefined && typeof description !== 'string') {
    return invalidRequest('Invalid string: description', { param: 'description' });
  }
  return {
    amount: Number(amount),
    currency: currency.toLowerCase(),
    paymentMethod: payment_method ?? null,
    confirm: confirm === 'true',
    metadata: (metadata as Record<string, string> | undefined) ?? Object.create(null),
    paymentMethodTypes: (payment_method_types as string[] | undefined) ?? ['card'],
    description: description ?? null,
  };
}

/**
 * Stripe's amount rules per currency (https://docs.stripe.com/currencies): ISK and UGX amounts are
 * "a two-decimal value, where the decimal amount is always 00"; three-decimal amounts need "the
 * least-significant (last) digit to be 0"; at most eight digits ("a value of 99999999 for a USD
 * charge of $999,999.99"), 12 for IDR, 9 for INR, 10 for COP. Written from the docs, apart from the
 * adapter's src/providers/stripe-amounts.ts on purpose: an adapter that converts wrongly is refused
 * here as Stripe would refuse it. (A zero-decimal amount cannot be checked: MGA 150000 is a valid
 * 150000 ariary, whether or not the order meant 1500.00.)
 */
const HUNDREDTHS_OF_WHOLE_UNITS = new Set(['isk', 'ugx']);
const THREE_DECIMAL = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);
const MAX_DIGITS: Readonly<Record<string, number>> = { idr: 12, inr: 9, cop: 10 };

function checkAmount(amount: number, currency: string): Reply | null {
  const max = 10 ** (MAX_DIGITS[currency] ?? 8) - 1;
  if (amount > max) {
    return invalidRequest(`Amount must be no more than ${max} ${currency} (in its smallest unit).`, {
      code: 'amount_too_large',
      param: 'amount',
    });
  }
  const step = HUNDREDTHS_OF_WHOLE_UNITS.has(currency) ? 100 : THREE_DECIMAL.has(currency) ? 10 : 1;
  if (amount % step !== 0) {
    return invalidRequest(`Invalid amount for ${currency}: ${amount} must be a multiple of ${step}.`, {
      code: 'invalid_charge_amount',
      param: 'amount',
    });
  }
  return null;
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((item) => typeof item === 'string')
  );
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** Any non-empty key starting with sk_ is accepted. */
function checkApiKey(request: SandboxRequest): Reply | null {
  const key = authorization(request.headers, 'Bearer');
  if (key === null) {
    return invalidRequest(
      "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
      {},
      401,
    );
  }
  if (!key.startsWith('sk_')) {
    return invalidRequest(`Invalid API Key provided: ${key.slice(0, 8)}****${key.slice(-4)}`, {}, 401);
  }
  return null;
}

function singleHeader(value: string | string[] | undefined): string | null {
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text === '' ? null : text;
}

function missing(param: string): Reply {
  return invalidRequest(`Missing required param: ${param}.`, { code: 'parameter_missing', param });
}

function invalidRequest(message: string, fields: Record<string, unknown> = {}, status = 400): Reply {
  return stripeError(status, { type: 'invalid_request_error', message, ...fields });
}

function stripeError(status: number, error: Record<string, unknown>): Reply {
  return { status, body: { error } };
}
