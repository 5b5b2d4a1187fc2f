import { Webhook } from 'standardwebhooks';
import t from 'tap';
import { startProcessing } from './helpers/processing.ts';
import { startSubscriber } from './helpers/subscriber.ts';
import { waitFor } from './helpers/wait.ts';

// The operator's webhook actions, across merchants: POST /operator/events/{id}/redeliver and
// POST /operator/webhook-subscriptions/{id}/enable, over real HTTP to a real subscriber.
const { service, api, terminal } = await startProcessing(t, {
  WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
  // The real schedule is immediately, 5 s, 5 min, ...; compressed here.
  WEBHOOK_RETRY_SCHEDULE_SECONDS: '0,0.2,0.2',
});
const operator = await service.operator('on-call');
const visa = { type: 'card', token: 'pm_card_visa' } as const;
const NO_EVENT = `evt_${'0'.repeat(26)}`;
const NO_SUBSCRIPTION = `whs_${'0'.repeat(26)}`;

async function paidOrder() {
  const res = await api.createOrder({ amount: 4200, currency: 'USD', paymentMethod: visa });
  return (await terminal(res.body.id)) as { id: string; status: string };
}

async function subscribe(url: string) {
  const res = await api.request('POST', '/webhook-subscriptions', { body: { url } });
  // Thrown, not asserted: this also runs at the top level, where an assertion would end the root test.
  if (res.status !== 201) throw new Error(`subscription not created: ${res.text}`);
  return res.body as { id: string; secret: string };
}

async function eventOf(orderId: string) {
  const [row] = await waitFor('the order event', () =>
    service.database.rows<{ id: string }>('select id from outbox_events where order_id = $1', [orderId]),
  );
  return row?.id as string;
}

const subscriber = await startSubscriber(t);
const subscription = await subscribe(subscriber.url);
const order = await paidOrder();
const eventId = await eventOf(order.id);
const sentFor = (id: string) => subscriber.received.filter((r) => r.headers['webhook-id'] === id);
await waitFor('the first delivery', () => sentFor(eventId).length >= 1 || undefined);

t.test("an operator redelivers a merchant's event: the subscriber gets it again, same webhook-id", async (t) => {
  const before = sentFor(eventId).length;
  const res = await operator.api.request('POST', `/operator/events/${eventId}/redeliver`);
  t.equal(res.status, 202, 'no body: every matching subscription');
  t.match(res.body, { object: 'list', data: [{ id: /^whd_/, status: 'pending' }] });
  t.equal(res.body.data.length, 1);
  const deliveryId = res.body.data[0].id as string;
  await waitFor('the redelivery', () => sentFor(eventId).length > before || undefined);
  const again = sentFor(eventId).at(-1);
  const verified = new Webhook(subscription.secret).verify(
    again?.body as string,
    again?.headers as Record<string, string>,
  ) as { id: string; data: { id: string } };
  t.equal(verified.id, eventId, 'the same event');
  t.equal(verified.data.id, order.id);

  const named = await operator.api.request('POST', `/operator/events/${eventId}/redeliver`, {
    body: { subscriptionId: subscription.id },
  });
  t.equal(named.status, 202, 'a named subscription');
  t.same(named.body, { object: 'list', data: [{ id: deliveryId, status: 'pending' }] }, 'the same delivery again');
  await waitFor('the second redelivery', () => sentFor(eventId).length > before + 1 || undefined);
  // The delivery row: one per (event, subscription), each send an attempt of it.
  const [delivery] = await waitFor('the delivery recorded as delivered', async () => {
    const rows = await service.database.rows(
      'select id, status, attempt_count from webhook_deliveries where event_id = $1',
      [eventId],
    );
    return rows.length === 1 && rows[0]?.status === 'delivered' && rows[0]?.attempt_count >= 3 ? rows : undefined;
  });
  t.equal(delivery?.id, deliveryId);
  t.equal(await service.database.count('webhook_delivery_attempts', 'delivery_id = $1', [deliveryId]), 3);
});

t.test("a subscription must be the event's merchant's; unknown ids are 404", async (t) => {
  const other = await service.merchant();
  const foreign = await other.api.request('POST', '/webhook-subscriptions', { body: { url: subscriber.url } });
  t.equal(foreign.status, 201);
  const cases: Array<[string, string, unknown]> = [
    ['an unknown event', `/operator/events/${NO_EVENT}/redeliver`, undefined],
    ['a malformed event id', '/operator/events/nope/redeliver', undefined],
    ['an unknown subscription', `/operator/events/${eventId}/redeliver`, { subscriptionId: NO_SUBSCRIPTION }],
    ["another merchant's subscription", `/operator/events/${eventId}/redeliver`, { subscriptionId: foreign.body.id }],
    ['enable an unknown subscription', `/operator/webhook-subscriptions/${NO_SUBSCRIPTION}/enable`, undefined],
    ['enable a malformed id', '/operator/webhook-subscriptions/whs_x/enable', undefined],
  ];
  for (const [name, path, body] of cases) {
    const res = await operator.api.request('POST', path, body === undefined ? {} : { body });
    t.equal(res.status, 404, name);
    t.equal(res.body.code, 'resource_missing', name);
    t.match(res.headers.get('content-type'), /^application\/problem\+json/, name);
  }
  t.equal(
    await service.database.count('webhook_deliveries', 'subscription_id = $1', [foreign.body.id]),
    0,
    "nothing was sent to the other merchant's endpoint",
  );
  // A deleted subscription is gone for operators too.
  const doomed = await subscribe('http://127.0.0.1:9/deleted');
  await api.request('DELETE', `/webhook-subscriptions/${doomed.id}`);
  const deleted = await operator.api.request('POST', `/operator/webhook-subscriptions/${doomed.id}/enable`);
  t.equal(deleted.status, 404, 'a deleted subscription');
});

