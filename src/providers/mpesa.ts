import { type Dispatcher, request } from 'undici';
import { z } from 'zod';
import type { ProviderCallback } from '../domain/callback-evidence.ts';
import type {
  ChargeRequest,
  PaymentProvider,
  ProviderAnswer,
  ProviderCalls,
  ProviderOutcome,
} from '../domain/provider.ts';
import { retryAfterMs } from '../lib/retry-after.ts';
import { toAnswer } from './answer.ts';
import { mpesaAmountOrThrow } from './mpesa-amounts.ts';
import { createProviderHttp, type GatedCall } from './provider-http.ts';

export type MpesaAdapterConfig = Readonly<{
  apiUrl: string;
  consumerKey: string;
  consumerSecret: string;
  shortcode: string;
  passkey: string;
  timeoutMs: number;
}>;

/** Daraja's "still processing" answer to an STK query (the customer has not answered yet). */
const STILL_PROCESSING = '500.001.1001';
/** Renew the cached token this long before Daraja says it expires. */
const TOKEN_EARLY_RENEWAL_MS = 60_000;

export type HttpAnswer = Readonly<{
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
}>;

/**
 * M-Pesa Daraja STK push (Lipa na M-Pesa Online): an OAuth token (client credentials, cached until
 * it expires), the push, Safaricom's asynchronous callback to our URL, and the STK query when the
 * callback is late. Daraja has no idempotency key, so a push whose answer was lost is never sent
 * again: the order waits for the callback (its URL names the order) or for a query that proves
 * the push failed.
 */
export function createMpesaAdapter(config: MpesaAdapterConfig): PaymentProvider {
  let cachedToken: { value: string; expiresAt: number } | null = null;
  // Every request takes its gate slot once built, on a warm connection (provider-http.ts).
  const http = createProviderHttp({ origin: new URL(config.apiUrl).origin, timeoutMs: config.timeoutMs });

  /** Token first (a provider call of its own, through the gate), then the call. */
  async function withToken(
    calls: ProviderCalls,
    call: (token: string) => Promise<ProviderAnswer>,
  ): Promise<ProviderAnswer> {
    if (!cachedToken || cachedToken.expiresAt <= Date.now()) {
      const call = http.call(calls, 'token');
      let answer: HttpAnswer;
      try {
        answer = await send(call, config, 'GET', '/oauth/v1/generate?grant_type=client_credentials', {
          authorization: `Basic ${Buffer.from(`${config.consumerKey}:${config.consumerSecret}`).toString('base64')}`,
        });
      } catch (error) {
        // No token, no push: nothing can have been charged.
        return toAnswer(
          await call.ticket(),
          call.startedAt(),
          { kind: 'retry', charged: 'no', reason: `token: ${networkReason(error)}` },
          null,
          networkReason(error),
        );
      }
      const ticket = await call.ticket();
      const started = call.startedAt();
      const token = answer.body.access_token;
      if (answer.status !== 200 || typeof token !== 'string') {
        return toAnswer(
          ticket,
          started,
          { kind: 'retry', charged: 'no', reason: `token: HTTP ${answer.status}` },
          answer.status,
          describe(answer),
        );
      }
      const ttlSeconds = Number(answer.body.expires_in ?? 3599);
      cachedToken = { value: token, expiresAt: Date.now() + ttlSeconds * 1000 - TOKEN_EARLY_RENEWAL_MS };
      await calls.finish(ticket, {
        outcome: 'succeeded',
        httpStatus: 200,
        latencyMs: performance.now() - started,
        error: null,
      });
    }
    return call(cachedToken.value);
  }

  return {
    name: 'mpesa',
    usesCallback: true,
    // Every STK push is a charge of its own (Daraja has no idempotency key).
    traits: { idempotent: false },

    async charge(charge, calls) {
      // Built before anything is sent: an order that cannot be pushed (stored before a rule that
      // now refuses it) is declined without a push — nothing can have been charged by it.
      let fields: Record<string, unknown>;
      try {
        fields = pushFields(charge, config);
      } catch (error) {
        const message = `not sent: ${(error as Error).message}`;
        const ticket = await http.call(calls, 'charge').ticket();
        return toAnswer(
          ticket,
          performance.now(),
          { kind: 'declined', code: 'request_not_sendable', message },
          null,
          message,
        );
      }
      return withToken(calls, (token) =>
        stkCall(calls, 'charge', '/mpesa/stkpush/v1/processrequest', token, fields, fromPush, fromNetworkError),
      );
    },

    async status(charge, calls) {
      // Without the CheckoutRequestID there is nothing to ask: wait for the callback.
      const checkoutRequestId = charge.providerReference;
      if (!checkoutRequestId) return null;
      return withToken(calls, (token) =>
        stkCall(
          calls,
          'status',
          '/mpesa/stkpushquery/v1/query',
          token,
          { CheckoutRequestID: checkoutRequestId },
          (answer) => fromQuery(answer, checkoutRequestId),
          (error) => ({ kind: 'retry', charged: 'unknown', reason: networkReason(error) }),
        ),
      );
    },
  };

  /** One STK call (push or query): a gate start, the signed request, its answer as an outcome. */
  async function stkCall(
    calls: ProviderCalls,
    kind: 'charge' | 'status',
    path: string,
    token: string,
    fields: Record<string, unknown>,
    interpret: (answer: HttpAnswer) => ProviderOutcome,
    onNetworkError: (error: unknown) => ProviderOutcome,
  ): Promise<ProviderAnswer> {
    const call = http.call(calls, kind);
    // Signed when its grant comes (the Timestamp is the moment of the request, not of the queue).
    const signedBody = () => {
      const timestamp = darajaTimestamp(new Date());
      return {
        BusinessShortCode: config.shortcode,
        Password: password(config, timestamp),
        Timestamp: timestamp,
        ...fields,
      };
    };
    let answer: HttpAnswer;
    try {
      answer = await send(call, config, 'POST', path, { authorization: `Bearer ${token}` }, signedBody);
    } catch (error) {
      return toAnswer(await call.ticket(), call.startedAt(), onNetworkError(error), null, networkReason(error));
    }
    if (answer.status === 401) cachedToken = null;
    return toAnswer(
      await call.ticket(),
      call.startedAt(),
      interpret(answer),
      answer.status,
      answer.status === 200 ? null : describe(answer),
    );
  }
}

