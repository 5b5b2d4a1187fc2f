import { authorization, type HandlerContext, type ProviderApi, type Reply, type SandboxRequest } from './http.ts';
import { checkoutRequestId, darajaRequestId, darajaTimestamp, mpesaReceiptNumber, randomString } from './ids.ts';
import type { Ledger } from './ledger.ts';
import type { Scheduler } from './scheduler.ts';
import type { Switches } from './switches.ts';

/**
 * The subset of Safaricom's M-Pesa Daraja API that our adapter uses: OAuth tokens, STK push (Lipa
 * na M-Pesa Online), the asynchronous STK callback, and the STK push query.
 * https://developer.safaricom.co.ke/APIs/MpesaExpressSimulate
 */

export type MpesaDependencies = Readonly<{
  ledger: Ledger;
  switches: () => Readonly<Switches>;
  random: () => number;
  scheduler: Scheduler;
  log: (line: object) => void;
}>;

type StkResult = Readonly<{ code: number; description: string }>;

const SUCCESS: StkResult = { code: 0, description: 'The service request is processed successfully.' };
const INSUFFICIENT_BALANCE: StkResult = { code: 1, description: 'The balance is insufficient for the transaction' };

const CANCELLED: StkResult = { code: 1032, description: 'Request cancelled by user' };

// The outcome of a push is chosen by the phone number's last digits, so tests can ask for each one.
const RESULTS_BY_PHONE_SUFFIX: ReadonlyArray<readonly [string, StkResult]> = [
  ['1032', CANCELLED],
  ['0001', INSUFFICIENT_BALANCE],
  ['1037', { code: 1037, description: 'DS timeout user cannot be reached' }],
];

/** Daraja makes one delivery attempt; we give the receiver 5 s to answer. */
const CALLBACK_TIMEOUT_MS = 5000;

type StkPush = {
  /** Scripted 'pending': the customer has not answered; it settles when a query settles it. */
  held: boolean;
  merchantRequestId: string;
  checkoutRequestId: string;
  amount: number;
  phone: string;
  /** AccountReference: the order id's last 12 characters. */
  reference: string;
  callbackUrl: string;
  result: StkResult;
  settled: boolean;
  receipt: string | null;
  transactionDate: string | null;
};

type PushParams = Readonly<{ amount: number; phone: string; callbackUrl: string; reference: string }>;