t.test('bad bodies are refused with a problem', async (t) => {
  const path = `/operator/events/${eventId}/redeliver`;
  const cases: Array<[string, Record<string, unknown>, number, string]> = [
    ['not a subscription id', { body: { subscriptionId: 'nope' } }, 400, 'validation_failed'],
    ['an unknown field', { body: { subscription: subscription.id } }, 400, 'validation_failed'],
    ['not an object', { body: [subscription.id] }, 400, 'validation_failed'],
    [
      'malformed JSON',
      { raw: '{"subscriptionId":', headers: { 'Content-Type': 'application/json' } },
      400,
      'malformed_json',
    ],
    ['not JSON', { raw: 'subscriptionId=x', headers: { 'Content-Type': 'text/plain' } }, 415, 'unsupported_media_type'],
  ];
  const deliveriesBefore = await service.database.count('webhook_delivery_attempts');
  for (const [name, options, status, code] of cases) {
    const res = await operator.api.request('POST', path, options);
    t.equal(res.status, status, name);
    t.equal(res.body.code, code, name);
  }
  const bad = await operator.api.request('POST', path, { body: { subscriptionId: 'nope', x: 1 } });
  t.match(bad.body.errors, [{ path: 'subscriptionId' }, { path: 'x', code: 'unknown_field' }], 'each field named');
  t.equal(await service.database.count('webhook_delivery_attempts'), deliveriesBefore, 'nothing was sent');
});

t.test('merchant keys get 403, no key 401, an unknown operator key 401', async (t) => {
  const merchant = await service.merchant();
  for (const path of [
    `/operator/events/${eventId}/redeliver`,
    `/operator/webhook-subscriptions/${subscription.id}/enable`,
  ]) {
    const asMerchant = await merchant.api.request('POST', path);
    t.equal(asMerchant.status, 403, `${path}: merchant key`);
    t.equal(asMerchant.body.code, 'operator_key_required');
    // The event's own merchant is no operator either.
    t.equal((await api.request('POST', path)).body.code, 'operator_key_required', `${path}: own merchant`);
    const anonymous = await service.api().request('POST', path);
    t.equal(anonymous.status, 401, `${path}: no key`);
    t.equal(anonymous.body.code, 'authentication_required');
    const madeUp = await service.api(`op_${'A'.repeat(43)}`).request('POST', path);
    t.equal(madeUp.status, 401, `${path}: unknown operator key`);
    t.equal(madeUp.body.code, 'invalid_api_key');
  }
});

t.test('re-enable: a subscription disabled by a 410 is on again, its reason cleared', async (t) => {
  const gone = await startSubscriber(t, 410);
  const sub = await subscribe(gone.url);
  const first = await paidOrder();
  const disabled = await waitFor('the subscription disabled by the 410', async () => {
    const body = (await api.get(`/webhook-subscriptions/${sub.id}`)).body;
    return body.enabled === false ? body : undefined;
  });
  t.ok(disabled.disabledReason, `disabled: ${disabled.disabledReason}`);
  t.ok(gone.received.some((r) => JSON.parse(r.body).data.id === first.id));

  gone.state.fallback = 200;
  const res = await operator.api.request('POST', `/operator/webhook-subscriptions/${sub.id}/enable`);
  t.equal(res.status, 200);
  const merchantId = (
    await service.database.rows('select merchant_id from webhook_subscriptions where id = $1', [sub.id])
  )[0]?.merchant_id;
  t.match(res.body, {
    id: sub.id,
    object: 'webhook_subscription',
    url: gone.url,
    enabled: true,
    disabledReason: null,
    merchantId,
  });
  t.notOk('secret' in res.body, 'no secret in the answer');
  t.ok(new Date(res.body.updatedAt) >= new Date(disabled.updatedAt), 'updatedAt moved on');
  t.match(
    (await api.get(`/webhook-subscriptions/${sub.id}`)).body,
    { enabled: true, disabledReason: null },
    'the merchant API shows it on',
  );
  const [row] = await service.database.rows(
    'select enabled, disabled_reason from webhook_subscriptions where id = $1',
    [sub.id],
  );
  t.same(row, { enabled: true, disabled_reason: null });

  const again = await operator.api.request('POST', `/operator/webhook-subscriptions/${sub.id}/enable`);
  t.equal(again.status, 200, 'enabling an enabled subscription is fine');
  t.equal(again.body.enabled, true);

  // It receives what is paid from now on.
  const next = await paidOrder();
  await waitFor('the event after re-enabling', () => gone.received.find((r) => JSON.parse(r.body).data.id === next.id));
  await api.request('DELETE', `/webhook-subscriptions/${sub.id}`);
});
