import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import t from 'tap';
import { newId } from '../src/lib/ids.ts';
import { type ApiClient, startTestService } from './helpers/service.ts';
import { startSubscriber } from './helpers/subscriber.ts';

// POST /webhook-subscriptions/{id}/test: a signed `webhook.test` event to that one endpoint, now,
// answered with the endpoint's answer; it leaves no row anywhere and changes nothing.
const service = await startTestService(t, { WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8', WEBHOOK_TIMEOUT_MS: '1000' });
const { api } = await service.merchant();

async function subscribe(client: ApiClient, url: string) {
  const res = await client.request('POST', '/webhook-subscriptions', { body: { url } });
  if (res.status !== 201) throw new Error(`subscription not created: ${res.text}`);
  return res.body as { id: string; secret: string };
}

const sendTest = (id: string, body?: unknown) =>
  api.request('POST', `/webhook-subscriptions/${id}/test`, body === undefined ? {} : { body });

/** Rows that any event or delivery would leave. */
const traces = async () => ({
  events: await service.database.count('outbox_events'),
  deliveries: await service.database.count('webhook_deliveries'),
  attempts: await service.database.count('webhook_delivery_attempts'),
});

t.test('a 2xx: delivered, signed per Standard Webhooks, and no trace of it', async (t) => {
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(api, subscriber.url);
  const before = await traces();
  const res = await sendTest(sub.id);
  t.equal(res.status, 200);
  t.match(res.body, {
    object: 'webhook_test',
    subscriptionId: sub.id,
    eventId: /^evt_[0-9a-z]{26}$/,
    type: 'webhook.test',
    delivered: true,
    statusCode: 200,
    error: null,
  });
  t.ok(Number.isInteger(res.body.latencyMs) && res.body.latencyMs >= 0, 'latency in whole ms');
  t.equal(subscriber.received.length, 1, 'sent once, at once');
  const [received] = subscriber.received;
  const body = new Webhook(sub.secret).verify(received?.body ?? '', received?.headers as Record<string, string>);
  t.match(body, {
    id: res.body.eventId,
    type: 'webhook.test',
    createdAt: /^\d{4}-\d\d-\d\dT/,
    data: { object: 'webhook_test', subscriptionId: sub.id },
  });
  t.equal(received?.headers['webhook-id'], res.body.eventId);
  t.match(received?.headers['user-agent'], /^payment-order-gateway-webhooks\//);
  t.same(await traces(), before, 'no outbox row (no event log, no Kafka, no relay), no delivery, no attempt');
  t.equal((await api.get(`/events/${res.body.eventId}`)).status, 404, 'not in the event log');

  const empty = await sendTest(sub.id, {});
  t.equal(empty.status, 200, 'an empty JSON object is fine too');
  t.not(empty.body.eventId, res.body.eventId, 'each test is a new event id');
});

t.test("the endpoint's failures are reported, and change nothing", async (t) => {
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(api, subscriber.url);
  for (const status of [500, 410, 302, 429]) {
    subscriber.script.push(status);
    const res = await sendTest(sub.id);
    t.equal(res.status, 200, `${status}: the test itself worked`);
    t.match(res.body, { delivered: false, statusCode: status, error: `HTTP ${status}` }, String(status));
  }
  const after = (await api.get(`/webhook-subscriptions/${sub.id}`)).body;
  t.match(after, { enabled: true, disabledReason: null }, 'a 410 to a test does not switch the endpoint off');

  const closed = await startSubscriber(t);
  await new Promise<void>((resolve) => closed.server.close(() => resolve()));
  const down = await sendTest((await subscribe(api, closed.url)).id);
  t.match(down.body, { delivered: false, statusCode: null, error: 'ECONNREFUSED' });

  // An endpoint that never answers: the delivery timeout (WEBHOOK_TIMEOUT_MS, 1 s here) applies.
  const silent = createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const slow = await subscribe(api, `http://127.0.0.1:${(silent.address() as AddressInfo).port}/hooks`);
  const timedOut = await sendTest(slow.id);
  t.match(timedOut.body, { delivered: false, statusCode: null, error: 'timeout after 1000 ms' });
  t.ok(timedOut.body.latencyMs >= 900, `gave up after ${timedOut.body.latencyMs} ms`);
});

t.test('through the SSRF-safe connector: a forbidden address is refused at connect time', async (t) => {
  const sub = await subscribe(api, 'http://127.0.0.1:9/hooks');
  // As if its name now resolved elsewhere: the URL check at creation cannot see that, the connector does.
  await service.database.pool.query('update webhook_subscriptions set url = $2 where id = $1', [
    sub.id,
    'http://169.254.169.254/latest/meta-data',
  ]);
  const res = await sendTest(sub.id);
  t.equal(res.status, 200);
  t.match(res.body, {
    delivered: false,
    statusCode: null,
    error: /^refused: refusing to connect to 169\.254\.169\.254/,
  });
});

t.test('during a secret rotation it is signed with both secrets; a disabled endpoint can be tested', async (t) => {
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(api, subscriber.url);
  const rotated = await api.request('POST', `/webhook-subscriptions/${sub.id}/rotate-secret`);
  t.equal(rotated.status, 200);
  await api.request('PATCH', `/webhook-subscriptions/${sub.id}`, { body: { enabled: false } });
  const res = await sendTest(sub.id);
  t.match(res.body, { delivered: true, statusCode: 200 });
  const [received] = subscriber.received;
  const headers = received?.headers as Record<string, string>;
  t.equal(headers['webhook-signature']?.split(' ').length, 2);
  for (const secret of [sub.secret, rotated.body.secret as string]) {
    t.ok(new Webhook(secret).verify(received?.body ?? '', headers), 'verifies with each live secret');
  }
  t.match((await api.get(`/webhook-subscriptions/${sub.id}`)).body, { enabled: false }, 'still off');
});

t.test('refused: a body with fields, not JSON, an unknown or foreign endpoint', async (t) => {
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(api, subscriber.url);
  const withField = await sendTest(sub.id, { eventType: 'payment_order.completed' });
  t.equal(withField.status, 400);
  t.match(withField.body, { code: 'validation_failed', errors: [{ path: 'eventType', code: 'unknown_field' }] });
  const notJson = await api.request('POST', `/webhook-subscriptions/${sub.id}/test`, {
    raw: 'x',
    headers: { 'content-type': 'text/plain' },
  });
  t.equal(notJson.status, 415);
  t.equal((await sendTest(newId('whs'))).status, 404);
  t.equal((await sendTest('not-an-id')).status, 404);
  const other = await service.merchant();
  const foreign = await other.api.request('POST', `/webhook-subscriptions/${sub.id}/test`);
  t.equal(foreign.status, 404);
  t.equal(foreign.body.code, 'resource_missing');
  t.equal(subscriber.received.length, 0, 'nothing was sent');
  const unauthenticated = await service.api().request('POST', `/webhook-subscriptions/${sub.id}/test`);
  t.equal(unauthenticated.status, 401);
});
