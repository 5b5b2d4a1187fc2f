import { type Dispatcher, request } from 'undici';
import { retryAfterMs } from '../lib/retry-after.ts';
import { VERSION } from '../lib/version.ts';
import { forbiddenDestination } from './safe-http.ts';
import { signWebhook } from './signing.ts';

/** How a signed request goes out: the SSRF-safe dispatcher (safe-http.ts) and a timeout for the whole request. */
export type SendDeps = Readonly<{ dispatcher: Dispatcher; timeoutMs: number }>;

/** What one request got: a status, or the reason there was none (refused, timeout, network). */
export type Sent = Readonly<{
  statusCode: number | null;
  error: string | null;
  retryAfterMs: number | undefined;
  latencyMs: number;
}>;

/** Read at most this much of a subscriber's answer: we only need its status. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * One Standard Webhooks request: POST `body` to `url` with `webhook-id: id`, the timestamp, and
 * the signature with every live secret — the one way any webhook leaves the gateway (deliveries
 * and test events alike). Never throws: every failure is an answer with an error.
 */
export async function sendSigned(
  deps: SendDeps,
  url: string,
  secrets: readonly string[],
  message: Readonly<{ id: string; body: string }>,
): Promise<Sent> {
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = {
    'content-type': 'application/json',
    'user-agent': `payment-order-gateway-webhooks/${VERSION}`,
    'webhook-id': message.id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signWebhook(secrets, message.id, timestamp, message.body),
  };
  const started = performance.now();
  try {
    const response = await request(url, {
      method: 'POST',
      headers,
      body: message.body,
      dispatcher: deps.dispatcher,
      signal: AbortSignal.timeout(deps.timeoutMs),
      // No redirects: a 3xx is an answer like any other non-2xx.
      maxRedirections: 0,
    } as Parameters<typeof request>[1]);
    await drain(response.body);
    const retryAfter = response.headers['retry-after'];
    return {
      statusCode: response.statusCode,
      error: response.statusCode >= 300 ? `HTTP ${response.statusCode}` : null,
      retryAfterMs: retryAfterMs(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter),
      latencyMs: performance.now() - started,
    };
  } catch (error) {
    const e = error as { name?: string; code?: string; message?: string };
    const forbidden = forbiddenDestination(error);
    const reason = forbidden
      ? `refused: ${forbidden.publicMessage}`
      : e.name === 'TimeoutError' || e.name === 'AbortError'
        ? `timeout after ${deps.timeoutMs} ms`
        : (e.code ?? e.message ?? String(error));
    return { statusCode: null, error: reason, retryAfterMs: undefined, latencyMs: performance.now() - started };
  }
}

/** A 2xx: the only answer that counts as delivered. */
export function isSuccess(sent: Pick<Sent, 'statusCode'>): boolean {
  return sent.statusCode !== null && sent.statusCode >= 200 && sent.statusCode < 300;
}

async function drain(body: AsyncIterable<Uint8Array> & { destroy?: () => void }): Promise<void> {
  let read = 0;
  for await (const chunk of body) {
    read += chunk.length;
    if (read > MAX_RESPONSE_BYTES) {
      body.destroy?.();
      return;
    }
  }
}
