import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import t, { type Test } from 'tap';
import { type Dispatcher, request } from 'undici';
import {
  checkWebhookUrl,
  createSafeDispatcher,
  ForbiddenDestinationError,
  forbiddenDestination,
  isForbiddenDestination,
  parseCidrs,
  type UrlPolicy,
} from '../src/webhooks/safe-http.ts';
import { destinationRefusal, isForbiddenAddress, specialRange } from '../src/webhooks/url-policy.ts';

const DEFAULT_POLICY: UrlPolicy = { allowedCidrs: [], allowHttp: false };
/** http allowed, so that what refuses a URL is its address, not its scheme. */
const HTTP_ALLOWED: UrlPolicy = { allowedCidrs: [], allowHttp: true };
/** A refusal happens before any socket is opened: far below the connect timeout. */
const REFUSED_WITHIN_MS = 1_000;

/** A real subscriber on loopback that records every request; /redirect answers 302 to /elsewhere. */
const received: string[] = [];
const subscriber = createServer((req, res) => {
  received.push(req.url ?? '');
  if (req.url === '/redirect') res.writeHead(302, { location: '/elsewhere' }).end();
  else res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
});
await new Promise<void>((resolve) => subscriber.listen(0, '127.0.0.1', resolve));
t.teardown(
  () =>
    new Promise<void>((resolve) => {
      subscriber.closeAllConnections();
      subscriber.close(() => resolve());
    }),
);
const port = (subscriber.address() as AddressInfo).port;
t.beforeEach(() => {
  received.length = 0;
});

/** Bypass URLs aimed at this machine (the subscriber's port): safe to really request. */
const LOOPBACK_BYPASSES = [
  `http://127.0.0.1:${port}/`,
  `http://localhost:${port}/`,
  `http://2130706433:${port}/`,
  `http://0x7f.1:${port}/`,
  `http://0x7f000001:${port}/`,
  `http://0177.0.0.1:${port}/`,
  `http://127.1:${port}/`,
  `http://127.0.0.1.:${port}/`,
  `http://%31%32%37.0.0.1:${port}/`,
  `http://127.0.0.2:${port}/`,
  `http://[::1]:${port}/`,
  `http://[::ffff:127.0.0.1]:${port}/`,
  `http://[::ffff:7f00:1]:${port}/`,
  `http://[0:0:0:0:0:ffff:127.0.0.1]:${port}/`,
  `http://0.0.0.0:${port}/`,
  `http://[::]:${port}/`,
];

/** Special addresses elsewhere: only ever checked, never requested (the network forbids them). */
const REMOTE_BYPASSES = [
  'http://169.254.169.254/latest/meta-data/',
  'http://10.0.0.1/',
  'http://192.168.1.1/',
  'http://172.16.0.1/',
  'http://100.64.0.1/',
  'http://[fe80::1]/',
  'http://[fd00::1]/',
  'http://[fc00::1]/',
  'http://0x0a000001/',
  'http://[::ffff:10.0.0.1]/',
  'http://[::ffff:a9fe:a9fe]/',
  'http://[64:ff9b::a9fe:a9fe]/',
  'http://[64:ff9b::7f00:1]/',
  'http://[2002:a00:1::]/',
  'http://[::7f00:1]/',
  'http://[::ffff:0:7f00:1]/',
  'http://[fec0::1]/',
  'http://[ff02::1]/',
  'http://224.0.0.1/',
  'http://255.255.255.255/',
  'http://240.0.0.1/',
  'http://192.0.2.1/',
];

type Outcome = Readonly<{ status?: number; location?: unknown; error?: unknown; ms: number }>;

