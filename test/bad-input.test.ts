// Bad input to the order API, over real HTTP against the running service on a real PostgreSQL:
// every shape of it gets a 4xx application/problem+json answer (never a 5xx), validation errors
// name the field at fault, and nothing at all is written.
import t, { type Test } from 'tap';
import { type ApiClient, type ApiResponse, card, startTestService } from './helpers/service.ts';

// The idempotency-key sweeper is a pg-boss schedule that adds a pgboss.job row on each cron tick;
// a yearly tick keeps it from adding one in the middle of this file's "nothing written" check.
const service = await startTestService(t, { IDEMPOTENCY_SWEEP_CRON: '0 0 1 1 *' });
const { api } = await service.merchant();

/** Every table an accepted order writes to. */
const TABLES = ['payment_orders', 'payment_order_transitions', 'idempotency_keys', 'pgboss.job'] as const;

async function counts(): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const table of TABLES) result[table] = await service.database.count(table);
  return result;
}

/**
 * One request to POST /payment-orders. `body` is sent as JSON (Content-Type: application/json);
 * `raw` is sent as is (Content-Type: application/json unless `contentType` says otherwise; null
 * sends none, which needs a byte body: fetch labels a string body text/plain by itself).
 * `idempotencyKey`: omitted = a fresh one per request, null = no header.
 */
type BadRequest = Readonly<{
  body?: unknown;
  raw?: string | Uint8Array;
  contentType?: string | null;
  idempotencyKey?: string | null;
  headers?: Record<string, string>;
}>;

/**
 * [name, request, expected status, expected code, expected path of the field errors]. The path is
 * the one field every error names ('' for the body as a whole); a list when several fields are.
 */
type Path = string | readonly string[];
type Case = readonly [name: string, request: BadRequest, status: number, code: string, path?: Path];

function post(client: ApiClient, request: BadRequest): Promise<ApiResponse> {
  const key = request.idempotencyKey === undefined ? crypto.randomUUID() : request.idempotencyKey;
  const headers: Record<string, string> = {};
  if (key !== null) headers['Idempotency-Key'] = key;
  const contentType = request.contentType === undefined ? 'application/json' : request.contentType;
  if (contentType !== null) headers['Content-Type'] = contentType;
  const raw = request.raw ?? (request.body === undefined ? undefined : JSON.stringify(request.body));
  return client.request('POST', '/payment-orders', {
    ...(raw === undefined ? {} : { raw }),
    headers: { ...headers, ...request.headers },
  });
}

// A valid order: each case breaks exactly one thing of it, so the one expected path is the only one.
const ok = { amount: 1050, currency: 'USD', paymentMethod: card } as const;
const mpesa = (phone: string) => ({ type: 'mpesa', phone }) as const;
const kesOrder = { amount: 10100, currency: 'KES', paymentMethod: mpesa('254708374149') } as const;
const without = <T extends object, K extends keyof T>(object: T, key: K): Omit<T, K> => {
  const { [key]: _dropped, ...rest } = object;
  return rest;
};
const bytes = (text: string) => new TextEncoder().encode(text);

const fiftyOneKeys = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
const longKey = 'k'.repeat(41);

