import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startSandbox } from '../sandbox/sandbox.ts';
import { childEnv } from './helpers/child-env.ts';
import { waitFor } from './helpers/wait.ts';

const sandbox = await startSandbox({ port: 0 });
t.teardown(() => sandbox.stop());
t.beforeEach(() => sandbox.reset());

type Answer = Readonly<{ status: number; headers: Headers; body: any }>;

async function call(
  method: string,
  path: string,
  init: { body?: string; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Answer> {
  const response = await fetch(`${sandbox.url}${path}`, { method, ...init });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

// --- Stripe -----------------------------------------------------------------------------------

const STRIPE_KEY = 'sk_test_sandbox';
let orders = 0;
const newOrderId = () => `po_sandbox_test_${++orders}`;

function stripe(method: string, path: string, options: { form?: Record<string, string>; key?: string } = {}) {
  return {
    method,
    path,
    headers: {
      Authorization: `Bearer ${options.key ?? STRIPE_KEY}`,
      'Content-Type': 'application/x-www-form-urlencoded',
    },
    body: options.form ? new URLSearchParams(options.form).toString() : undefined,
  };
}

function createIntent(
  form: Record<string, string>,
  { idempotencyKey, signal }: { idempotencyKey?: string; signal?: AbortSignal } = {},
) {
  const request = stripe('POST', '/v1/payment_intents', { form });
  const headers = { ...request.headers, ...(idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {}) };
  return call('POST', request.path, { headers, body: request.body, signal });
}

/** What our Stripe adapter sends: a confirmed PaymentIntent naming the order in its metadata. */
function charge(orderId: string, paymentMethod = 'pm_card_visa', amount = '1050'): Record<string, string> {
  return {
    amount,
    currency: 'usd',
    payment_method: paymentMethod,
    confirm: 'true',
    'metadata[order_id]': orderId,
    'payment_method_types[0]': 'card',
  };
}

t.test('Stripe: a confirmed PaymentIntent with pm_card_visa succeeds and is charged once', async (t) => {
  const orderId = newOrderId();
  const res = await createIntent(charge(orderId));
  t.equal(res.status, 200);
  t.match(res.headers.get('request-id'), /^req_\w{14}$/);
  t.match(res.body, {
    id: /^pi_\w{24}$/,
    object: 'payment_intent',
    amount: 1050,
    amount_received: 1050,
    currency: 'usd',
    status: 'succeeded',
    payment_method: 'pm_card_visa',
    payment_method_types: ['card'],
    metadata: { order_id: orderId },
    latest_charge: /^ch_/,
    livemode: false,
  });
  t.ok(Math.abs(res.body.created - Date.now() / 1000) < 5, 'created is in unix seconds');
  t.match(sandbox.ledger(), [
    { provider: 'stripe', id: res.body.id, orderId, amount: 1050, currency: 'usd', status: 'charged' },
  ]);

  const retrieved = await call('GET', `/v1/payment_intents/${res.body.id}`, stripe('GET', ''));
  t.equal(retrieved.status, 200);
  t.same(retrieved.body, res.body);
  const query = encodeURIComponent(`metadata['order_id']:'${orderId}'`);
  const found = await call('GET', `/v1/payment_intents/search?query=${query}`, stripe('GET', ''));
  t.equal(found.status, 200);
  t.match(found.body, { object: 'search_result', has_more: false });
  t.same(
    found.body.data.map((intent: { id: string }) => intent.id),
    [res.body.id],
  );
  const none = await call(
    'GET',
    `/v1/payment_intents/search?query=${encodeURIComponent("metadata['order_id']:'po_x'")}`,
    {
      headers: stripe('GET', '').headers,
    },
  );
  t.same(none.body.data, []);
});

t.test('Stripe: declines answer 402 card_error and are in the ledger as declined', async (t) => {
  const cases = [
    ['pm_card_chargeDeclined', 'generic_decline', 'Your card was declined.'],
    ['pm_card_insufficientFunds', 'insufficient_funds', 'Your card has insufficient funds.'],
  ] as const;
  for (const [paymentMethod, declineCode, message] of cases) {
    const orderId = newOrderId();
    const res = await createIntent(charge(orderId, paymentMethod));
    t.equal(res.status, 402, paymentMethod);
    t.match(res.body.error, {
      type: 'card_error',
      code: 'card_declined',
      decline_code: declineCode,
      message,
      payment_intent: { id: /^pi_/, status: 'requires_payment_method', metadata: { order_id: orderId } },
    });
    t.match(
      sandbox.ledger().filter((entry) => entry.orderId === orderId),
      [{ status: 'declined', resultCode: declineCode, amount: 1050 }],
    );
  }
  sandbox.setSwitches({ declineRate: 1 });
  const byRate = await createIntent(charge(newOrderId()));
  t.equal(byRate.status, 402, 'declineRate declines an otherwise good card');
  t.equal(byRate.body.error.decline_code, 'generic_decline');
});

t.test('Stripe: requests it refuses are not charged', async (t) => {
  const noKey = await call('POST', '/v1/payment_intents', { body: new URLSearchParams(charge('po_1')).toString() });
  t.equal(noKey.status, 401);
  t.equal(noKey.body.error.type, 'invalid_request_error');
  t.equal((await createIntent(charge('po_1'), {})).status, 200, 'control: the same request with a key');
  sandbox.reset();

  const cases = [
    [{ ...charge('po_1'), amount: '0' }, 'amount'],
    [{ ...charge('po_1'), amount: '10.5' }, 'amount'],
    [{ ...charge('po_1'), currency: 'usdx' }, 'currency'],
    [{ ...charge('po_1'), payment_method: 'card_visa' }, 'payment_method'],
  ] as const;
  for (const [form, param] of cases) {
    const res = await createIntent(form);
    t.equal(res.status, 400, JSON.stringify(form));
    t.match(res.body.error, { type: 'invalid_request_error', param });
  }
  const unknownMethod = await createIntent({ ...charge('po_1'), payment_method: 'card_visa' });
  t.match(unknownMethod.body.error, { code: 'resource_missing', message: "No such PaymentMethod: 'card_visa'" });
  const missing = await call('GET', '/v1/payment_intents/pi_nope', stripe('GET', ''));
  t.equal(missing.status, 404);
  t.equal(missing.body.error.code, 'resource_missing');
  t.same(sandbox.ledger(), []);
});

t.test('Stripe idempotency: a repeated key replays the saved response and charges once', async (t) => {
  const orderId = newOrderId();
  const key = `${orderId}-charge`;
  const first = await createIntent(charge(orderId), { idempotencyKey: key });
  t.equal(first.status, 200);
  t.equal(first.headers.get('idempotent-replayed'), null);
  // The same parameters in the other list encoding Stripe accepts.
  const { 'payment_method_types[0]': _, ...rest } = charge(orderId);
  const again = await createIntent({ ...rest, 'payment_method_types[]': 'card' }, { idempotencyKey: key });
  t.equal(again.status, 200);
  t.equal(again.headers.get('idempotent-replayed'), 'true');
  t.same(again.body, first.body);
  t.equal(again.headers.get('original-request'), first.headers.get('request-id'));
  t.equal(sandbox.ledger().length, 1, 'one charge');

  const declinedKey = `${newOrderId()}-charge`;
  const declined = await createIntent(charge('po_d', 'pm_card_chargeDeclined'), { idempotencyKey: declinedKey });
  const replayedDecline = await createIntent(charge('po_d', 'pm_card_chargeDeclined'), { idempotencyKey: declinedKey });
  t.equal(replayedDecline.status, 402, 'a decline is replayed too');
  t.same(replayedDecline.body, declined.body);

  const different = await createIntent(charge(orderId, 'pm_card_visa', '2000'), { idempotencyKey: key });
  t.equal(different.status, 400);
  t.match(different.body.error, {
    type: 'idempotency_error',
    message: /^Keys for idempotent requests can only be used with the same parameters they were first used with/,
  });
  t.equal(sandbox.ledger().length, 2, 'no new charge');
});

t.test('Stripe idempotency: a key in use by a request still being processed answers 409', async (t) => {
  sandbox.setSwitches({ latencyMs: 300 });
  const orderId = newOrderId();
  const answers = await Promise.all([
    createIntent(charge(orderId), { idempotencyKey: orderId }),
    createIntent(charge(orderId), { idempotencyKey: orderId }),
  ]);
  t.same(answers.map((a) => a.status).sort(), [200, 409]);
  t.match(answers.find((a) => a.status === 409)?.body.error, {
    type: 'idempotency_error',
    code: 'idempotency_key_in_use',
  });
  t.equal(sandbox.ledger().length, 1);
});

t.test('failNext: 500 before processing; the retry with the same key charges once', async (t) => {
  sandbox.setSwitches({ failNext: 1 });
  const orderId = newOrderId();
  const failed = await createIntent(charge(orderId), { idempotencyKey: orderId });
  t.equal(failed.status, 500);
  t.equal(failed.body.error.type, 'api_error');
  t.same(sandbox.ledger(), [], 'nothing charged');
  const retried = await createIntent(charge(orderId), { idempotencyKey: orderId });
  t.equal(retried.status, 200);
  t.equal(retried.headers.get('idempotent-replayed'), null, 'the failure was not saved for the key');
  t.equal(sandbox.ledger().filter((e) => e.status === 'charged').length, 1);
  t.same(
    sandbox.requests().map((r) => [r.fault, r.status]),
    [
      ['error', 500],
      [null, 200],
    ],
  );
});

t.test('rateLimitNext: 429 with Retry-After, nothing processed', async (t) => {
  sandbox.setSwitches({ rateLimitNext: 1, retryAfterSeconds: 2 });
  const res = await createIntent(charge(newOrderId()));
  t.equal(res.status, 429);
  t.equal(res.headers.get('retry-after'), '2');
  t.match(res.body.error, { type: 'invalid_request_error', code: 'rate_limit' });
  t.match(res.headers.get('request-id'), /^req_/);
  t.same(sandbox.ledger(), []);
  t.equal((await createIntent(charge(newOrderId()))).status, 200, 'the next request is served');
});

t.test('loseNext: charged, the connection closes unanswered, the retry replays the success', async (t) => {
  sandbox.setSwitches({ loseNext: 1 });
  const orderId = newOrderId();
  await t.rejects(createIntent(charge(orderId), { idempotencyKey: orderId }), 'fetch fails: no response');
  const [entry] = sandbox.ledger();
  t.match(entry, { orderId, status: 'charged', idempotencyKey: orderId });
  const retried = await createIntent(charge(orderId), { idempotencyKey: orderId });
  t.equal(retried.status, 200);
  t.equal(retried.headers.get('idempotent-replayed'), 'true');
  t.equal(retried.body.id, entry?.id);
  t.equal(sandbox.ledger().length, 1, 'no second charge');
  t.match(sandbox.requests(), [
    { fault: 'lost', status: null },
    { fault: null, status: 200 },
  ]);
});

t.test('timeoutNext: the request is never answered and nothing is charged', async (t) => {
  sandbox.setSwitches({ timeoutNext: 1 });
  const orderId = newOrderId();
  await t.rejects(createIntent(charge(orderId), { idempotencyKey: orderId, signal: AbortSignal.timeout(300) }), {
    name: 'TimeoutError',
  });
  t.same(sandbox.ledger(), []);
  t.match(sandbox.requests(), [{ kind: 'charge', fault: 'timeout', status: null }]);
  const retried = await createIntent(charge(orderId), { idempotencyKey: orderId });
  t.equal(retried.status, 200);
  t.equal(retried.headers.get('idempotent-replayed'), null, 'first processed now');
});

t.test('faultPaths limits faults to the paths named', async (t) => {
  sandbox.setSwitches({ failNext: 1, faultPaths: ['/mpesa/stkpush/v1/processrequest'] });
  t.equal((await createIntent(charge(newOrderId()))).status, 200, 'Stripe is not affected');
  const token = await mpesaToken();
  const push = await stkPush(token, mpesaPush('254708374149', 'http://127.0.0.1:9/cb'));
  t.equal(push.status, 500);
  t.match(push.body, { requestId: /^\d+-\d+-1$/, errorCode: '500.003.1001', errorMessage: 'Internal Server Error' });
  t.match(sandbox.requests(), [{ fault: null }, { kind: 'token', fault: null }, { kind: 'charge', fault: 'error' }]);
  sandbox.setSwitches({ failNext: 1, mpesaErrorCode: '500.003.02' });
  const busy = await stkPush(token, mpesaPush('254708374149', 'http://127.0.0.1:9/cb'));
  t.match(busy, { status: 500, body: { errorCode: '500.003.02', errorMessage: 'System is busy' } });
});

t.test("scripts: the outcomes of a payment's next requests, by a key they carry", async (t) => {
  sandbox.reset();
  const bad = await fetch(`${sandbox.url}/__admin/scripts`, {
    method: 'POST',
    body: JSON.stringify({ key: 'k', outcomes: ['nope'] }),
  });
  t.equal(bad.status, 400);
  const orderId = newOrderId();
  const set = await fetch(`${sandbox.url}/__admin/scripts`, {
    method: 'POST',
    body: JSON.stringify({ key: orderId, outcomes: ['429', 'pending', 'success'] }),
  });
  t.equal(set.status, 200);
  t.equal((await createIntent(charge(orderId))).status, 429, 'first: a scripted 429');
  const processing = await createIntent(charge(orderId), { idempotencyKey: 'key-2' });
  t.match(processing, { status: 200, body: { status: 'processing' } }, 'then: still processing');
  t.match(sandbox.ledger(), [{ orderId, status: 'pending' }]);
  t.equal(sandbox.scripted(orderId).length, 1);
  const used = await (await fetch(`${sandbox.url}/__admin/scripts`)).json();
  t.match(used, {
    used: [
      { key: orderId, outcome: '429' },
      { key: orderId, outcome: 'pending' },
    ],
  });
});

t.test('stripeErrorsAfterProcessing: a 500 after the charge, saved and replayed for the key', async (t) => {
  sandbox.reset();
  sandbox.setSwitches({ failNext: 1, stripeErrorsAfterProcessing: true });
  const orderId = newOrderId();
  const first = await createIntent(charge(orderId), { idempotencyKey: 'key-500' });
  t.equal(first.status, 500);
  t.match(sandbox.ledger(), [{ orderId, status: 'charged' }], 'charged although the answer is a 500');
  const replay = await createIntent(charge(orderId), { idempotencyKey: 'key-500' });
  t.equal(replay.status, 500);
  t.equal(replay.headers.get('idempotent-replayed'), 'true');
  t.equal(sandbox.ledger().length, 1, 'no second charge');
});

// --- M-Pesa Daraja ----------------------------------------------------------------------------

const SHORTCODE = '174379';
const PASSKEY = 'bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919';

/** A local HTTP server standing in for our callback endpoint. */
const callbacks: any[] = [];
const receiver = createServer((request, response) => {
  let body = '';
  request.on('data', (chunk) => (body += chunk));
  request.on('end', () => {
    callbacks.push(JSON.parse(body));
    response.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ResultCode":0,"ResultDesc":"Accepted"}');
  });
});
receiver.listen(0, '127.0.0.1');
await once(receiver, 'listening');
t.teardown(() => new Promise((resolve) => receiver.close(resolve)));
const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/callbacks/mpesa`;
const callbacksFor = (checkoutRequestId: string) =>
  callbacks.filter((c) => c.Body.stkCallback.CheckoutRequestID === checkoutRequestId);

async function mpesaToken(credentials = 'consumer-key:consumer-secret'): Promise<string> {
  const res = await call('GET', '/oauth/v1/generate?grant_type=client_credentials', {
    headers: { Authorization: `Basic ${Buffer.from(credentials).toString('base64')}` },
  });
  return res.body.access_token;
}

function credentials(passkey = PASSKEY) {
  const timestamp = '20261124021501';
  return {
    BusinessShortCode: SHORTCODE,
    Password: Buffer.from(`${SHORTCODE}${passkey}${timestamp}`).toString('base64'),
    Timestamp: timestamp,
  };
}

function mpesaPush(phone: string, url = callbackUrl) {
  return {
    ...credentials(),
    TransactionType: 'CustomerPayBillOnline',
    Amount: 101,
    PartyA: phone,
    PartyB: SHORTCODE,
    PhoneNumber: phone,
    CallBackURL: url,
    AccountReference: 'po-7xk2m9q4',
    TransactionDesc: 'Order payment',
  };
}

function darajaPost(path: string, token: string, body: unknown) {
  return call('POST', path, {
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
}
const stkPush = (token: string, body: unknown) => darajaPost('/mpesa/stkpush/v1/processrequest', token, body);
const stkQuery = (token: string, checkoutRequestId: string) =>
  darajaPost('/mpesa/stkpushquery/v1/query', token, { ...credentials(), CheckoutRequestID: checkoutRequestId });

t.test('Daraja OAuth: Basic credentials get a token; anything else is refused', async (t) => {
  const basic = `Basic ${Buffer.from('key:secret').toString('base64')}`;
  const ok = await call('GET', '/oauth/v1/generate?grant_type=client_credentials', {
    headers: { Authorization: basic },
  });
  t.equal(ok.status, 200);
  t.match(ok.body, { access_token: /^\w{20,}$/, expires_in: '3599' });
  for (const authorization of [undefined, `Basic ${Buffer.from('key:').toString('base64')}`, 'Bearer x']) {
    const res = await call('GET', '/oauth/v1/generate?grant_type=client_credentials', {
      headers: authorization ? { Authorization: authorization } : {},
    });
    t.equal(res.status, 400, String(authorization));
    t.match(res.body, { errorCode: '400.008.01', errorMessage: 'Invalid Authentication passed' });
  }
  const grant = await call('GET', '/oauth/v1/generate?grant_type=password', { headers: { Authorization: basic } });
  t.equal(grant.status, 400);
});

t.test('Daraja STK push: accepted, settled after the delay, callback delivered, query answers', async (t) => {
  sandbox.setSwitches({ mpesaCallbackDelayMs: 1000 });
  const token = await mpesaToken();
  const push = await stkPush(token, mpesaPush('254708374149'));
  t.equal(push.status, 200);
  t.match(push.body, {
    MerchantRequestID: /^\d+-\d+-1$/,
    CheckoutRequestID: /^ws_CO_\d{22}$/,
    ResponseCode: '0',
    ResponseDescription: 'Success. Request accepted for processing',
    CustomerMessage: 'Success. Request accepted for processing',
  });
  const id = push.body.CheckoutRequestID;
  t.match(sandbox.ledger(), [
    { provider: 'mpesa', id, orderId: 'po-7xk2m9q4', amount: 101, currency: 'KES', status: 'pending', settledAt: null },
  ]);
  const early = await stkQuery(token, id);
  t.equal(early.status, 500, 'not settled yet');
  t.match(early.body, { errorCode: '500.001.1001', errorMessage: 'The transaction is being processed' });

  const [callback] = await waitFor('the callback', () => callbacksFor(id).length > 0 && callbacksFor(id));
  const stk = callback.Body.stkCallback;
  t.match(stk, { MerchantRequestID: push.body.MerchantRequestID, CheckoutRequestID: id, ResultCode: 0 });
  t.same(
    stk.CallbackMetadata.Item.map((item: { Name: string }) => item.Name),
    ['Amount', 'MpesaReceiptNumber', 'TransactionDate', 'PhoneNumber'],
  );
  const items = Object.fromEntries(
    stk.CallbackMetadata.Item.map((i: { Name: string; Value: unknown }) => [i.Name, i.Value]),
  );
  t.equal(items.Amount, 101);
  t.match(items.MpesaReceiptNumber, /^[A-Z0-9]{10}$/);
  t.match(String(items.TransactionDate), /^20\d{12}$/);
  t.equal(items.PhoneNumber, 254708374149);

  const settled = await stkQuery(token, id);
  t.equal(settled.status, 200);
  t.match(settled.body, { ResponseCode: '0', MerchantRequestID: push.body.MerchantRequestID, CheckoutRequestID: id });
  t.equal(settled.body.ResultCode, '0', 'a string, as Daraja sends it');
  await waitFor('the delivery to be recorded', () => sandbox.ledger()[0]?.callbacks?.length === 1);
  t.match(sandbox.ledger(), [{ status: 'charged', resultCode: '0', settledAt: String, callbacks: [{ status: 200 }] }]);
});

t.test('Daraja: the phone number chooses the outcome', async (t) => {
  const token = await mpesaToken();
  const cases = [
    ['254708371032', 1032, 'Request cancelled by user'],
    ['254700000001', 1, 'The balance is insufficient for the transaction'],
    ['254708371037', 1037, 'DS timeout user cannot be reached'],
  ] as const;
  for (const [phone, code, description] of cases) {
    const id = (await stkPush(token, mpesaPush(phone))).body.CheckoutRequestID;
    const [callback] = await waitFor(`the ${code} callback`, () => callbacksFor(id).length > 0 && callbacksFor(id));
    t.same(
      callback.Body.stkCallback,
      {
        MerchantRequestID: callback.Body.stkCallback.MerchantRequestID,
        CheckoutRequestID: id,
        ResultCode: code,
        ResultDesc: description,
      },
      'no CallbackMetadata',
    );
    t.match(await stkQuery(token, id), { status: 200, body: { ResultCode: String(code), ResultDesc: description } });
    t.match(
      sandbox.ledger().find((e) => e.id === id),
      { status: 'declined', resultCode: String(code) },
    );
  }
});

t.test("mpesaCallback 'missing': no callback, but the outcome settles and the query answers", async (t) => {
  sandbox.setSwitches({ mpesaCallback: 'missing', mpesaCallbackDelayMs: 50 });
  const token = await mpesaToken();
  const id = (await stkPush(token, mpesaPush('254708374149'))).body.CheckoutRequestID;
  await waitFor('settlement', () => sandbox.ledger()[0]?.status === 'charged');
  const query = await stkQuery(token, id);
  t.equal(query.status, 200);
  t.equal(query.body.ResultCode, '0');
  t.same(sandbox.ledger()[0]?.callbacks, [], 'no delivery attempted');
  t.same(callbacksFor(id), []);
});

t.test("mpesaCallback 'duplicate' delivers the callback twice; 'late' after the outcome settled", async (t) => {
  sandbox.setSwitches({ mpesaCallback: 'duplicate', mpesaCallbackDelayMs: 50 });
  const token = await mpesaToken();
  const twice = (await stkPush(token, mpesaPush('254708374149'))).body.CheckoutRequestID;
  const both = await waitFor('two callbacks', () => callbacksFor(twice).length === 2 && callbacksFor(twice));
  t.same(both[0], both[1], 'the same body twice');

  sandbox.setSwitches({ mpesaCallback: 'late', mpesaLateCallbackDelayMs: 1500 });
  const late = (await stkPush(token, mpesaPush('254708374149'))).body.CheckoutRequestID;
  await waitFor('settlement', () => sandbox.ledger().find((e) => e.id === late)?.status === 'charged');
  t.equal((await stkQuery(token, late)).body.ResultCode, '0', 'the query answers before the callback comes');
  t.same(callbacksFor(late), [], 'not delivered yet');
  await waitFor('the late callback', () => callbacksFor(late).length === 1);
});

t.test('Daraja refuses a wrong password, a bad field, an unknown or expired token', async (t) => {
  const token = await mpesaToken();
  const wrongPassword = await stkPush(token, { ...mpesaPush('254708374149'), ...credentials('not-the-passkey') });
  t.equal(wrongPassword.status, 400);
  t.match(wrongPassword.body, { errorCode: '400.002.02', errorMessage: 'Bad Request - Invalid Password' });
  for (const [field, value] of [
    ['Amount', 10.5],
    ['Amount', '0'],
    ['PhoneNumber', '0708374149'],
    ['CallBackURL', 'ftp://example.com/cb'],
    ['AccountReference', 'more-than-twelve'],
  ] as const) {
    const res = await stkPush(token, { ...mpesaPush('254708374149'), [field]: value });
    t.equal(res.status, 400, `${field}: ${value}`);
    t.match(res.body, { errorCode: '400.002.02', errorMessage: `Bad Request - Invalid ${field}` });
  }
  t.equal((await stkPush(token, { ...mpesaPush('254708374149'), Amount: '101' })).status, 200, 'Amount as a string');
  t.match(await stkQuery(token, 'ws_CO_000'), {
    status: 400,
    body: { errorCode: '400.002.02', errorMessage: 'Bad Request - Invalid CheckoutRequestID' },
  });

  const invalid = await stkPush('not-a-token', mpesaPush('254708374149'));
  t.equal(invalid.status, 401);
  t.match(invalid.body, { requestId: String, errorCode: '404.001.03', errorMessage: 'Invalid Access Token' });

  sandbox.setSwitches({ mpesaTokenTtlSeconds: 1 });
  const shortLived = await mpesaToken();
  t.equal((await stkQuery(shortLived, 'ws_CO_000')).status, 400, 'valid while fresh');
  await waitFor('the token to expire', async () => (await stkQuery(shortLived, 'ws_CO_000')).status === 401, {
    timeoutMs: 5000,
  });
});

// --- The request log, the admin API, stopping -------------------------------------------------

t.test('the request log records every provider request with its arrival time', async (t) => {
  const before = Date.now();
  await createIntent(charge(newOrderId()));
  const token = await mpesaToken();
  await stkPush(token, mpesaPush('254708374149'));
  await call('GET', '/__admin/ledger');
  const requests = sandbox.requests();
  t.match(requests, [
    { method: 'POST', path: '/v1/payment_intents', provider: 'stripe', kind: 'charge', fault: null, status: 200 },
    { method: 'GET', path: '/oauth/v1/generate', provider: 'mpesa', kind: 'token', status: 200 },
    { method: 'POST', path: '/mpesa/stkpush/v1/processrequest', provider: 'mpesa', kind: 'charge', status: 200 },
  ]);
  t.equal(requests.length, 3, 'admin requests are not recorded');
  for (const [i, request] of requests.entries()) {
    t.equal(request.at, new Date(request.atMs).toISOString());
    t.ok(request.atMs >= before && request.atMs <= Date.now());
    if (i > 0) t.ok(request.atMs >= requests[i - 1]!.atMs, 'in arrival order');
  }
  t.same((await call('GET', '/__admin/requests')).body.requests, requests);
});

t.test('the admin API reads and merges switches, filters the ledger, resets', async (t) => {
  const json = { 'Content-Type': 'application/json' };
  const merged = await call('POST', '/__admin/switches', { headers: json, body: '{"errorRate":0.5,"latencyMs":1}' });
  t.equal(merged.status, 200);
  t.match(merged.body, { errorRate: 0.5, latencyMs: 1, mpesaCallback: 'normal', retryAfterSeconds: 1 });
  t.same((await call('GET', '/__admin/switches')).body, merged.body);
  for (const body of ['{"errorRate":2}', '{"noSuchSwitch":1}', 'not json']) {
    const res = await call('POST', '/__admin/switches', { headers: json, body });
    t.equal(res.status, 400, body);
  }
  t.throws(() => sandbox.setSwitches({ mpesaCallback: 'sometimes' as 'late' }), /invalid switches/);

  await call('POST', '/__admin/reset');
  const orderId = newOrderId();
  await createIntent(charge(orderId));
  await createIntent(charge(newOrderId()));
  const filtered = await call('GET', `/__admin/ledger?orderId=${orderId}`);
  t.match(filtered.body, { entries: [{ orderId }] });
  t.equal(filtered.body.entries.length, 1);
  t.equal((await call('GET', '/__admin/ledger')).body.entries.length, 2);
  const reset = await call('POST', '/__admin/reset');
  t.equal(reset.body.errorRate, 0);
  t.same((await call('GET', '/__admin/ledger')).body, { entries: [] });
  t.same(sandbox.requests(), []);
});

t.test('stop() resolves while a request is held open and a callback is pending', async (t) => {
  const own = await startSandbox({ switches: { timeoutNext: 1, mpesaCallback: 'late' } });
  const held = fetch(`${own.url}/v1/payment_intents/pi_x`, { headers: { Authorization: `Bearer ${STRIPE_KEY}` } });
  held.catch(() => {});
  await waitFor('the held request', () => own.requests().some((r) => r.fault === 'timeout'));
  const tokenResponse = await fetch(`${own.url}/oauth/v1/generate?grant_type=client_credentials`, {
    headers: { Authorization: `Basic ${Buffer.from('k:s').toString('base64')}` },
  });
  const { access_token: token } = (await tokenResponse.json()) as { access_token: string };
  const push = await fetch(`${own.url}/mpesa/stkpush/v1/processrequest`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(mpesaPush('254708374149')),
  });
  t.equal(push.status, 200);
  const started = Date.now();
  await own.stop();
  t.ok(Date.now() - started < 1000, `stopped in ${Date.now() - started} ms`);
  await t.rejects(held, 'the held request fails when the sandbox stops');
  await own.stop();
  t.pass('stop() twice is harmless');
});

t.test('npm run sandbox: starts on SANDBOX_PORT, logs its url, exits 0 on SIGTERM', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
  t.equal(pkg.scripts.sandbox, 'node sandbox/main.ts');
  const root = fileURLToPath(new URL('../', import.meta.url));
  const child = spawn(process.execPath, ['sandbox/main.ts'], {
    cwd: root,
    env: childEnv({ SANDBOX_PORT: '0', SANDBOX_SWITCHES: '{"latencyMs":1}' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit');
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const started = await waitFor('the sandbox to listen', () =>
    output
      .split('\n')
      .filter((line) => line.includes('provider sandbox listening'))
      .map((line) => JSON.parse(line))
      .at(0),
  );
  t.match(started.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const switches = (await (await fetch(`${started.url}/__admin/switches`)).json()) as { latencyMs: number };
  t.equal(switches.latencyMs, 1, 'switches from SANDBOX_SWITCHES');
  child.kill('SIGTERM');
  t.same(await exited, [0, null], 'exit code 0');

  const refused = spawn(process.execPath, ['sandbox/main.ts'], {
    cwd: root,
    env: childEnv({ SANDBOX_PORT: '0', SANDBOX_SWITCHES: '{"errorRate":7}' }),
    stdio: 'ignore',
  });
  t.same(await once(refused, 'exit'), [78, null], 'invalid switches: exit 78');
});
