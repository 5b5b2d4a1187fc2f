import t, { type Test } from 'tap';
import { type Dispatcher, request } from 'undici';
import { startSandbox } from '../sandbox/sandbox.ts';
import { freePort } from '../src/db/embedded-postgres.ts';
import type { CallTicket, ChargeRequest, ProviderCalls } from '../src/domain/provider.ts';
import { createProviderHttp } from '../src/providers/provider-http.ts';
import { createStripeAdapter } from '../src/providers/stripe.ts';

// provider-http against the real sandbox over real HTTP. The gate is a fake of the ProviderCalls
// port (the database's gate has its own tests): each ticket says when its request may leave.

type Grant = Readonly<{ sendAfterMs: number; sendByMs: number; waitMs?: number }>;

/** A ProviderCalls whose n-th grant (start, then each restart) is `grants[n]`, relative to when it is given. */
function fakeCalls(grants: readonly Grant[]) {
  const given: Array<{ ticket: CallTicket; at: number; restart: boolean }> = [];
  const grant = async (restart: boolean): Promise<CallTicket> => {
    const spec = grants[Math.min(given.length, grants.length - 1)] as Grant;
    if (spec.waitMs) await new Promise((resolve) => setTimeout(resolve, spec.waitMs));
    const now = performance.now();
    const ticket: CallTicket = {
      attemptId: '1',
      attemptNumber: 1,
      startedAt: new Date(),
      sendAfter: now + spec.sendAfterMs,
      sendBy: now + spec.sendByMs,
    };
    given.push({ ticket, at: now, restart });
    return ticket;
  };
  const calls: ProviderCalls = {
    start: () => grant(false),
    restart: () => grant(true),
    finish: async () => {},
  };
  return { calls, given };
}

async function sandboxFor(t: Test, switches = {}) {
  const sandbox = await startSandbox({ switches });
  t.teardown(() => sandbox.stop());
  const http = createProviderHttp({ origin: sandbox.url, timeoutMs: 2000 });
  t.teardown(() => http.close());
  const get = (dispatcher: Dispatcher) =>
    request(`${sandbox.url}/oauth/v1/generate?grant_type=client_credentials`, {
      dispatcher,
      headers: { authorization: `Basic ${Buffer.from('key:secret').toString('base64')}` },
    });
  return { sandbox, http, get };
}

t.test('a request leaves in its send window after the grant, and once', async (t) => {
  const { sandbox, http, get } = await sandboxFor(t);
  const { calls, given } = fakeCalls([{ sendAfterMs: 30, sendByMs: 1000 }]);
  const call = http.call(calls, 'token');
  const response = await call.send(get);
  t.equal(response.statusCode, 200);
  await response.body.text();
  const [arrival] = sandbox.requests();
  const grantedWall = performance.timeOrigin + (given[0]?.at ?? 0);
  t.ok(
    (arrival?.atMs ?? 0) >= Math.floor(grantedWall + 30),
    `not before its window (${((arrival?.atMs ?? 0) - grantedWall).toFixed(1)} ms after the grant)`,
  );
  t.equal(sandbox.requests().length, 1);
  t.equal(await call.ticket(), given[0]?.ticket, 'the ticket is the grant it went out on');
  await t.rejects(call.send(get), /one request/, 'a second request in the same call is refused');
  t.equal(sandbox.requests().length, 1, 'and never sent');
});

t.test('a grant already stale when the request is ready is given back; the request goes out on the next', async (t) => {
  const { sandbox, http, get } = await sandboxFor(t);
  const { calls, given } = fakeCalls([
    { sendAfterMs: -20, sendByMs: -10 },
    { sendAfterMs: 0, sendByMs: 50 },
  ]);
  const call = http.call(calls, 'token');
  const response = await call.send(get);
  await response.body.text();
  t.same(
    given.map((g) => g.restart),
    [false, true],
    'given back once, granted again',
  );
  t.equal(sandbox.requests().length, 1, 'the provider saw one request');
  t.equal(await call.ticket(), given[1]?.ticket, 'on the second grant');
});