async function send(url: string, dispatcher: Dispatcher): Promise<Outcome> {
  const started = performance.now();
  try {
    const response = await request(url, { dispatcher, signal: AbortSignal.timeout(5_000) });
    await response.body.text();
    return { status: response.statusCode, location: response.headers.location, ms: performance.now() - started };
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
}

function safeDispatcher(t: Test, policy: UrlPolicy): Dispatcher {
  const dispatcher = createSafeDispatcher(policy, { connectTimeoutMs: 5_000 });
  t.teardown(() => dispatcher.close());
  return dispatcher;
}

const hostOf = (url: string) => new URL(url).hostname.replace(/^\[|\]$/g, '');

t.test('WHATWG URL parsing canonicalises every IPv4 notation (checkWebhookUrl relies on it)', async (t) => {
  for (const url of [
    'http://2130706433/',
    'http://0x7f.1/',
    'http://0x7f000001/',
    'http://0177.0.0.1/',
    'http://127.1/',
    'http://127.0.0.1./',
    'http://%31%32%37.0.0.1/',
    'http://127。0。0。1/',
  ]) {
    t.equal(new URL(url).hostname, '127.0.0.1', url);
  }
  t.equal(new URL('http://[::ffff:127.0.0.1]/').hostname, '[::ffff:7f00:1]');
  t.equal(new URL('http://[0:0:0:0:0:0:0:1]/').hostname, '[::1]');
});

t.test('checkWebhookUrl refuses every bypass URL with the default policy, and for its address', async (t) => {
  t.ok(LOOPBACK_BYPASSES.length + REMOTE_BYPASSES.length >= 10);
  for (const url of [...LOOPBACK_BYPASSES, ...REMOTE_BYPASSES]) {
    t.not(checkWebhookUrl(url, DEFAULT_POLICY), null, `${url} refused`);
    // Names are only judged at connect time (no DNS here); literals are judged on their address.
    if (hostOf(url) !== 'localhost') t.match(checkWebhookUrl(url, HTTP_ALLOWED), /is not allowed/, url);
  }
  t.match(checkWebhookUrl(`http://localhost:${port}/`, DEFAULT_POLICY), /https/);
  t.equal(checkWebhookUrl(`http://localhost:${port}/`, HTTP_ALLOWED), null, 'a name passes the static check');
  t.match(checkWebhookUrl('http://169.254.169.254/latest/meta-data/', HTTP_ALLOWED), /linkLocal/);
  t.match(checkWebhookUrl('http://[::ffff:7f00:1]/', HTTP_ALLOWED), /loopback/);
  t.same(received, []);
});

t.test('the dispatcher refuses loopback bypasses at connect time, before any request', async (t) => {
  const dispatcher = safeDispatcher(t, HTTP_ALLOWED);
  for (const url of LOOPBACK_BYPASSES) {
    const outcome = await send(url, dispatcher);
    t.ok(outcome.error instanceof ForbiddenDestinationError, `${url} refused (${String(outcome.error)})`);
    t.ok(isForbiddenDestination(outcome.error));
    t.ok(outcome.ms < REFUSED_WITHIN_MS, `${url} refused in ${outcome.ms.toFixed(1)} ms`);
  }
  const viaName = await send(`http://localhost:${port}/`, dispatcher);
  t.match(viaName.error, { address: '127.0.0.1', message: /localhost \(127\.0\.0\.1\): loopback/ });
  t.same(received, [], 'the subscriber received no request');
});

t.test('the address check (run on every resolved address) refuses the remote special ranges', async (t) => {
  for (const url of REMOTE_BYPASSES) {
    const address = hostOf(url);
    t.ok(isForbiddenAddress(address, HTTP_ALLOWED), `${address} forbidden`);
    t.not(destinationRefusal(address, 'https:', HTTP_ALLOWED), null, `${address} refused over https`);
  }
  t.equal(specialRange('169.254.169.254'), 'linkLocal');
  t.equal(specialRange('::ffff:10.0.0.1'), 'private');
  t.equal(specialRange('64:ff9b::a9fe:a9fe'), 'NAT64 of linkLocal 169.254.169.254');
  t.equal(specialRange('2002:7f00:1::'), '6to4 of loopback 127.0.0.1');
  t.equal(specialRange('::7f00:1'), 'not global unicast');
  t.equal(specialRange('not-an-ip'), 'not an IP address');
  t.ok(isForbiddenAddress('not-an-ip', { allowedCidrs: ['0.0.0.0/0', '::/0'], allowHttp: true }));
});

t.test('public addresses pass the address check; http to them still needs allowHttp', async (t) => {
  for (const address of ['8.8.8.8', '93.184.215.14', '2606:4700::1111', '64:ff9b::808:808', '2002:808:808::']) {
    t.equal(specialRange(address), null, `${address} is public`);
    t.notOk(isForbiddenAddress(address, DEFAULT_POLICY));
    t.equal(destinationRefusal(address, 'https:', DEFAULT_POLICY), null);
    t.match(destinationRefusal(address, 'http:', DEFAULT_POLICY), /https/);
    t.equal(destinationRefusal(address, 'http:', HTTP_ALLOWED), null);
  }
  t.equal(checkWebhookUrl('https://93.184.215.14/hook', DEFAULT_POLICY), null);
  t.equal(checkWebhookUrl('https://[2606:4700::1111]:8443/hook', DEFAULT_POLICY), null);
  t.match(checkWebhookUrl('http://93.184.215.14/hook', DEFAULT_POLICY), /https/);
});

t.test('allowedCidrs 127.0.0.0/8: 127.0.0.1 over http is accepted and delivered; ::1 is still refused', async (t) => {
  const policy: UrlPolicy = { allowedCidrs: ['127.0.0.0/8'], allowHttp: false };
  const dispatcher = safeDispatcher(t, policy);
  const allowed = `http://127.0.0.1:${port}/hook`;
  t.equal(checkWebhookUrl(allowed, policy), null);
  t.match(await send(allowed, dispatcher), { status: 200 });
  t.same(received, ['/hook']);

  const ipv6Loopback = `http://[::1]:${port}/v6`;
  t.match(checkWebhookUrl(ipv6Loopback, policy), /loopback/);
  const refused = await send(ipv6Loopback, dispatcher);
  t.ok(isForbiddenDestination(refused.error), String(refused.error));
  t.match(checkWebhookUrl(`http://0.0.0.0:${port}/`, policy), /unspecified/);
  t.ok(isForbiddenDestination((await send(`http://0.0.0.0:${port}/any`, dispatcher)).error));

  // A name is judged on what it resolves to: refused statically (http, no DNS), delivered at connect time.
  t.match(checkWebhookUrl(`http://localhost:${port}/`, policy), /https/);
  t.match(await send(`http://localhost:${port}/by-name`, dispatcher), { status: 200 });
  t.same(received, ['/hook', '/by-name'], 'nothing for the refused URLs');
});

t.test(
  'TLS goes to the checked address with the original name as SNI (and as the name the certificate must match)',
  async (t) => {
    // A TLS server without a certificate: the handshake fails, but only after the ClientHello told it the name.
    const serverNames: string[] = [];
    const tlsServer = createTlsServer({
      SNICallback: (name, done) => {
        serverNames.push(name);
        done(new Error('no certificate here'));
      },
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => tlsServer.close(() => resolve())));
    const tlsPort = (tlsServer.address() as AddressInfo).port;
    const dispatcher = safeDispatcher(t, { allowedCidrs: ['127.0.0.0/8'], allowHttp: false });

    const byName = await send(`https://localhost:${tlsPort}/`, dispatcher);
    t.ok(byName.error && !isForbiddenDestination(byName.error), `allowed, then the handshake failed: ${byName.error}`);
    t.same(serverNames, ['localhost'], 'connected to 127.0.0.1 with SNI localhost');
    await send(`https://127.0.0.1:${tlsPort}/`, dispatcher);
    t.same(serverNames, ['localhost'], 'no SNI for an IP literal');
  },
);

t.test('https is required unless allowed; names are not resolved when a URL is checked', async (t) => {
  t.match(checkWebhookUrl('http://example.com/', DEFAULT_POLICY), /must use https/);
  // checkWebhookUrl is synchronous: it cannot have asked DNS.
  t.equal(checkWebhookUrl('https://example.com/hook', DEFAULT_POLICY), null);
  t.equal(checkWebhookUrl('https://does-not-exist.invalid/hook', DEFAULT_POLICY), null);
  t.equal(checkWebhookUrl('http://example.com/', HTTP_ALLOWED), null);
  t.match(checkWebhookUrl(`http://127.0.0.1:${port}/`, { allowedCidrs: ['::1/128'], allowHttp: false }), /loopback/);
  t.equal(checkWebhookUrl(`http://[::1]:${port}/`, { allowedCidrs: ['::1/128'], allowHttp: false }), null);
});

t.test('redirects are not followed: the client sees the 302, the subscriber one request', async (t) => {
  const dispatcher = safeDispatcher(t, { allowedCidrs: ['127.0.0.0/8'], allowHttp: false });
  t.match(await send(`http://127.0.0.1:${port}/redirect`, dispatcher), { status: 302, location: '/elsewhere' });
  t.same(received, ['/redirect']);
});

t.test('userinfo, other schemes and unparsable URLs are refused', async (t) => {
  const lenient: UrlPolicy = { allowedCidrs: ['0.0.0.0/0', '::/0'], allowHttp: true };
  for (const url of ['https://user:pass@example.com/', 'https://user@example.com/', 'http://:pass@example.com/']) {
    t.match(checkWebhookUrl(url, lenient), /credentials/, url);
  }
  for (const url of [
    'ftp://example.com/',
    'file:///etc/passwd',
    'javascript:alert(1)',
    'data:text/plain,hi',
    'ws://example.com/',
  ]) {
    t.match(checkWebhookUrl(url, lenient), /must use https/, url);
  }
  for (const url of [
    '',
    'not a url',
    'https://',
    'http://exa mple.com/',
    'https://[::1/',
    'http://[fe80::1%25eth0]/',
    '/relative',
  ]) {
    t.equal(checkWebhookUrl(url, lenient), 'not a valid URL', JSON.stringify(url));
  }
});

t.test('parseCidrs reads WEBHOOK_ALLOWED_CIDRS and throws on a bad entry', async (t) => {
  t.same(parseCidrs('127.0.0.0/8,::1/128'), ['127.0.0.0/8', '::1/128']);
  t.same(parseCidrs(' 10.1.0.0/16 , 127.0.0.1 ,, ::1 '), ['10.1.0.0/16', '127.0.0.1/32', '::1/128']);
  t.same(parseCidrs(''), []);
  for (const bad of ['127.0.0.0/33', 'localhost', '0x7f.1/8', '127.1/8', '::1/129', '10.0.0.0/8;rm', '*']) {
    t.throws(() => parseCidrs(bad), /not a CIDR range/, bad);
  }
  t.throws(() => createSafeDispatcher({ allowedCidrs: ['nonsense'], allowHttp: false }), /not a CIDR range/);
});

t.test('isForbiddenDestination looks through the cause chain', async (t) => {
  const refused = new ForbiddenDestinationError('localhost', '127.0.0.1', 'loopback');
  t.ok(isForbiddenDestination(refused));
  t.ok(isForbiddenDestination(new Error('fetch failed', { cause: new Error('connect', { cause: refused }) })));
  t.notOk(isForbiddenDestination(new Error('ECONNREFUSED')));
  t.notOk(isForbiddenDestination('a string'));
  t.notOk(isForbiddenDestination(undefined));
});

t.test('a refusal a merchant reads names their host, not the address it resolved to', async (t) => {
  const error = new ForbiddenDestinationError('db.internal', '10.0.3.7', 'private');
  t.match(error.message, /10\.0\.3\.7/, 'the full message (for our logs) has the address');
  t.equal(error.publicMessage, 'refusing to connect to db.internal: private');
  const wrapped = new Error('fetch failed', { cause: new Error('connect failed', { cause: error }) });
  t.equal(forbiddenDestination(wrapped), error, 'found in the cause chain, as undici wraps it');
});