const cases: readonly Case[] = [
  // amount
  ['amount is a float', { body: { ...ok, amount: 10.5 } }, 400, 'validation_failed', 'amount'],
  ['amount is a string', { body: { ...ok, amount: '100' } }, 400, 'validation_failed', 'amount'],
  ['amount is 0', { body: { ...ok, amount: 0 } }, 400, 'validation_failed', 'amount'],
  ['amount is negative', { body: { ...ok, amount: -100 } }, 400, 'validation_failed', 'amount'],
  ['amount is 2^53', { body: { ...ok, amount: 2 ** 53 } }, 400, 'validation_failed', 'amount'],
  // JSON.parse reads 1e400 as Infinity; JSON.stringify cannot even write it.
  ['amount is 1e400', { raw: '{"amount":1e400,"currency":"USD"}' }, 400, 'validation_failed', 'amount'],
  ['amount is a boolean', { body: { ...ok, amount: true } }, 400, 'validation_failed', 'amount'],
  ['amount is null', { body: { ...ok, amount: null } }, 400, 'validation_failed', 'amount'],
  ['amount is missing', { body: without(ok, 'amount') }, 400, 'validation_failed', 'amount'],
  // currency
  ['currency is missing', { body: without(ok, 'currency') }, 400, 'validation_failed', 'currency'],
  [
    'currency is three letters but not ISO 4217',
    { body: { ...ok, currency: 'xyz' } },
    400,
    'validation_failed',
    'currency',
  ],
  ['currency has 2 letters', { body: { ...ok, currency: 'US' } }, 400, 'validation_failed', 'currency'],
  ['currency has 4 letters', { body: { ...ok, currency: 'USDD' } }, 400, 'validation_failed', 'currency'],
  ['currency is a number', { body: { ...ok, currency: 840 } }, 400, 'validation_failed', 'currency'],
  // unknown field
  ['an unknown top-level field', { body: { ...ok, customer: 'cus_1' } }, 400, 'validation_failed', 'customer'],
  // provider
  ['provider is not a string', { body: { ...ok, provider: 42 } }, 400, 'validation_failed', 'provider'],
  ['provider is empty', { body: { ...ok, provider: '' } }, 400, 'validation_failed', 'provider'],
  ['provider is unknown', { body: { ...ok, provider: 'paypal' } }, 400, 'unknown_provider'],
  // paymentMethod
  ['paymentMethod is a string', { body: { ...ok, paymentMethod: 'card' } }, 400, 'validation_failed', 'paymentMethod'],
  [
    'paymentMethod has an unknown type',
    { body: { ...ok, paymentMethod: { type: 'bank', iban: 'DE89' } } },
    400,
    'validation_failed',
    'paymentMethod.type',
  ],
  [
    'card without a token',
    { body: { ...ok, paymentMethod: { type: 'card' } } },
    400,
    'validation_failed',
    'paymentMethod.token',
  ],
  [
    'card token with a space',
    { body: { ...ok, paymentMethod: { type: 'card', token: 'pm card' } } },
    400,
    'validation_failed',
    'paymentMethod.token',
  ],
  [
    'mpesa phone in national format',
    { body: { ...kesOrder, paymentMethod: mpesa('0712345678') } },
    400,
    'validation_failed',
    'paymentMethod.phone',
  ],
  [
    'mpesa phone too short, country code 0',
    { body: { ...kesOrder, paymentMethod: mpesa('+0123') } },
    400,
    'validation_failed',
    'paymentMethod.phone',
  ],
  [
    'mpesa phone with letters',
    { body: { ...kesOrder, paymentMethod: mpesa('2547O8374I49') } },
    400,
    'validation_failed',
    'paymentMethod.phone',
  ],
  [
    'paymentMethod with an extra field',
    { body: { ...ok, paymentMethod: { ...card, cvc: '123' } } },
    400,
    'validation_failed',
    'paymentMethod.cvc',
  ],
  // text fields
  [
    'reference of 256 characters',
    { body: { ...ok, reference: 'r'.repeat(256) } },
    400,
    'validation_failed',
    'reference',
  ],
  [
    'description of 1001 characters',
    { body: { ...ok, description: 'd'.repeat(1001) } },
    400,
    'validation_failed',
    'description',
  ],
  [
    'reference with a NUL character',
    { body: { ...ok, reference: 'inv\u00001' } },
    400,
    'validation_failed',
    'reference',
  ],
  [
    'description with a lone surrogate',
    { raw: '{"amount":1050,"currency":"USD","description":"coffee \\ud800"}' },
    400,
    'validation_failed',
    'description',
  ],
  // metadata
  ['metadata is an array', { body: { ...ok, metadata: ['a', 'b'] } }, 400, 'validation_failed', 'metadata'],
  ['metadata is a string', { body: { ...ok, metadata: 'cart=c-7' } }, 400, 'validation_failed', 'metadata'],
  ['metadata has 51 keys', { body: { ...ok, metadata: fiftyOneKeys } }, 400, 'validation_failed', 'metadata'],
  [
    'metadata key of 41 characters',
    { body: { ...ok, metadata: { [longKey]: 'v' } } },
    400,
    'validation_failed',
    `metadata.${longKey}`,
  ],
  [
    'metadata value of 501 characters',
    { body: { ...ok, metadata: { cart: 'v'.repeat(501) } } },
    400,
    'validation_failed',
    'metadata.cart',
  ],
  [
    'metadata value is not a string',
    { body: { ...ok, metadata: { items: 3 } } },
    400,
    'validation_failed',
    'metadata.items',
  ],
  ['metadata key is empty', { body: { ...ok, metadata: { '': 'v' } } }, 400, 'validation_failed', 'metadata.'],
  // the body as a whole
  ['body is a JSON array', { body: [ok] }, 400, 'validation_failed', ''],
  // Valid JSON, but not an object: a validation error on the body itself (path '').
  ['body is JSON null', { raw: 'null' }, 400, 'validation_failed', ''],
  ['body is a JSON string', { raw: '"amount"' }, 400, 'validation_failed', ''],
  ['body is malformed JSON', { raw: '{"amount":' }, 400, 'malformed_json'],
  // An empty body is read as {} (body-parser), so it lacks the required fields.
  ['body is empty', { raw: '' }, 400, 'validation_failed', ['amount', 'currency']],
  [
    'Content-Type text/plain with a JSON body',
    { raw: JSON.stringify(ok), contentType: 'text/plain' },
    415,
    'unsupported_media_type',
  ],
  ['no Content-Type', { raw: bytes(JSON.stringify(ok)), contentType: null }, 415, 'unsupported_media_type'],
  [
    'Content-Type application/json; charset=latin1',
    { raw: JSON.stringify(ok), contentType: 'application/json; charset=latin1' },
    415,
    'unsupported_media_type',
  ],
  ['body over 64 KiB', { body: { ...ok, description: 'd'.repeat(70_000) } }, 413, 'payload_too_large'],
  // A body that cannot be decoded cannot be read: the client's fault, like malformed JSON.
  [
    'Content-Encoding gzip on a body that is not gzip',
    { raw: bytes(JSON.stringify(ok)), headers: { 'Content-Encoding': 'gzip' } },
    400,
    'malformed_json',
  ],
  [
    'Content-Encoding deflate on a body that is not deflate',
    { raw: bytes(JSON.stringify(ok)), headers: { 'Content-Encoding': 'deflate' } },
    400,
    'malformed_json',
  ],
  [
    'Content-Encoding br on a body that is not brotli',
    { raw: bytes(JSON.stringify(ok)), headers: { 'Content-Encoding': 'br' } },
    400,
    'malformed_json',
  ],
  [
    'an unsupported Content-Encoding',
    { raw: bytes(JSON.stringify(ok)), headers: { 'Content-Encoding': 'compress' } },
    415,
    'unsupported_media_type',
  ],
  // Idempotency-Key (each with an otherwise valid body: only the key is wrong)
  ['Idempotency-Key missing', { body: ok, idempotencyKey: null }, 400, 'idempotency_key_missing'],
  ['Idempotency-Key empty', { body: ok, idempotencyKey: '' }, 400, 'idempotency_key_missing'],
  ['Idempotency-Key of 256 characters', { body: ok, idempotencyKey: 'k'.repeat(256) }, 400, 'idempotency_key_invalid'],
  ['Idempotency-Key with a tab inside', { body: ok, idempotencyKey: 'order\t1' }, 400, 'idempotency_key_invalid'],
  // provider rules
  ['mpesa amount not in whole shillings', { body: { ...kesOrder, amount: 10150 } }, 400, 'amount_invalid'],
  [
    'USD with provider mpesa',
    { body: { ...ok, provider: 'mpesa', paymentMethod: mpesa('254708374149') } },
    400,
    'currency_unsupported',
  ],
  [
    'KES with a card',
    { body: { amount: 10100, currency: 'KES', paymentMethod: card } },
    400,
    'payment_method_unsupported',
  ],
];