t.test('a grant that goes stale between dispatch and write: refused unwritten, connection kept', async (t) => {
  const { sandbox, http, get } = await sandboxFor(t);
  // Warm a connection first.
  const warm = await http.call(fakeCalls([{ sendAfterMs: 0, sendByMs: 50 }]).calls, 'token').send(get);
  await warm.body.text();
  const { calls, given } = fakeCalls([
    { sendAfterMs: 0, sendByMs: 5 },
    { sendAfterMs: 0, sendByMs: 50 },
  ]);
  let stalled = false;
  const response = await http.call(calls, 'token').send((dispatcher) => {
    const sent = get(dispatcher);
    if (!stalled) {
      // The event loop stalls right after the dispatch, before undici writes the request.
      stalled = true;
      const until = performance.now() + 15;
      while (performance.now() < until) {}
    }
    return sent;
  });
  await response.body.text();
  t.equal(given.length, 2, 'given back once');
  const requests = sandbox.requests();
  t.equal(requests.length, 2, 'the warm-up and one request: the refused one never reached the sandbox');
  t.equal(requests[1]?.connection.id, requests[0]?.connection.id, 'sent on the same connection');
});

const charge = (orderId: string): ChargeRequest => ({
  orderId,
  amount: 1000,
  currency: 'USD',
  paymentMethod: { type: 'card', token: 'pm_card_visa' },
  description: null,
  idempotencyKey: `${orderId}-charge`,
  providerReference: null,
  firstCallAt: null,
  callbackUrl: null,
});

t.test('Stripe: the timeout runs from the grant, not through the wait at the gate', async (t) => {
  const sandbox = await startSandbox({ switches: { latencyMs: 100 } });
  t.teardown(() => sandbox.stop());
  const stripe = createStripeAdapter({ secretKey: 'sk_test_x', apiUrl: sandbox.url, timeoutMs: 300 });
  // A 500 ms wait at the gate, longer than the timeout: the call still succeeds.
  const waited = await stripe.charge(
    charge('po_gate_wait'),
    fakeCalls([{ sendAfterMs: 0, sendByMs: 50, waitMs: 500 }]).calls,
  );
  t.match(waited.outcome, { kind: 'succeeded', reference: /^pi_/ });
  // A provider that never answers: the SDK's own timeout error, 300 ms after the grant.
  sandbox.setSwitches({ timeoutNext: 1 });
  const started = performance.now();
  const timedOut = await stripe.charge(charge('po_gate_timeout'), fakeCalls([{ sendAfterMs: 0, sendByMs: 50 }]).calls);
  const tookMs = performance.now() - started;
  t.match(timedOut.outcome, { kind: 'retry', charged: 'unknown', reason: 'connection: ETIMEDOUT' });
  t.match(timedOut.call.error, /timeout being reached \(300ms\)/);
  t.ok(tookMs >= 300 && tookMs < 2000, `timed out after ${tookMs.toFixed(0)} ms`);
});

t.test('Stripe: a refused connection is still a call that never reached Stripe', async (t) => {
  const port = await freePort();
  const stripe = createStripeAdapter({ secretKey: 'sk_test_x', apiUrl: `http://127.0.0.1:${port}`, timeoutMs: 1000 });
  const { calls, given } = fakeCalls([{ sendAfterMs: 0, sendByMs: 50 }]);
  const answer = await stripe.charge(charge('po_refused'), calls);
  t.match(answer.outcome, { kind: 'retry', charged: 'no', reason: 'connection: ECONNREFUSED' });
  t.equal(given.length, 1, 'one grant: recorded as the call it was');
});

t.test('a provider body that is JSON but not an object is an unknown outcome, not a crash', async (t) => {
  const { createServer } = await import('node:http');
  const bodies = ['"x"', 'null', '[]', '42'];
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end(bodies.shift() ?? '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // The adapter's keep-alive and spare connections would hold the close for their lifetime.
        server.closeAllConnections();
      }),
  );
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const stripe = createStripeAdapter({ secretKey: 'sk_test_x', apiUrl: url, timeoutMs: 2000 });
  const request: ChargeRequest = {
    orderId: 'po_1',
    amount: 100,
    currency: 'USD',
    paymentMethod: { type: 'card', token: 'pm_card_visa' },
    description: null,
    idempotencyKey: 'po_1-charge',
    providerReference: null,
    firstCallAt: null,
    callbackUrl: null,
  };
  for (const body of ['"x"', 'null', '[]', '42']) {
    const answer = await stripe.charge(request, fakeCalls([{ sendAfterMs: 0, sendByMs: 1000 }]).calls);
    t.match(answer.outcome, { kind: 'retry', charged: 'unknown' }, `${body}: the provider may have acted`);
    t.equal(answer.call.outcome, 'unknown');
  }
});
