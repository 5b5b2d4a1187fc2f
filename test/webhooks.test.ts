import { Webhook } from 'standardwebhooks';
import t, { type Test } from 'tap';
import { VERSION } from '../src/lib/version.ts';
import { startProcessing } from './helpers/processing.ts';
import { startSubscriber } from './helpers/subscriber.ts';
import { waitFor } from './helpers/wait.ts';

const { service, api, terminal } = await startProcessing(t, {
  WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
  // The real schedule is immediately, 5 s, 5 min, ...; compressed here.
  WEBHOOK_RETRY_SCHEDULE_SECONDS: '0,0.2,0.2,0.2,0.2',
});

const visa = { type: 'card', token: 'pm_card_visa' } as const;
const declined = { type: 'card', token: 'pm_card_chargeDeclined' } as const;

async function subscribe(t: Test, url: string, events?: string[]) {
  const res = await api.request('POST', '/webhook-subscriptions', { body: { url, ...(events ? { events } : {}) } });
  t.equal(res.status, 201, 'subscription created', { body: res.body });
  return res.body as { id: string; secret: string; url: string; events: string[]; enabled: boolean };
}

/** Verifies with the reference implementation of the Standard Webhooks spec, not our signing code. */
function verify(secret: string, received: { headers: Record<string, unknown>; body: string }) {
  return new Webhook(secret).verify(received.body, received.headers as Record<string, string>) as {
    id: string;
    type: string;
    createdAt: string;
    data: Record<string, unknown>;
  };
}

/**
 * The subscription's deliveries once `count` of them are no longer pending. A subscriber has the
 * request before its outcome is recorded, so a test that saw the request waits for the record.
 */
async function settledDeliveries(subscriptionId: string, count: number) {
  return waitFor(`${count} settled deliveries`, async () => {
    const { data } = (await api.get(`/webhook-subscriptions/${subscriptionId}/deliveries`)).body;
    return data.filter((d: { status: string }) => d.status !== 'pending').length >= count ? data : undefined;
  });
}

async function orderWith(paymentMethod: object) {
  const res = await api.createOrder({ amount: 4200, currency: 'USD', paymentMethod });
  return (await terminal(res.body.id)) as { id: string; status: string; failure: unknown };
}

