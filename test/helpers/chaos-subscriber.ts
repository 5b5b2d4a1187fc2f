import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { Test } from 'tap';

/**
 * How the subscriber answers right now: `ok` 200; `error` 500; `throttle` 429 + Retry-After: 1;
 * `slow` 200 but only after `slowMs` (longer than the gateway's WEBHOOK_TIMEOUT_MS, so the
 * gateway has given up: not an acknowledgement); `reset` the connection is cut unanswered.
 */
export type SubscriberMode = 'ok' | 'error' | 'throttle' | 'slow' | 'reset';

/** One request the subscriber received: its own log, which the checks read. */
export type ReceivedWebhook = Readonly<{
  atMs: number;
  webhookId: string | null;
  eventId: string | null;
  type: string | null;
  orderId: string | null;
  orderStatus: string | null;
  review: unknown;
  /** Checked with the `standardwebhooks` package (not our signing code) and the subscription's secret. */
  signatureValid: boolean;
  signatureError: string | null;
  mode: SubscriberMode;
  /** Answered 2xx in time: the subscriber has taken the event. */
  acknowledged: boolean;
}>;

/**
 * A real webhook subscriber on 127.0.0.1 whose behaviour flaps with `setMode`. Every request is
 * logged with what its body says and whether its signature verifies.
 */
export async function startFlappingSubscriber(t: Test, { slowMs }: { slowMs: number }) {
  const received: ReceivedWebhook[] = [];
  const state: { mode: SubscriberMode; verifier: Webhook | null } = { mode: 'ok', verifier: null };
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const mode = state.mode;
      const headers = Object.fromEntries(
        ['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((name) => [name, String(req.headers[name] ?? '')]),
      );
      let signatureError: string | null = null;
      try {
        if (!state.verifier) throw new Error('no secret yet');
        state.verifier.verify(body, headers);
      } catch (error) {
        signatureError = (error as Error).message;
      }
      let event: { id?: string; type?: string; data?: { id?: string; status?: string; review?: unknown } } = {};
      try {
        event = JSON.parse(body);
      } catch {}
      received.push({
        atMs: Date.now(),
        webhookId: headers['webhook-id'] || null,
        eventId: event.id ?? null,
        type: event.type ?? null,
        orderId: event.data?.id ?? null,
        orderStatus: event.data?.status ?? null,
        review: event.data?.review ?? null,
        signatureValid: signatureError === null,
        signatureError,
        mode,
        acknowledged: mode === 'ok',
      });
      answer(mode, res, req.socket, slowMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    get mode() {
      return state.mode;
    },
    setMode(mode: SubscriberMode) {
      state.mode = mode;
    },
    /** The whsec_ secret POST /webhook-subscriptions showed once. */
    setSecret(secret: string) {
      state.verifier = new Webhook(secret);
    },
  };
}

function answer(
  mode: SubscriberMode,
  res: import('node:http').ServerResponse,
  socket: import('node:net').Socket,
  slowMs: number,
): void {
  switch (mode) {
    case 'ok':
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    case 'error':
      res.writeHead(500, { 'content-type': 'text/plain' }).end('flapping');
      return;
    case 'throttle':
      res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '1' }).end('slow down');
      return;
    case 'slow':
      // The behaviour under test, not a wait for a result: the answer comes after the gateway's timeout.
      setTimeout(() => {
        if (!res.destroyed) res.writeHead(200, { 'content-type': 'text/plain' }).end('late');
      }, slowMs).unref();
      return;
    case 'reset':
      socket.destroy();
      return;
  }
}