export function createMpesaApi(deps: MpesaDependencies): ProviderApi {
  /** Access token → when it expires (ms since the epoch). Tokens survive reset(). */
  const tokens = new Map<string, number>();
  const pushes = new Map<string, StkPush>();

  function generateToken(request: SandboxRequest, { requestId }: HandlerContext): Reply {
    if (request.url.searchParams.get('grant_type') !== 'client_credentials') {
      return darajaError(400, requestId, '400.008.02', 'Invalid grant type passed');
    }
    if (!validBasicCredentials(request))
      return darajaError(400, requestId, '400.008.01', 'Invalid Authentication passed');
    const now = Date.now();
    for (const [token, expiresAt] of tokens) if (expiresAt <= now) tokens.delete(token);
    const ttlSeconds = deps.switches().mpesaTokenTtlSeconds;
    const token = randomString(28);
    tokens.set(token, now + ttlSeconds * 1000);
    return { status: 200, body: { access_token: token, expires_in: String(ttlSeconds) } };
  }

  function checkToken(request: SandboxRequest, requestId: string): Reply | null {
    const token = authorization(request.headers, 'Bearer');
    const expiresAt = token === null ? undefined : tokens.get(token);
    if (expiresAt !== undefined && expiresAt > Date.now()) return null;
    return darajaError(401, requestId, '404.001.03', 'Invalid Access Token');
  }

  function stkPush(request: SandboxRequest, { requestId, directive }: HandlerContext): Reply {
    const refused = checkToken(request, requestId);
    if (refused) return refused;
    const body = parseJsonObject(request.body);
    if (!body) return badRequest(requestId, 'Bad Request - Invalid JSON');
    const switches = deps.switches();
    const params = readPushParams(body, switches.mpesaPasskey);
    if (typeof params === 'string') return badRequest(requestId, `Bad Request - Invalid ${params}`);
    // Scripted: Daraja refuses the request (no push is made).
    if (directive === 'not_found') return badRequest(requestId, 'Bad Request - Invalid PhoneNumber');

    const push: StkPush = {
      held: directive === 'pending',
      merchantRequestId: darajaRequestId(),
      checkoutRequestId: uniqueCheckoutRequestId(),
      amount: params.amount,
      phone: params.phone,
      reference: params.reference,
      callbackUrl: params.callbackUrl,
      result:
        directive === 'success'
          ? SUCCESS
          : directive === 'decline'
            ? CANCELLED
            : resultFor(params.phone, deps.random() < switches.declineRate),
      settled: false,
      receipt: null,
      transactionDate: null,
    };
    pushes.set(push.checkoutRequestId, push);
    deps.ledger.add({
      provider: 'mpesa',
      id: push.checkoutRequestId,
      orderId: params.reference,
      amount: params.amount,
      currency: 'KES',
      status: 'pending',
      idempotencyKey: null,
      createdAt: new Date().toISOString(),
      settledAt: null,
      callbacks: [],
    });
    if (!push.held) scheduleOutcome(push, switches);
    const accepted = 'Success. Request accepted for processing';
    return {
      status: 200,
      body: {
        MerchantRequestID: push.merchantRequestId,
        CheckoutRequestID: push.checkoutRequestId,
        ResponseCode: '0',
        ResponseDescription: accepted,
        CustomerMessage: accepted,
      },
    };
  }

  function uniqueCheckoutRequestId(): string {
    for (;;) {
      const id = checkoutRequestId();
      if (!pushes.has(id)) return id;
    }
  }

  /**
   * The customer answers after `mpesaCallbackDelayMs`: the outcome settles then, whatever happens
   * to the callback, which goes out according to `mpesaCallback`.
   */
  function scheduleOutcome(push: StkPush, switches: Readonly<Switches>): void {
    const mode = switches.mpesaCallback;
    const delayMs = switches.mpesaCallbackDelayMs;
    deps.scheduler.after(delayMs, async (signal) => {
      settle(push);
      if (mode === 'normal' || mode === 'duplicate') await deliverCallback(push, signal);
      if (mode === 'duplicate' && !signal.aborted) await deliverCallback(push, signal);
    });
    if (mode === 'late') {
      // Timers of equal delay fire in the order they were set, so the settlement still comes first.
      deps.scheduler.after(Math.max(switches.mpesaLateCallbackDelayMs, delayMs), (signal) =>
        deliverCallback(push, signal),
      );
    }
  }

  function settle(push: StkPush): void {
    push.settled = true;
    push.transactionDate = darajaTimestamp();
    if (push.result.code === 0) push.receipt = mpesaReceiptNumber();
    const status = push.result.code === 0 ? 'charged' : 'declined';
    deps.ledger.settle(push.checkoutRequestId, status, String(push.result.code));
    deps.log({ msg: 'mpesa push settled', checkoutRequestId: push.checkoutRequestId, resultCode: push.result.code });
  }

  /** One attempt, as Daraja makes: the outcome is recorded in the ledger and logged, never retried. */
  async function deliverCallback(push: StkPush, cancelled: AbortSignal): Promise<void> {
    const at = new Date().toISOString();
    const line = { checkoutRequestId: push.checkoutRequestId, url: push.callbackUrl };
    try {
      const response = await fetch(push.callbackUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(callbackBody(push)),
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(CALLBACK_TIMEOUT_MS), cancelled]),
      });
      await response.arrayBuffer().catch(() => undefined);
      deps.ledger.recordCallback(push.checkoutRequestId, { at, status: response.status, error: null });
      deps.log({ msg: 'mpesa callback delivered', ...line, status: response.status });
    } catch (error) {
      deps.ledger.recordCallback(push.checkoutRequestId, { at, status: null, error: describeError(error) });
      deps.log({ msg: 'mpesa callback failed', ...line, error: describeError(error) });
    }
  }

  function stkQuery(request: SandboxRequest, { requestId, directive }: HandlerContext): Reply {
    const refused = checkToken(request, requestId);
    if (refused) return refused;
    const body = parseJsonObject(request.body);
    if (!body) return badRequest(requestId, 'Bad Request - Invalid JSON');
    const invalid = invalidCredentialsField(body, deps.switches().mpesaPasskey);
    if (invalid) return badRequest(requestId, `Bad Request - Invalid ${invalid}`);
    const push = typeof body.CheckoutRequestID === 'string' ? pushes.get(body.CheckoutRequestID) : undefined;
    if (!push) return badRequest(requestId, 'Bad Request - Invalid CheckoutRequestID');
    if (push.held && directive !== 'pending') {
      // A held push settles now: as scripted, or paid when nothing is; its callback follows.
      push.held = false;
      if (directive === 'decline') push.result = CANCELLED;
      else push.result = SUCCESS;
      settle(push);
      const mode = deps.switches().mpesaCallback;
      if (mode === 'normal' || mode === 'duplicate') deps.scheduler.after(0, (signal) => deliverCallback(push, signal));
    }
    if (!push.settled) return darajaError(500, requestId, '500.001.1001', 'The transaction is being processed');
    return {
      status: 200,
      body: {
        ResponseCode: '0',
        // Daraja's spelling.
        ResponseDescription: 'The service request has been accepted successsfully',
        MerchantRequestID: push.merchantRequestId,
        CheckoutRequestID: push.checkoutRequestId,
        ResultCode: String(push.result.code),
        ResultDesc: push.result.description,
      },
    };
  }

  return {
    provider: 'mpesa',
    prefixes: ['/oauth', '/mpesa'],
    routes: [
      { method: 'GET', path: /^\/oauth\/v1\/generate$/, kind: 'token', handle: generateToken },
      { method: 'POST', path: /^\/mpesa\/stkpush\/v1\/processrequest$/, kind: 'charge', handle: stkPush },
      { method: 'POST', path: /^\/mpesa\/stkpushquery\/v1\/query$/, kind: 'query', handle: stkQuery },
    ],
    newRequestId: darajaRequestId,
    headers: () => ({}),
    faultReply: (fault, requestId, { retryAfterSeconds, mpesaErrorCode }) =>
      fault === 'error'
        ? darajaError(
            500,
            requestId,
            mpesaErrorCode,
            mpesaErrorCode === '500.003.1001' ? 'Internal Server Error' : 'System is busy',
          )
        : {
            ...darajaError(429, requestId, '500.003.03', 'Error Occured: Spike Arrest Violation'),
            headers: { 'Retry-After': String(retryAfterSeconds) },
          },
    notFound: (_method, _path, requestId) => darajaError(404, requestId, '404.001.01', 'Resource not found'),
    unauthorized: (requestId) => darajaError(401, requestId, '404.001.03', 'Invalid Access Token'),
    scriptKeysOf: (request) => {
      const body = parseJsonObject(request.body);
      if (body?.AccountReference !== undefined) return [String(body.PhoneNumber ?? ''), String(body.AccountReference)];
      const push = typeof body?.CheckoutRequestID === 'string' ? pushes.get(body.CheckoutRequestID) : undefined;
      return [push?.phone, push?.reference];
    },
    reset: () => pushes.clear(),
  };
}