/** [name, query string, expected path] — each must be 400 validation_failed. */
const queryCases: readonly (readonly [name: string, query: string, path: string])[] = [
  ['limit=0', 'limit=0', 'limit'],
  ['limit=101', 'limit=101', 'limit'],
  ['limit=abc', 'limit=abc', 'limit'],
  ['status=DONE', 'status=DONE', 'status'],
  ['startingAfter=xyz', 'startingAfter=xyz', 'startingAfter'],
  ['an unknown parameter', 'unknown=1', 'unknown'],
  ['limit given twice', 'limit=1&limit=2', 'limit'],
];

function assertProblem(t: Test, res: ApiResponse, status: number, code: string, path: Path | undefined): void {
  t.ok(res.status < 500, `not a 5xx (got ${res.status}: ${res.text.slice(0, 300)})`);
  t.equal(res.status, status, 'status');
  t.match(res.headers.get('content-type'), /^application\/problem\+json/, 'problem+json');
  const problem = res.body as Record<string, unknown>;
  if (typeof problem !== 'object' || problem === null) {
    t.fail('the body is a JSON object', { body: res.text });
    return;
  }
  for (const field of ['type', 'title', 'code', 'detail'] as const) {
    t.type(problem[field], 'string', `${field} is a string`);
    t.not(problem[field], '', `${field} is not empty`);
  }
  t.equal(problem.status, res.status, 'body status equals the HTTP status');
  t.equal(problem.code, code, 'code');
  if (code === 'validation_failed') {
    const errors = problem.errors as Array<Record<string, unknown>> | undefined;
    t.ok(Array.isArray(errors) && errors.length > 0, 'errors is a non-empty array');
    if (!Array.isArray(errors)) return;
    for (const error of errors) {
      t.type(error.path, 'string', 'each error has a path');
      t.type(error.code, 'string', 'each error has a code');
      t.type(error.message, 'string', 'each error has a message');
    }
    const expected = typeof path === 'string' ? [path] : [...(path ?? [])];
    t.same(
      [...new Set(errors.map((e) => e.path))].sort(),
      expected.sort(),
      `the errors name ${expected.map((p) => `'${p}'`).join(', ')}`,
    );
  }
}