/** The STK push request's fields for an order (Daraja's M-Pesa Express "processrequest"). */
function pushFields(charge: ChargeRequest, config: MpesaAdapterConfig): Record<string, unknown> {
  if (charge.paymentMethod?.type !== 'mpesa') throw new Error(`order ${charge.orderId} has no M-Pesa phone`);
  if (!charge.callbackUrl) throw new Error('M-Pesa needs a callback URL');
  return {
    TransactionType: 'CustomerPayBillOnline',
    // Daraja charges whole shillings (mpesa-amounts.ts); create refuses anything else.
    Amount: mpesaAmountOrThrow(charge.currency, charge.amount),
    PartyA: charge.paymentMethod.phone,
    PartyB: config.shortcode,
    PhoneNumber: charge.paymentMethod.phone,
    CallBackURL: charge.callbackUrl,
    // At most 12 characters: the random end of the order id.
    AccountReference: charge.orderId.slice(-12),
    TransactionDesc: 'Payment',
  };
}

/**
 * The STK callback Safaricom posts to our CallBackURL (Daraja's M-Pesa Express result), validated:
 * Body.stkCallback with CheckoutRequestID and ResultCode; on success CallbackMetadata.Item, a list of
 * { Name, Value } (Amount in whole shillings, MpesaReceiptNumber, TransactionDate, PhoneNumber; an
 * item may come without a Value, e.g. Balance). Unknown fields are tolerated, as Daraja adds some.
 */
export const stkCallbackBody = z.object({
  Body: z.object({
    stkCallback: z.object({
      MerchantRequestID: z.string().max(255).optional(),
      CheckoutRequestID: z.string().min(1).max(255),
      ResultCode: z.union([z.number().int(), z.string().regex(/^-?\d{1,10}$/)]),
      ResultDesc: z.string().max(1000).optional(),
      CallbackMetadata: z
        .object({
          Item: z
            .array(
              z.object({ Name: z.string().max(100), Value: z.union([z.string().max(255), z.number()]).optional() }),
            )
            .max(50),
        })
        .optional(),
    }),
  }),
});