function resultFor(phone: string, declined: boolean): StkResult {
  const bySuffix = RESULTS_BY_PHONE_SUFFIX.find(([suffix]) => phone.endsWith(suffix));
  if (bySuffix) return bySuffix[1];
  return declined ? INSUFFICIENT_BALANCE : SUCCESS;
}

/** The body Daraja POSTs to CallBackURL; CallbackMetadata only on success. */
function callbackBody(push: StkPush): object {
  const metadata =
    push.result.code === 0
      ? {
          CallbackMetadata: {
            Item: [
              { Name: 'Amount', Value: push.amount },
              { Name: 'MpesaReceiptNumber', Value: push.receipt },
              { Name: 'TransactionDate', Value: Number(push.transactionDate) },
              { Name: 'PhoneNumber', Value: Number(push.phone) },
            ],
          },
        }
      : {};
  return {
    Body: {
      stkCallback: {
        MerchantRequestID: push.merchantRequestId,
        CheckoutRequestID: push.checkoutRequestId,
        ResultCode: push.result.code,
        ResultDesc: push.result.description,
        ...metadata,
      },
    },
  };
}

/** The STK push body, or the name of its first invalid field. */
function readPushParams(body: Record<string, unknown>, passkey: string): PushParams | string {
  const invalid = invalidCredentialsField(body, passkey);
  if (invalid) return invalid;
  if (body.TransactionType !== 'CustomerPayBillOnline' && body.TransactionType !== 'CustomerBuyGoodsOnline') {
    return 'TransactionType';
  }
  const amount = wholeNumber(body.Amount);
  if (amount === null || amount < 1) return 'Amount';
  if (!isPhone(body.PartyA)) return 'PartyA';
  if (!isShortCode(body.PartyB)) return 'PartyB';
  if (!isPhone(body.PhoneNumber)) return 'PhoneNumber';
  if (!isHttpUrl(body.CallBackURL)) return 'CallBackURL';
  const reference = body.AccountReference;
  if (typeof reference !== 'string' || reference.length < 1 || reference.length > 12) return 'AccountReference';
  if (typeof body.TransactionDesc !== 'string') return 'TransactionDesc';
  return {
    amount,
    phone: String(body.PhoneNumber),
    callbackUrl: body.CallBackURL,
    reference,
  };
}

