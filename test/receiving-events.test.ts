import { type AddressInfo, createServer } from 'node:net';
import t from 'tap';
import { createReceiver, memoryStore } from '../docs/examples/webhook-receiver.ts';
import { startProcessing } from './helpers/processing.ts';
import { waitFor } from './helpers/wait.ts';

// The receiver the "Receiving events" guide shows (docs/examples/webhook-receiver.ts), run against
// the gateway: it verifies real deliveries, keeps a redelivered event once, and refuses a forgery.
const { service, api, terminal } = await startProcessing(t, { WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8' });

t.test("the guide's receiver: verified, once per event, forgeries refused", async (t) => {
  // The receiver needs the subscription's secret, and the subscription the receiver's URL: take a
  // free port first, subscribe, then listen on it.
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/hooks`;
  const sub = await api.request('POST', '/webhook-subscriptions', { body: { url } });
  t.equal(sub.status, 201);
  const store = memoryStore();
  const receiver = createReceiver(sub.body.secret, store);
  await new Promise<void>((resolve) => receiver.listen(port, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

  const order = await api.createOrder({
    amount: 2500,
    currency: 'USD',
    paymentMethod: { type: 'card', token: 'pm_card_visa' },
  });
  await terminal(order.body.id);
  const saved = await waitFor('the receiver to save the event', async () =>
    store.events.find((e) => e.data.id === order.body.id),
  );
  t.equal(saved.type, 'payment_order.completed');
  t.equal(saved.data.status, 'COMPLETED');
  const delivered = await waitFor('the delivery to be recorded as delivered', async () => {
    const res = await api.get(`/webhook-subscriptions/${sub.body.id}/deliveries`);
    return res.body.data.find(
      (d: { eventId: string; status: string }) => d.eventId === saved.id && d.status === 'delivered',
    );
  });
  t.equal(delivered.attempts.at(-1).statusCode, 204, 'the receiver answered 204');

  // The same event again (a redelivery, like a retry after a lost answer): accepted, kept once.
  const again = await api.request('POST', `/events/${saved.id}/redeliver`);
  t.equal(again.status, 202);
  await waitFor('the redelivery to be answered', async () => {
    const res = await api.get(`/webhook-subscriptions/${sub.body.id}/deliveries`);
    const d = res.body.data.find((x: { eventId: string }) => x.eventId === saved.id);
    return d?.status === 'delivered' && d.attemptCount >= 2 ? d : undefined;
  });
  t.equal(store.events.filter((e) => e.id === saved.id).length, 1, 'the redelivered event is kept once');

  // A body that was not signed with the secret is refused, and not saved.
  const forged = JSON.stringify({ ...saved, id: 'evt_forged', data: { ...saved.data, status: 'FAILED' } });
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': 'evt_forged',
      'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
      'webhook-signature': 'v1,' + Buffer.alloc(32).toString('base64'),
    },
    body: forged,
  });
  t.equal(res.status, 400, 'a forged event is refused');
  t.notOk(
    store.events.some((e) => e.id === 'evt_forged'),
    'and not saved',
  );
});

t.test('the guide is served, with the example as it is in the repository', async (t) => {
  const res = await service.api().get('/docs/receiving-events');
  t.equal(res.status, 200);
  t.match(res.text, /Verify the signature, on the raw body/);
  t.match(res.text, /dedupe on webhook-id/);
  t.match(res.text, /Answer 2xx fast/);
  t.match(res.text, /410 Gone unsubscribes/);
  t.match(res.text, /new Webhook\(secret\)/, 'the example code is on the page');
  t.notMatch(res.text, /<script/, 'no script on the guide');
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