/** A callback as evidence for the order its URL names (see callback-evidence.ts); null if malformed. */
export function parseStkCallback(body: unknown): ProviderCallback | null {
  const parsed = stkCallbackBody.safeParse(body);
  if (!parsed.success) return null;
  const callback = parsed.data.Body.stkCallback;
  const items = callback.CallbackMetadata?.Item ?? [];
  const value = (name: string) => items.find((item) => item.Name === name)?.Value;
  const receipt = value('MpesaReceiptNumber');
  const phone = value('PhoneNumber');
  const resultCode = String(callback.ResultCode);
  const outcome = fromResultCode(resultCode, callback.ResultDesc ?? '', callback.CheckoutRequestID);
  return {
    provider: 'mpesa',
    externalId: callback.CheckoutRequestID,
    resultCode,
    outcome: outcome.kind === 'succeeded' ? 'succeeded' : outcome.kind === 'declined' ? 'declined' : 'pending',
    amount: shillingsToMinorUnits(value('Amount')),
    phone: phone === undefined ? null : String(phone),
    receipt: typeof receipt === 'string' && receipt !== '' ? receipt : null,
    declineCode: outcome.kind === 'declined' ? outcome.code : null,
    declineMessage: outcome.kind === 'declined' ? outcome.message : null,
  };
}

/**
 * Daraja's Amount (shillings, a number such as 101 or 101.00) in KES minor units, exactly (decimal
 * digits, not floating point), or null if it is not an amount.
 */
function shillingsToMinorUnits(value: string | number | undefined): number | null {
  if (value === undefined) return null;
  const match = /^(\d{1,13})(?:\.(\d{1,2}))?$/.exec(String(value));
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
}

/**
 * ResultCode of an STK transaction: 0 is paid; the known final failures are declines; anything
 * else (e.g. 4999, "still under processing") is not an answer yet — never a reason to fail an
 * order the customer may still pay.
 */
const FINAL_FAILURES: Readonly<Record<string, string>> = {
  '1': 'insufficient_funds',
  '1001': 'subscriber_busy',
  '1019': 'transaction_expired',
  '1025': 'push_failed',
  '1032': 'cancelled_by_customer',
  '1037': 'customer_unreachable',
  '2001': 'invalid_pin',
  '9999': 'push_failed',
};

function fromResultCode(code: string, description: string, reference: string): ProviderOutcome {
  if (code === '0') return { kind: 'succeeded', reference };
  const name = FINAL_FAILURES[code];
  if (!name) return { kind: 'pending', reference };
  return { kind: 'declined', code: name, message: description || `M-Pesa result ${code}`, reference };
}

/**
 * Daraja's errorCodes that refuse a request before M-Pesa acts on it: "system is busy" / spike
 * arrest, quota violation, and "unable to lock subscriber" (a transaction is already in process for
 * the phone). Any other 5xx (500.003.1001 "internal server error", a proxy's 502/503/504) may have
 * been acted on: the push is not sent again.
 */
const REFUSING_ERROR_CODES: ReadonlySet<string> = new Set(['500.003.02', '500.003.03', '500.001.1001']);

/** Statuses that refuse a push before Daraja acts on it (credentials, route, method, limits). */
const REFUSING_STATUSES: ReadonlySet<number> = new Set([401, 403, 404, 405, 413, 415, 429]);

export function fromPush(answer: HttpAnswer): ProviderOutcome {
  const { status, body } = answer;
  const responseCode = body.ResponseCode === undefined ? undefined : String(body.ResponseCode);
  if (status === 200 && responseCode === '0') {
    // Accepted. Without its CheckoutRequestID we cannot ask about it: as unknown as a lost answer.
    return typeof body.CheckoutRequestID === 'string' && body.CheckoutRequestID !== ''
      ? { kind: 'pending', reference: body.CheckoutRequestID }
      : { kind: 'retry', charged: 'unknown', reason: 'push accepted without a CheckoutRequestID' };
  }
  if (status === 200 && responseCode !== undefined) {
    // Daraja's own "no" to the request (a push it did not start).
    return {
      kind: 'declined',
      code: `mpesa_response_${responseCode}`,
      message: String(body.ResponseDescription ?? 'rejected'),
    };
  }
  if (status === 200) return { kind: 'retry', charged: 'unknown', reason: 'HTTP 200 without a ResponseCode' };
  if (REFUSING_STATUSES.has(status)) {
    return {
      kind: 'retry',
      charged: 'no',
      reason: `HTTP ${status} ${String(body.errorCode ?? '')}`.trim(),
      retryAfterMs: status === 429 ? retryAfterMs(header(answer, 'retry-after')) : undefined,
    };
  }
  if (status === 400) {
    // The request itself is invalid (a field, a shortcode): it was never acted on.
    return { kind: 'declined', code: 'mpesa_request_invalid', message: String(body.errorMessage ?? 'HTTP 400') };
  }
  const refused = status >= 500 && typeof body.errorCode === 'string' && REFUSING_ERROR_CODES.has(body.errorCode);
  return {
    kind: 'retry',
    charged: refused ? 'no' : 'unknown',
    reason: `HTTP ${status} ${String(body.errorCode ?? '')}`.trim(),
  };
}

