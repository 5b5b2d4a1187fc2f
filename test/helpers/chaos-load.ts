import { createHash } from 'node:crypto';
import type { Random } from './chaos-random.ts';

/** One request the chaos test made to a gateway, and what came back: every answer, with its time. */
export type Answer = Readonly<{
  /** Ms since the run's origin, when the request was sent and when its answer (or error) came. */
  sentMs: number;
  doneMs: number;
  instance: number;
  method: string;
  path: string;
  idempotencyKey: string | null;
  /** null: no HTTP answer (connection refused, reset, client timeout): see `error`. */
  status: number | null;
  code: string | null;
  retryAfter: string | null;
  replayed: boolean;
  orderId: string | null;
  /** SHA-256 of a 201's body: a replay must be the first response again, byte for byte. */
  bodyHash: string | null;
  error: string | null;
}>;

export type Sent = Readonly<{ answer: Answer; body: any }>;

/** Gives up on a request after this long (a gateway that hangs is a finding too). */
const CLIENT_TIMEOUT_MS = 15_000;

/** Real HTTP to the gateways; every answer is kept. */
export class HttpRecorder {
  readonly answers: Answer[] = [];
  readonly #originMs: number;
  readonly #apiKey: string;

  constructor(originMs: number, apiKey: string) {
    this.#originMs = originMs;
    this.#apiKey = apiKey;
  }

  async send(
    instance: number,
    baseUrl: string,
    method: string,
    path: string,
    options: { body?: unknown; idempotencyKey?: string } = {},
  ): Promise<Sent> {
    const sentMs = Date.now() - this.#originMs;
    const headers: Record<string, string> = { authorization: `Bearer ${this.#apiKey}` };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.idempotencyKey) headers['idempotency-key'] = options.idempotencyKey;
    const base = { sentMs, instance, method, path, idempotencyKey: options.idempotencyKey ?? null };
    let answer: Answer;
    let body: any = null;
    try {
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
      });
      const text = await response.text();
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      answer = {
        ...base,
        doneMs: Date.now() - this.#originMs,
        status: response.status,
        code: typeof body?.code === 'string' ? body.code : null,
        retryAfter: response.headers.get('retry-after'),
        replayed: response.headers.get('idempotent-replayed') === 'true',
        orderId: method === 'POST' && response.status === 201 && typeof body?.id === 'string' ? body.id : null,
        bodyHash: response.status === 201 ? createHash('sha256').update(text).digest('hex') : null,
        error: null,
      };
    } catch (error) {
      answer = {
        ...base,
        doneMs: Date.now() - this.#originMs,
        status: null,
        code: null,
        retryAfter: null,
        replayed: false,
        orderId: null,
        bodyHash: null,
        error: networkError(error),
      };
    }
    this.answers.push(answer);
    return { answer, body };
  }
}

function networkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string } })?.cause;
  if (cause?.code) return cause.code;
  const name = (error as Error)?.name;
  if (name === 'TimeoutError') return 'client_timeout';
  return (error as Error)?.message ?? String(error);
}

export type OrderKind = 'card_ok' | 'card_declined' | 'mpesa_ok' | 'mpesa_cancelled';

/** The order bodies the merchant sends, by what the sandbox will do with them. */
export function orderBody(kind: OrderKind, random: Random, n: number): Record<string, unknown> {
  const reference = `chaos-${n}`;
  switch (kind) {
    case 'card_ok':
      return {
        amount: random.int(100, 99_999),
        currency: 'USD',
        paymentMethod: { type: 'card', token: 'pm_card_visa' },
        reference,
      };
    case 'card_declined':
      return {
        amount: random.int(100, 99_999),
        currency: 'USD',
        paymentMethod: { type: 'card', token: 'pm_card_chargeDeclined' },
        reference,
      };
    case 'mpesa_ok':
      // Whole shillings only (KES minor units, a multiple of 100).
      return {
        amount: random.int(1, 500) * 100,
        currency: 'KES',
        paymentMethod: { type: 'mpesa', phone: '254708374149' },
        reference,
      };
    case 'mpesa_cancelled':
      // A phone ending 1032: the customer cancels (ResultCode 1032).
      return {
        amount: random.int(1, 500) * 100,
        currency: 'KES',
        paymentMethod: { type: 'mpesa', phone: '254708371032' },
        reference,
      };
  }
}

/**
 * A merchant's create call, as a careful merchant makes it: one idempotency key for the order, and
 * on no answer or a 5xx the same request again on the next instance (after Retry-After, if given,
 * else a short backoff), until a 201 or `budgetMs` has passed. A 4xx ends it (it is a finding: the
 * test only sends valid requests).
 */
export async function createOrderAsMerchant(
  recorder: HttpRecorder,
  instances: Readonly<{ size: number; url(index: number): string }>,
  firstInstance: number,
  idempotencyKey: string,
  body: unknown,
  budgetMs: number,
): Promise<string | null> {
  const deadline = Date.now() + budgetMs;
  for (let attempt = 0; ; attempt++) {
    const instance = (firstInstance + attempt) % instances.size;
    const { answer } = await recorder.send(instance, instances.url(instance), 'POST', '/payment-orders', {
      body,
      idempotencyKey,
    });
    if (answer.status === 201) return answer.orderId;
    if (answer.status !== null && answer.status < 500) return null;
    if (Date.now() > deadline) return null;
    const retryAfterMs = Number(answer.retryAfter) * 1000;
    const backoffMs =
      Number.isFinite(retryAfterMs) && retryAfterMs > 0
        ? Math.min(retryAfterMs, 5_000)
        : Math.min(100 * 2 ** attempt, 2_000);
    // A merchant's retry pacing (part of the load), not a wait for a result.
    await new Promise((resolve) => setTimeout(resolve, answer.status === null && attempt === 0 ? 0 : backoffMs));
  }
}
