import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Test } from 'tap';
import { loadConfig } from '../../src/config/config.ts';
import { ensureMerchant, insertApiKey } from '../../src/db/merchants.repository.ts';
import { insertOperatorKey } from '../../src/db/operators.repository.ts';
import { newApiKey, newOperatorKey } from '../../src/domain/api-key.ts';
import { type RunningService, startService } from '../../src/service.ts';
import { type TestDatabase, testDatabase } from './database.ts';

export type TestService = RunningService & {
  database: TestDatabase;
  /** Every log line the service wrote, for assertions that secrets stay out of them. */
  logs: string[];
  /** A new merchant with a fresh API key. */
  merchant(name?: string): Promise<{ id: string; key: string; api: ApiClient }>;
  /** A new operator key (what `npm run keys -- create-operator` makes), with a client using it. */
  operator(name?: string): Promise<{ key: string; api: ApiClient }>;
  api(key?: string): ApiClient;
};

/** The whole service, in this process, on a database of this test's own, on a free port. */
export async function startTestService(
  t: Test,
  env: Record<string, string> = {},
  database?: TestDatabase,
): Promise<TestService> {
  const db = database ?? (await testDatabase(t));
  // Orders stay as they were created unless a test is about processing (it turns workers on).
  const config = loadConfig({
    DATABASE_URL: db.url,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    WORKER_CONCURRENCY: '0',
    // Test files run four at a time on one server (the machine's PostgreSQL 15 takes 100
    // connections): a small pool is plenty for a test's load.
    DATABASE_POOL_SIZE: '5',
    PROVIDER_SANDBOX: 'false',
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const service = await startService(config, pino({ level: config.logLevel }, sink));
  t.teardown(() => service.stop());
  let merchants = 0;
  const api = (key?: string) => new ApiClient(service.url, key);
  return Object.assign(Object.create(null), service, {
    database: db,
    logs,
    api,
    merchant: async (name = `merchant-${++merchants}-${Date.now()}`) => {
      const merchant = await ensureMerchant(service.db, name);
      const created = newApiKey();
      await insertApiKey(service.db, merchant.id, created.hash, created.prefix);
      return { id: merchant.id, key: created.key, api: api(created.key) };
    },
    operator: async (name = `operator-${Date.now()}`) => {
      const created = newOperatorKey();
      await insertOperatorKey(service.db, name, created.hash, created.prefix);
      return { key: created.key, api: api(created.key) };
    },
  }) as TestService;
}

export type ApiResponse<B = any> = Readonly<{ status: number; headers: Headers; body: B; text: string }>;

/** Real HTTP to the service (Node's fetch, undici underneath). */
export class ApiClient {
  readonly baseUrl: string;
  readonly key: string | undefined;

  constructor(baseUrl: string, key?: string) {
    this.baseUrl = baseUrl;
    this.key = key;
  }

  async request(
    method: string,
    path: string,
    options: { body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string> } = {},
  ): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...(this.key ? { Authorization: `Bearer ${this.key}` } : {}) };
    let body: string | Uint8Array | undefined;
    if (options.raw !== undefined) body = options.raw;
    else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['Content-Type'] = 'application/json';
    }
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { ...headers, ...options.headers },
      body,
    });
    const text = await response.text();
    let parsed: unknown = text;
    if (/json/.test(response.headers.get('content-type') ?? '')) parsed = JSON.parse(text);
    return { status: response.status, headers: response.headers, body: parsed, text };
  }

  createOrder(
    body: unknown,
    idempotencyKey: string | null = crypto.randomUUID(),
    headers: Record<string, string> = {},
  ) {
    return this.request('POST', '/payment-orders', {
      body,
      headers: { ...(idempotencyKey === null ? {} : { 'Idempotency-Key': idempotencyKey }), ...headers },
    });
  }

  get(path: string) {
    return this.request('GET', path);
  }
}

export const card = { type: 'card', token: 'pm_card_visa' } as const;
export const validOrder = { amount: 1050, currency: 'usd', paymentMethod: card } as const;