export function fromQuery(answer: HttpAnswer, checkoutRequestId: string): ProviderOutcome {
  const { status, body } = answer;
  if (status === 200 && body.ResultCode !== undefined) {
    return fromResultCode(String(body.ResultCode), String(body.ResultDesc ?? ''), checkoutRequestId);
  }
  if (body.errorCode === STILL_PROCESSING) return { kind: 'pending', reference: checkoutRequestId };
  if (status === 400 && /CheckoutRequestID/i.test(String(body.errorMessage ?? ''))) return { kind: 'not_found' };
  if (status === 429)
    return {
      kind: 'retry',
      charged: 'unknown',
      reason: 'HTTP 429',
      retryAfterMs: retryAfterMs(header(answer, 'retry-after')),
    };
  return { kind: 'retry', charged: 'unknown', reason: `query HTTP ${status} ${String(body.errorCode ?? '')}`.trim() };
}

function fromNetworkError(error: unknown): ProviderOutcome {
  const code = (error as { code?: string })?.code;
  // No connection was made, so no request was sent.
  const neverSent = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'].includes(code ?? '');
  return { kind: 'retry', charged: neverSent ? 'no' : 'unknown', reason: networkReason(error) };
}

/** The call's one request; `body` is built when the gate grants it (and again if it must ask again). */
async function send(
  call: GatedCall,
  config: MpesaAdapterConfig,
  method: 'GET' | 'POST',
  path: string,
  headers: Record<string, string>,
  body?: () => unknown,
): Promise<HttpAnswer> {
  const response = await call.send((dispatcher: Dispatcher) =>
    request(new URL(path, config.apiUrl), {
      dispatcher,
      method,
      headers: {
        ...headers,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        accept: 'application/json',
      },
      body: body === undefined ? undefined : JSON.stringify(body()),
      signal: AbortSignal.timeout(config.timeoutMs),
    }),
  );
  const text = await response.body.text();
  let parsed: Record<string, unknown> = {};
  try {
    const value = JSON.parse(text) as unknown;
    if (value && typeof value === 'object') parsed = value as Record<string, unknown>;
  } catch {
    parsed = { errorMessage: text.slice(0, 200) };
  }
  return { status: response.statusCode, body: parsed, headers: response.headers };
}

function header(answer: HttpAnswer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function describe(answer: HttpAnswer): string {
  const { body } = answer;
  return `HTTP ${answer.status}: ${String(body.errorCode ?? body.ResponseCode ?? '')} ${String(body.errorMessage ?? body.ResponseDescription ?? '')}`.trim();
}

function networkReason(error: unknown): string {
  const e = error as { name?: string; code?: string; message?: string };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timeout';
  return e?.code ?? e?.message ?? String(error);
}

/** YYYYMMDDHHmmss in East Africa Time (UTC+3), as Daraja expects. */
export function darajaTimestamp(now: Date): string {
  const eat = new Date(now.getTime() + 3 * 3_600_000);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${eat.getUTCFullYear()}${pad(eat.getUTCMonth() + 1)}${pad(eat.getUTCDate())}${pad(eat.getUTCHours())}${pad(eat.getUTCMinutes())}${pad(eat.getUTCSeconds())}`;
}

function password(config: MpesaAdapterConfig, timestamp: string): string {
  return Buffer.from(`${config.shortcode}${config.passkey}${timestamp}`).toString('base64');
}