t.test('subscriptions: create shows a whsec_ secret once; list, get, delete', async (t) => {
  const sub = await subscribe(t, 'http://127.0.0.1:9/hooks');
  t.match(sub, {
    id: /^whs_/,
    url: 'http://127.0.0.1:9/hooks',
    enabled: true,
    events: ['payment_order.completed', 'payment_order.failed'],
  });
  t.match(sub.secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  t.ok(Buffer.from(sub.secret.slice(6), 'base64').length >= 24);
  const one = await api.get(`/webhook-subscriptions/${sub.id}`);
  t.equal(one.status, 200);
  t.equal(one.body.secret, undefined, 'never shown again');
  t.ok((await api.get('/webhook-subscriptions')).body.data.some((s: { id: string }) => s.id === sub.id));
  const deleted = await api.request('DELETE', `/webhook-subscriptions/${sub.id}`);
  t.match(deleted.body, { id: sub.id, deleted: true });
  t.equal((await api.get(`/webhook-subscriptions/${sub.id}`)).status, 404);
  const other = await service.merchant();
  const mine = await subscribe(t, 'http://127.0.0.1:9/other');
  t.equal((await other.api.get(`/webhook-subscriptions/${mine.id}`)).status, 404, "another merchant's is 404");
  await api.request('DELETE', `/webhook-subscriptions/${mine.id}`);
});

t.test('bad subscriptions are refused', async (t) => {
  for (const [body, code] of [
    [{ url: 'http://example.com/hook' }, 'url_not_allowed'],
    [{ url: 'https://169.254.169.254/latest' }, 'url_not_allowed'],
    [{ url: 'https://user:pw@example.com/' }, 'url_not_allowed'],
    [{ url: 'not a url' }, 'url_not_allowed'],
    [{ url: 'https://example.com/', events: ['payment_order.refunded'] }, 'validation_failed'],
    [{ url: 'https://example.com/', events: [] }, 'validation_failed'],
    [{ url: 'https://example.com/', secret: 'mine' }, 'validation_failed'],
  ] as const) {
    const res = await api.request('POST', '/webhook-subscriptions', { body });
    t.equal(res.status, 400, JSON.stringify(body));
    t.equal(res.body.code, code);
  }
});

t.test('end to end: success → payment_order.completed, decline → payment_order.failed, signed', async (t) => {
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(t, subscriber.url);
  const completed = await orderWith(visa);
  const failed = await orderWith(declined);
  await waitFor('both webhooks', () => subscriber.received.length >= 2 || undefined);
  const bodies = subscriber.received.map((r) => verify(sub.secret, r));
  const byOrder = (id: string) => bodies.find((b) => b.data.id === id);
  t.match(byOrder(completed.id), {
    id: /^evt_/,
    type: 'payment_order.completed',
    data: { id: completed.id, status: 'COMPLETED' },
  });
  t.match(byOrder(failed.id), {
    type: 'payment_order.failed',
    data: { id: failed.id, status: 'FAILED', failure: { code: 'generic_decline' } },
  });
  for (const r of subscriber.received) {
    const body = JSON.parse(r.body);
    t.equal(r.headers['webhook-id'], body.id, 'webhook-id is the event id');
    t.match(r.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/);
    t.equal(r.headers['user-agent'], `payment-order-gateway-webhooks/${VERSION}`, 'the version in the User-Agent');
  }
  const deliveries = await settledDeliveries(sub.id, 2);
  t.equal(deliveries.length, 2);
  t.ok(deliveries.every((d: { status: string }) => d.status === 'delivered'));
  t.match(deliveries[0].attempts, [{ number: 1, statusCode: 200 }]);
  await api.request('DELETE', `/webhook-subscriptions/${sub.id}`);
});

t.test('500 then 200: delivered on retry, same webhook-id', async (t) => {
  const subscriber = await startSubscriber(t);
  subscriber.script.push(500);
  const sub = await subscribe(t, subscriber.url, ['payment_order.completed']);
  await orderWith(visa);
  await waitFor('the retry', () => subscriber.received.length >= 2 || undefined);
  const [first, second] = subscriber.received;
  t.equal(first?.headers['webhook-id'], second?.headers['webhook-id']);
  t.ok(verify(sub.secret, second as never));
  const [delivery] = await settledDeliveries(sub.id, 1);
  t.match(delivery, { status: 'delivered', attemptCount: 2, attempts: [{ statusCode: 500 }, { statusCode: 200 }] });
  await api.request('DELETE', `/webhook-subscriptions/${sub.id}`);
});

t.test('one batch, three answers (200, 500, 410): each delivery gets its own outcome', async (t) => {
  const ok = await startSubscriber(t);
  const flaky = await startSubscriber(t);
  flaky.script.push(500);
  const gone = await startSubscriber(t, 410);
  const subs = {
    ok: await subscribe(t, ok.url, ['payment_order.completed']),
    flaky: await subscribe(t, flaky.url, ['payment_order.completed']),
    gone: await subscribe(t, gone.url, ['payment_order.completed']),
  };
  const order = await orderWith(visa);
  await waitFor('the retry to the flaky subscriber', () => flaky.received.length >= 2 || undefined);
  const deliveryOf = async (id: string) => (await api.get(`/webhook-subscriptions/${id}/deliveries`)).body.data[0];
  const [okDelivery, flakyDelivery, goneDelivery] = await Promise.all([
    deliveryOf(subs.ok.id),
    waitFor('the flaky delivery to be marked', async () => {
      const d = await deliveryOf(subs.flaky.id);
      return d?.status === 'delivered' ? d : undefined;
    }),
    deliveryOf(subs.gone.id),
  ]);
  t.match(okDelivery, { status: 'delivered', attemptCount: 1, attempts: [{ number: 1, statusCode: 200 }] });
  t.match(flakyDelivery, {
    status: 'delivered',
    attemptCount: 2,
    attempts: [
      { number: 1, statusCode: 500, error: 'HTTP 500' },
      { number: 2, statusCode: 200 },
    ],
  });
  t.match(goneDelivery, {
    status: 'cancelled',
    attemptCount: 1,
    lastStatusCode: 410,
    attempts: [{ number: 1, statusCode: 410 }],
  });
  t.match((await api.get(`/webhook-subscriptions/${subs.gone.id}`)).body, { enabled: false });
  t.equal((await api.get(`/webhook-subscriptions/${subs.ok.id}`)).body.enabled, true, 'the others stay enabled');
  t.equal(verify(subs.ok.secret, ok.received[0] as never).data.id, order.id);
  t.equal(verify(subs.flaky.secret, flaky.received[1] as never).data.id, order.id);
  t.equal(verify(subs.gone.secret, gone.received[0] as never).data.id, order.id);
  t.equal(gone.received.length, 1, 'nothing more to the gone endpoint');
  for (const sub of Object.values(subs)) await api.request('DELETE', `/webhook-subscriptions/${sub.id}`);
});

t.test('subscriber down for several attempts, then up: delivered', async (t) => {
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(t, subscriber.url, ['payment_order.completed']);
  await new Promise<void>((resolve) => subscriber.server.close(() => resolve()));
  const order = await orderWith(visa);
  await waitFor('three failed attempts', async () => {
    const [d] = (await api.get(`/webhook-subscriptions/${sub.id}/deliveries`)).body.data;
    return d && d.attemptCount >= 3 ? true : undefined;
  });
  await new Promise<void>((resolve) => subscriber.server.listen(subscriber.port, '127.0.0.1', resolve));
  await waitFor('delivery', () => subscriber.received.length >= 1 || undefined);
  t.equal(verify(sub.secret, subscriber.received[0] as never).data.id, order.id);
  const [delivery] = await settledDeliveries(sub.id, 1);
  t.equal(delivery.status, 'delivered');
  t.ok(
    delivery.attempts
      .slice(0, -1)
      .every((a: { statusCode: number | null; error: string }) => a.statusCode === null && a.error),
  );
  await api.request('DELETE', `/webhook-subscriptions/${sub.id}`);
});

t.test('410 disables the subscription; nothing more is sent to it', async (t) => {
  const subscriber = await startSubscriber(t, 410);
  const sub = await subscribe(t, subscriber.url, ['payment_order.completed']);
  await orderWith(visa);
  await waitFor('disabled', async () =>
    (await api.get(`/webhook-subscriptions/${sub.id}`)).body.enabled === false ? true : undefined,
  );
  t.match((await api.get(`/webhook-subscriptions/${sub.id}`)).body, { enabled: false, disabledReason: /410/ });
  await orderWith(visa);
  t.equal(subscriber.received.length, 1, 'only the attempt that got 410');
});

t.test('429 with Retry-After slows the retry down', async (t) => {
  const subscriber = await startSubscriber(t);
  subscriber.script.push({ status: 429, headers: { 'retry-after': '1' } });
  const sub = await subscribe(t, subscriber.url, ['payment_order.failed']);
  await orderWith(declined);
  await waitFor('the retry', () => subscriber.received.length >= 2 || undefined);
  const gap = (subscriber.received[1]?.at ?? 0) - (subscriber.received[0]?.at ?? 0);
  t.ok(gap >= 1000, `waited ${gap} ms (schedule says 0.2 s, Retry-After 1 s)`);
  await api.request('DELETE', `/webhook-subscriptions/${sub.id}`);
});

t.test('secret rotation: both secrets sign for the overlap', async (t) => {
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(t, subscriber.url, ['payment_order.completed']);
  const rotated = await api.request('POST', `/webhook-subscriptions/${sub.id}/rotate-secret`);
  t.equal(rotated.status, 200);
  t.not(rotated.body.secret, sub.secret);
  await orderWith(visa);
  await waitFor('the webhook', () => subscriber.received.length >= 1 || undefined);
  const received = subscriber.received[0] as never;
  t.ok(verify(sub.secret, received), 'the old secret verifies');
  t.ok(verify(rotated.body.secret, received), 'the new secret verifies');
  t.equal(String((received as { headers: Record<string, string> }).headers['webhook-signature']).split(' ').length, 2);
  await api.request('DELETE', `/webhook-subscriptions/${sub.id}`);
});

t.test('events API: the log, filtered and paginated; redeliver', async (t) => {
  const subscriber = await startSubscriber(t);
  const sub = await subscribe(t, subscriber.url);
  await waitFor(
    'no pending relay',
    async () => (await service.database.count('outbox_events', 'relayed_at is null')) === 0 || undefined,
  );
  // Events are listed once every older transaction on the server has ended (commit order): another
  // test file's open transaction may hold them back for a moment.
  const page = await waitFor('two events listed', async () => {
    const res = await api.get('/events?limit=2');
    return res.body.data?.length === 2 ? res : undefined;
  });
  t.equal(page.status, 200);
  t.equal(page.body.data.length, 2);
  t.match(page.body.data[0], { id: /^evt_/, object: 'event', type: /^payment_order\./, data: { id: /^po_/ } });
  const next = await api.get(`/events?limit=2&startingAfter=${page.body.nextStartingAfter}`);
  t.ok(
    next.body.data.every((e: { id: string }) => e.id < page.body.data[1].id),
    'older events on the next page',
  );
  const failedOnly = await api.get('/events?type=payment_order.failed&limit=100');
  t.ok(
    failedOnly.body.data.length > 0 &&
      failedOnly.body.data.every((e: { type: string }) => e.type === 'payment_order.failed'),
  );
  t.equal((await api.get('/events?type=nope')).status, 400);

  // Redeliver an old event (it predates this subscription) to it.
  const event = page.body.data[0];
  const res = await api.request('POST', `/events/${event.id}/redeliver`, { body: { subscriptionId: sub.id } });
  t.equal(res.status, 202);
  await waitFor(
    'the redelivery',
    () => subscriber.received.some((r) => r.headers['webhook-id'] === event.id) || undefined,
  );
  t.same(
    verify(sub.secret, subscriber.received.find((r) => r.headers['webhook-id'] === event.id) as never).data,
    event.data,
  );
  // Again: the same delivery goes out once more (at least once, same id).
  await api.request('POST', `/events/${event.id}/redeliver`);
  await waitFor(
    'the second redelivery',
    () => subscriber.received.filter((r) => r.headers['webhook-id'] === event.id).length >= 2 || undefined,
  );
  const other = await service.merchant();
  t.equal((await other.api.request('POST', `/events/${event.id}/redeliver`)).status, 404);
  t.equal((await other.api.get(`/events/${event.id}`)).status, 404);
  await api.request('DELETE', `/webhook-subscriptions/${sub.id}`);
});