/** Checks BusinessShortCode, Timestamp and Password = base64(shortcode + passkey + timestamp). */
function invalidCredentialsField(body: Record<string, unknown>, passkey: string): string | null {
  if (!isShortCode(body.BusinessShortCode)) return 'BusinessShortCode';
  if (!isTimestamp(body.Timestamp)) return 'Timestamp';
  const expected = Buffer.from(`${body.BusinessShortCode}${passkey}${body.Timestamp}`).toString('base64');
  return body.Password === expected ? null : 'Password';
}

function isShortCode(value: unknown): boolean {
  return (typeof value === 'string' || typeof value === 'number') && /^\d{5,7}$/.test(String(value));
}

/** A Safaricom MSISDN in international form: 2547XXXXXXXX or 2541XXXXXXXX. */
function isPhone(value: unknown): boolean {
  return (typeof value === 'string' || typeof value === 'number') && /^254[17]\d{8}$/.test(String(value));
}

function isTimestamp(value: unknown): value is string {
  if (typeof value !== 'string' || !/^\d{14}$/.test(value)) return false;
  const iso = `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6, 8)}T${value.slice(8, 10)}:${value.slice(10, 12)}:${value.slice(12)}Z`;
  const date = new Date(iso);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(iso.slice(0, 19));
}

function isHttpUrl(value: unknown): value is string {
  if (typeof value !== 'string' || !URL.canParse(value)) return false;
  const { protocol } = new URL(value);
  return protocol === 'https:' || protocol === 'http:';
}

/** Amount may come as a number or a numeric string; only whole numbers are accepted. */
function wholeNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : null;
  if (typeof value === 'string' && /^\d+$/.test(value))
    return Number.isSafeInteger(Number(value)) ? Number(value) : null;
  return null;
}

function validBasicCredentials(request: SandboxRequest): boolean {
  const encoded = authorization(request.headers, 'Basic');
  if (encoded === null) return false;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 && colon < decoded.length - 1;
}

function parseJsonObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: string; message?: string } | undefined;
  return cause?.code ?? cause?.message ?? `${error.name}: ${error.message}`;
}

function badRequest(requestId: string, message: string): Reply {
  return darajaError(400, requestId, '400.002.02', message);
}

function darajaError(status: number, requestId: string, errorCode: string, errorMessage: string): Reply {
  return { status, body: { requestId, errorCode, errorMessage } };
}
