import { Webhook } from 'standardwebhooks';
import t from 'tap';
import { startProcessing } from './helpers/processing.ts';
import { startSubscriber } from './helpers/subscriber.ts';
import { waitFor } from './helpers/wait.ts';

// PATCH /webhook-subscriptions/{id}: change the URL or the event types, turn an endpoint off, and
// on again after it was disabled (by a 410, say) — the change shows in what is delivered next.
const { service, api, terminal } = await startProcessing(t, { WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8' });
const visa = { type: 'card', token: 'pm_card_visa' } as const;

async function paidOrder() {
  const res = await api.createOrder({ amount: 4200, currency: 'USD', paymentMethod: visa });
  return (await terminal(res.body.id)) as { id: string; status: string };
}

async function subscription(url: string) {
  const res = await api.request('POST', '/webhook-subscriptions', { body: { url } });
  t.equal(res.status, 201);
  return res.body as { id: string; secret: string };
}

t.test('url and events change; bad changes are refused and change nothing', async (t) => {
  const sub = await subscription('http://127.0.0.1:9/old');
  const patched = await api.request('PATCH', `/webhook-subscriptions/${sub.id}`, {
    body: { url: 'http://127.0.0.1:9/new', events: ['payment_order.failed'] },
  });
  t.equal(patched.status, 200);
  t.match(patched.body, { id: sub.id, url: 'http://127.0.0.1:9/new', events: ['payment_order.failed'], enabled: true });
  t.notOk('secret' in patched.body, 'the secret is not shown again');
  t.match((await api.get(`/webhook-subscriptions/${sub.id}`)).body, { url: 'http://127.0.0.1:9/new' });

  const cases: Array<[string, unknown, number, string]> = [
    ['empty body', {}, 400, 'validation_failed'],
    ['unknown field', { secret: 'x' }, 400, 'validation_failed'],
    ['unknown event type', { events: ['payment_order.refunded'] }, 400, 'validation_failed'],
    ['no event types', { events: [] }, 400, 'validation_failed'],
    ['enabled not a boolean', { enabled: 'yes' }, 400, 'validation_failed'],
    ['a URL outside the allowed ranges', { url: 'http://10.0.0.1/hooks' }, 400, 'url_not_allowed'],
  ];
  for (const [name, body, status, code] of cases) {
    const res = await api.request('PATCH', `/webhook-subscriptions/${sub.id}`, { body });
    t.equal(res.status, status, name);
    t.equal(res.body.code, code, name);
  }
  t.match((await api.get(`/webhook-subscriptions/${sub.id}`)).body, {
    url: 'http://127.0.0.1:9/new',
    events: ['payment_order.failed'],
  });
  const missing = await api.request('PATCH', `/webhook-subscriptions/whs_${'0'.repeat(26)}`, {
    body: { enabled: true },
  });
  t.equal(missing.status, 404);
  const other = await service.merchant();
  const asOther = await other.api.request('PATCH', `/webhook-subscriptions/${sub.id}`, { body: { enabled: false } });
  t.equal(asOther.status, 404, "another merchant's endpoint is not found");
});

t.test('off, then on again after a 410: only events while on are delivered', async (t) => {
  const subscriber = await startSubscriber(t);
  const sub = await subscription(subscriber.url);
  // The endpoint answers 410 Gone: the gateway disables the subscription.
  subscriber.state.fallback = 410;
  const first = await paidOrder();
  const disabled = await waitFor('the subscription disabled by the 410', async () => {
    const body = (await api.get(`/webhook-subscriptions/${sub.id}`)).body;
    return body.enabled === false ? body : undefined;
  });
  t.ok(disabled.disabledReason, `disabled: ${disabled.disabledReason}`);
  t.ok(subscriber.received.some((r) => JSON.parse(r.body).data.id === first.id));

  subscriber.state.fallback = 200;
  const whileOff = await paidOrder();
  // Its event must have been relayed (matched against the subscriptions) while the endpoint was off.
  await waitFor('the event of the order paid while off to be relayed', async () => {
    const rows = await service.database.rows(
      'select 1 from outbox_events where order_id = $1 and relayed_at is not null',
      [whileOff.id],
    );
    return rows.length > 0;
  });
  const enabled = await api.request('PATCH', `/webhook-subscriptions/${sub.id}`, { body: { enabled: true } });
  t.equal(enabled.status, 200);
  t.match(enabled.body, { enabled: true, disabledReason: null });
  const afterOn = await paidOrder();
  const received = await waitFor('the event after re-enabling', () =>
    subscriber.received.find((r) => JSON.parse(r.body).data.id === afterOn.id),
  );
  const verified = new Webhook(sub.secret).verify(received.body, received.headers as Record<string, string>) as {
    type: string;
  };
  t.equal(verified.type, 'payment_order.completed');
  t.notOk(
    subscriber.received.some((r) => JSON.parse(r.body).data.id === whileOff.id),
    'the event committed while it was off is not sent to it',
  );

  const off = await api.request('PATCH', `/webhook-subscriptions/${sub.id}`, { body: { enabled: false } });
  t.match(off.body, { enabled: false, disabledReason: 'disabled by the merchant' });
});