const before = await counts();

for (const [name, request, status, code, path] of cases) {
  const at =
    path === undefined
      ? ''
      : ` at ${[path]
          .flat()
          .map((p) => `'${p}'`)
          .join(', ')}`;
  t.test(`POST /payment-orders: ${name} → ${status} ${code}${at}`, async (t) => {
    assertProblem(t, await post(api, request), status, code, path);
  });
}

for (const [name, query, path] of queryCases) {
  t.test(`GET /payment-orders?${query}: ${name} → 400 validation_failed at '${path}'`, async (t) => {
    assertProblem(t, await api.get(`/payment-orders?${query}`), 400, 'validation_failed', path);
  });
}

t.test(`at least 30 distinct bad bodies and headers for POST (${cases.length})`, async (t) => {
  t.ok(cases.length >= 30);
  t.equal(new Set(cases.map(([name]) => name)).size, cases.length, 'case names are distinct');
});

t.test('nothing was written by any of the bad requests', async (t) => {
  t.same(await counts(), before);
});

// The service is still healthy and writes a good order after all that (so "nothing written" above
// is not just a broken service writing nothing ever).
t.test('a valid order is still accepted afterwards', async (t) => {
  const res = await post(api, { body: ok });
  t.equal(res.status, 201);
  t.equal(await service.database.count('payment_orders'), (before.payment_orders ?? 0) + 1);
});
