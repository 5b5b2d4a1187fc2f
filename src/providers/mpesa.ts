import { request } from 'undici';
import type { PaymentProvider, ProviderAnswer, ProviderCalls, ProviderOutcome } from '../domain/provider.ts';
import { toAnswer } from './answer.ts';
import { retryAfterMs } from './stripe.ts';

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

type HttpAnswer = Readonly<{
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

  /** Token first (a provider call of its own, through the gate), then the call. */
  async function withToken(
    calls: ProviderCalls,
    call: (token: string) => Promise<ProviderAnswer>,
  ): Promise<ProviderAnswer> {
    if (!cachedToken || cachedToken.expiresAt <= Date.now()) {
      const ticket = await calls.start('token');
      const started = performance.now();
      let answer: HttpAnswer;
      try {
        answer = await send(config, 'GET', '/oauth/v1/generate?grant_type=client_credentials', {
          authorization: `Basic ${Buffer.from(`${config.consumerKey}:${config.consumerSecret}`).toString('base64')}`,
        });
      } catch (error) {
        // No token, no push: nothing can have been charged.
        return toAnswer(
          ticket,
          started,
          { kind: 'retry', charged: 'no', reason: `token: ${networkReason(error)}` },
          null,
          networkReason(error),
        );
      }
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

    charge: (charge, calls) =>
      withToken(calls, (token) => {
        if (charge.paymentMethod?.type !== 'mpesa') throw new Error(`order ${charge.orderId} has no M-Pesa phone`);
        if (!charge.callbackUrl) throw new Error('M-Pesa needs a callback URL');
        const fields = {
          TransactionType: 'CustomerPayBillOnline',
          // Daraja charges whole shillings; create-time validation guarantees amount % 100 === 0.
          Amount: charge.amount / 100,
          PartyA: charge.paymentMethod.phone,
          PartyB: config.shortcode,
          PhoneNumber: charge.paymentMethod.phone,
          CallBackURL: charge.callbackUrl,
          // At most 12 characters: the random end of the order id.
          AccountReference: charge.orderId.slice(-12),
          TransactionDesc: 'Payment',
        };
        return stkCall(calls, 'charge', '/mpesa/stkpush/v1/processrequest', token, fields, fromPush, fromNetworkError);
      }),

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
    const ticket = await calls.start(kind);
    const started = performance.now();
    const timestamp = darajaTimestamp(new Date());
    const body = {
      BusinessShortCode: config.shortcode,
      Password: password(config, timestamp),
      Timestamp: timestamp,
      ...fields,
    };
    let answer: HttpAnswer;
    try {
      answer = await send(config, 'POST', path, { authorization: `Bearer ${token}` }, body);
    } catch (error) {
      return toAnswer(ticket, started, onNetworkError(error), null, networkReason(error));
    }
    if (answer.status === 401) cachedToken = null;
    return toAnswer(ticket, started, interpret(answer), answer.status, answer.status === 200 ? null : describe(answer));
  }
}

/** The STK callback Safaricom posts to our CallBackURL, as an outcome. */
export function parseStkCallback(body: unknown): { checkoutRequestId: string; outcome: ProviderOutcome } | null {
  const callback = (body as { Body?: { stkCallback?: Record<string, unknown> } })?.Body?.stkCallback;
  if (!callback || typeof callback.CheckoutRequestID !== 'string') return null;
  const resultCode = String(callback.ResultCode ?? '');
  if (resultCode === '') return null;
  const items =
    (callback.CallbackMetadata as { Item?: Array<{ Name?: string; Value?: unknown }> } | undefined)?.Item ?? [];
  const receipt = items.find((item) => item.Name === 'MpesaReceiptNumber')?.Value;
  return {
    checkoutRequestId: callback.CheckoutRequestID,
    outcome: fromResultCode(
      resultCode,
      String(callback.ResultDesc ?? ''),
      typeof receipt === 'string' ? receipt : callback.CheckoutRequestID,
    ),
  };
}

/** ResultCode of a finished STK transaction: 0 is paid, anything else is a decline. */
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

function fromPush(answer: HttpAnswer): ProviderOutcome {
  const { status, body } = answer;
  if (status === 200 && body.ResponseCode === '0' && typeof body.CheckoutRequestID === 'string') {
    return { kind: 'pending', reference: body.CheckoutRequestID };
  }
  if (status === 200) {
    return {
      kind: 'declined',
      code: `mpesa_response_${String(body.ResponseCode)}`,
      message: String(body.ResponseDescription ?? 'rejected'),
    };
  }
  if (status === 429)
    return {
      kind: 'retry',
      charged: 'no',
      reason: 'HTTP 429',
      retryAfterMs: retryAfterMs(header(answer, 'retry-after')),
    };
  // A 401 (token) is refused before anything happens. A 5xx carrying Daraja's own errorCode is
  // Daraja refusing the request; a 5xx without one (a proxy's 502/503/504) may have been passed
  // on and pushed: unknown, so the push is not sent again.
  if (status === 401) return { kind: 'retry', charged: 'no', reason: 'HTTP 401' };
  if (status >= 500) {
    const darajaError = typeof body.errorCode === 'string' && /^\d{3}\.\d{3}\.\d+$/.test(body.errorCode);
    return {
      kind: 'retry',
      charged: darajaError ? 'no' : 'unknown',
      reason: `HTTP ${status} ${String(body.errorCode ?? '')}`.trim(),
    };
  }
  return { kind: 'declined', code: 'mpesa_request_invalid', message: String(body.errorMessage ?? `HTTP ${status}`) };
}

function fromQuery(answer: HttpAnswer, checkoutRequestId: string): ProviderOutcome {
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

async function send(
  config: MpesaAdapterConfig,
  method: 'GET' | 'POST',
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<HttpAnswer> {
  const response = await request(new URL(path, config.apiUrl), {
    method,
    headers: {
      ...headers,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      accept: 'application/json',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(config.timeoutMs),
  });
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
