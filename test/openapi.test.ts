import { readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { pino } from 'pino';
import t from 'tap';
import { openApiText } from '../src/cli/openapi.ts';
import { createApp } from '../src/http/app.ts';
import { ERROR_CODES } from '../src/lib/error-codes.ts';
import { VERSION } from '../src/lib/version.ts';
import { createMetrics } from '../src/metrics/metrics.ts';
import { openApiChecker } from './helpers/openapi.ts';
import { startProcessing } from './helpers/processing.ts';
import type { ApiResponse } from './helpers/service.ts';
import { startSubscriber } from './helpers/subscriber.ts';
import { waitFor } from './helpers/wait.ts';

// The OpenAPI document: current in the repository, valid, naming exactly the routes Express has,
// and true of what the running service answers.
const checker = openApiChecker();
const documented = checker.document;

t.test('the committed openapi.json is what the code generates', async (t) => {
  const committed = readFileSync(new URL('../openapi.json', import.meta.url), 'utf8');
  t.ok(committed === openApiText(), 'openapi.json is stale: run `npm run openapi` and commit it');
});

t.test('the document validates as OpenAPI 3.1 (swagger-parser)', async (t) => {
  const api = (await SwaggerParser.validate(structuredClone(JSON.parse(openApiText())))) as Record<string, any>;
  t.equal(api.openapi, '3.1.0');
  t.equal(api.info.version, VERSION, 'the version is the package version');
  t.same(Object.keys(api.components.securitySchemes).sort(), ['merchantKey', 'operatorKey']);
  t.same(
    Object.keys(api.webhooks).sort(),
    [...new Set(Object.keys(api.webhooks))].sort(),
    'the webhooks section names each event type',
  );
  t.same(api.components.schemas.Problem.properties.code.enum, [...ERROR_CODES], 'every problem code is listed');
});

/** Every (method, path) Express routes, from the app's router stack, in OpenAPI's {param} form. */
function expressRoutes(): Set<string> {
  // The handlers are never called: building the app only wires the routes.
  const deps = new Proxy({} as Record<string, unknown>, {
    get: (_target, name) =>
      name === 'metrics'
        ? { metrics: createMetrics({ kafka: false }) }
        : name === 'logger'
          ? pino({ level: 'silent' })
          : {},
  });
  const app = createApp(deps as never) as unknown as { router: { stack: any[] } };
  const routes = new Set<string>();
  const walk = (stack: any[]) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const method of Object.keys(layer.route.methods)) {
          routes.add(`${method.toUpperCase()} ${String(layer.route.path).replace(/:(\w+)/g, '{$1}')}`);
        }
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk(app.router.stack);
  return routes;
}

/** Swagger UI's own script, served beside its bundle: a file of the page, not an API route. */
const ASSETS = new Set(['GET /docs/swagger-init.js']);

t.test('every Express route is documented, and every documented operation is a route', async (t) => {
  const inExpress = new Set([...expressRoutes()].filter((route) => !ASSETS.has(route)));
  const inDocument = new Set<string>();
  for (const [path, item] of Object.entries(documented.paths as Record<string, Record<string, unknown>>)) {
    for (const method of Object.keys(item)) inDocument.add(`${method.toUpperCase()} ${path}`);
  }
  t.ok(inExpress.size > 20, `${inExpress.size} routes found in Express`);
  t.same([...inExpress].filter((r) => !inDocument.has(r)).sort(), [], 'routes missing from the document');
  t.same([...inDocument].filter((r) => !inExpress.has(r)).sort(), [], 'documented operations with no route');
});

t.test('real responses validate against their documented schemas', async (t) => {
  const { service, api, terminal } = await startProcessing(t, { WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8' });
  const anonymous = service.api();
  let checked = 0;
  const conforms = (method: string, template: string, res: ApiResponse, name = `${method} ${template}`) => {
    const errors = checker.check(method, template, res);
    t.same(errors, [], `${name} → ${res.status} matches the document`);
    checked++;
    return res;
  };

  // Payment orders: created, replayed, read, listed, and refused in several ways.
  const key = crypto.randomUUID();
  const body = {
    amount: 1999,
    currency: 'usd',
    paymentMethod: { type: 'card', token: 'pm_card_visa' },
    reference: 'inv-1',
    metadata: { cart: '42' },
  };
  const created = conforms('POST', '/payment-orders', await api.createOrder(body, key));
  t.equal(created.status, 201);
  conforms('POST', '/payment-orders', await api.createOrder(body, key), 'a replay');
  conforms('POST', '/payment-orders', await api.createOrder({ ...body, amount: 1 }, key), 'a reused key');
  conforms('POST', '/payment-orders', await api.createOrder({ amount: -1, currency: 'x', extra: 1 }), 'bad fields');
  conforms('POST', '/payment-orders', await api.createOrder(body, null), 'no idempotency key');
  conforms('POST', '/payment-orders', await api.createOrder({ ...body, provider: 'paypal' }), 'unknown provider');
  conforms(
    'POST',
    '/payment-orders',
    await api.request('POST', '/payment-orders', {
      raw: '{"amount":',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'k' },
    }),
    'malformed JSON',
  );
  conforms('POST', '/payment-orders', await anonymous.createOrder(body), 'no key');
  const failed = await api.createOrder({ ...body, paymentMethod: { type: 'card', token: 'pm_card_chargeDeclined' } });
  const done = await terminal(created.body.id);
  t.equal(done.status, 'COMPLETED');
  await terminal(failed.body.id);
  conforms('GET', '/payment-orders/{id}', await api.get(`/payment-orders/${created.body.id}`), 'a completed order');
  conforms('GET', '/payment-orders/{id}', await api.get(`/payment-orders/${failed.body.id}`), 'a failed order');
  conforms('GET', '/payment-orders/{id}', await api.get('/payment-orders/po_nope'));
  conforms('GET', '/payment-orders', await api.get('/payment-orders?limit=1'));
  conforms('GET', '/payment-orders', await api.get('/payment-orders?status=nope'), 'a bad filter');

  // Webhook subscriptions, and an event delivered to a real receiver.
  const subscriber = await startSubscriber(t);
  const sub = conforms(
    'POST',
    '/webhook-subscriptions',
    await api.request('POST', '/webhook-subscriptions', { body: { url: subscriber.url } }),
  );
  conforms(
    'POST',
    '/webhook-subscriptions',
    await api.request('POST', '/webhook-subscriptions', { body: { url: 'http://10.0.0.1/x' } }),
    'a refused URL',
  );
  conforms('GET', '/webhook-subscriptions', await api.get('/webhook-subscriptions'));
  conforms('GET', '/webhook-subscriptions/{id}', await api.get(`/webhook-subscriptions/${sub.body.id}`));
  conforms(
    'PATCH',
    '/webhook-subscriptions/{id}',
    await api.request('PATCH', `/webhook-subscriptions/${sub.body.id}`, {
      body: { events: ['payment_order.completed'] },
    }),
  );
  conforms(
    'POST',
    '/webhook-subscriptions/{id}/rotate-secret',
    await api.request('POST', `/webhook-subscriptions/${sub.body.id}/rotate-secret`),
  );
  const another = await api.createOrder(body);
  await terminal(another.body.id);
  await waitFor('a delivery to the subscriber', async () => subscriber.received.length > 0 || undefined);
  conforms(
    'GET',
    '/webhook-subscriptions/{id}/deliveries',
    await api.get(`/webhook-subscriptions/${sub.body.id}/deliveries`),
  );
  conforms(
    'GET',
    '/webhook-subscriptions/{id}/deliveries',
    await api.get(
      `/webhook-subscriptions/${sub.body.id}/deliveries?status=delivered&eventType=payment_order.completed&limit=1`,
    ),
    'deliveries filtered',
  );
  conforms(
    'GET',
    '/webhook-subscriptions/{id}/deliveries',
    await api.get(`/webhook-subscriptions/${sub.body.id}/deliveries?status=lost`),
    'a bad delivery filter',
  );
  conforms(
    'POST',
    '/webhook-subscriptions/{id}/test',
    await api.request('POST', `/webhook-subscriptions/${sub.body.id}/test`),
  );
  conforms(
    'POST',
    '/webhook-subscriptions/{id}/replay',
    await api.request('POST', `/webhook-subscriptions/${sub.body.id}/replay`, {
      body: { since: '2026-01-01T00:00:00Z' },
    }),
  );
  conforms(
    'POST',
    '/webhook-subscriptions/{id}/replay',
    await api.request('POST', `/webhook-subscriptions/${sub.body.id}/replay`, { body: { since: 'yesterday' } }),
    'a bad replay time',
  );

  // The event log and redelivery; the webhook body itself is the EventBody of the webhooks section.
  const events = conforms('GET', '/events', await api.get('/events?limit=2'));
  const eventId = events.body.data[0].id as string;
  conforms('GET', '/events/{id}', await api.get(`/events/${eventId}`));
  conforms('POST', '/events/{id}/redeliver', await api.request('POST', `/events/${eventId}/redeliver`));
  const webhookBody = JSON.parse(subscriber.received[0]?.body ?? '{}');
  const eventBodySchema = checker.document.components.schemas.EventBody;
  t.ok(eventBodySchema, 'EventBody is a component');
  t.same(
    checker.check('GET', '/events/{id}', {
      status: 200,
      headers: new Headers({ 'content-type': 'application/json' }),
      body: { ...webhookBody, object: 'event' },
      text: '',
    }),
    [],
    'a delivered webhook body is the documented event',
  );
  // An endpoint that answers 410 is switched off: the event about it, and a replay refused.
  const gone = await startSubscriber(t, 410);
  const goneSub = await api.request('POST', '/webhook-subscriptions', { body: { url: gone.url } });
  const third = await api.createOrder(body);
  await terminal(third.body.id);
  const disabledEvent = await waitFor('the webhook_subscription.disabled event', async () => {
    const res = await api.get('/events?type=webhook_subscription.disabled');
    return res.body.data.length > 0 ? res : undefined;
  });
  conforms('GET', '/events', disabledEvent, 'the event log of a disabled endpoint');
  t.equal(disabledEvent.body.data[0].data.id, goneSub.body.id);
  conforms('GET', '/events/{id}', await api.get(`/events/${disabledEvent.body.data[0].id}`), 'a subscription event');
  conforms(
    'POST',
    '/webhook-subscriptions/{id}/replay',
    await api.request('POST', `/webhook-subscriptions/${goneSub.body.id}/replay`, {
      body: { since: '2026-01-01T00:00:00Z' },
    }),
    'a replay to a disabled endpoint',
  );
  conforms(
    'DELETE',
    '/webhook-subscriptions/{id}',
    await api.request('DELETE', `/webhook-subscriptions/${sub.body.id}`),
  );

  // Operator routes, callbacks and the service's own routes.
  const operator = await service.operator();
  conforms('GET', '/operator/overview', await operator.api.get('/operator/overview'));
  conforms('GET', '/operator/overview', await operator.api.get('/operator/overview?limit=0'), 'a bad overview query');
  conforms('GET', '/operator/overview', await api.get('/operator/overview'), 'the overview with a merchant key');
  conforms('GET', '/operator/payment-orders/{id}', await operator.api.get(`/operator/payment-orders/${third.body.id}`));
  conforms(
    'GET',
    '/operator/payment-orders/{id}',
    await operator.api.get(`/operator/payment-orders/po_${'0'.repeat(26)}`),
    'the story of no order',
  );
  conforms(
    'POST',
    '/operator/events/{id}/redeliver',
    await operator.api.request('POST', `/operator/events/${eventId}/redeliver`),
  );
  conforms(
    'POST',
    '/operator/events/{id}/redeliver',
    await api.request('POST', `/operator/events/${eventId}/redeliver`),
    'an operator route with a merchant key',
  );
  conforms(
    'POST',
    '/operator/webhook-subscriptions/{id}/enable',
    await operator.api.request('POST', `/operator/webhook-subscriptions/${goneSub.body.id}/enable`),
  );
  conforms(
    'POST',
    '/operator/webhook-subscriptions/{id}/enable',
    await operator.api.request('POST', `/operator/webhook-subscriptions/whs_${'0'.repeat(26)}/enable`),
    'enabling an unknown subscription',
  );
  conforms(
    'POST',
    '/payment-orders/{id}/resolve',
    await operator.api.request('POST', `/payment-orders/${created.body.id}/resolve`, {
      body: { status: 'COMPLETED', note: 'checked' },
    }),
    'resolving a final order',
  );
  conforms(
    'POST',
    '/payment-orders/{id}/resolve',
    await api.request('POST', `/payment-orders/${created.body.id}/resolve`, {
      body: { status: 'COMPLETED', note: 'x' },
    }),
    'a merchant key',
  );
  conforms(
    'POST',
    '/callbacks/mpesa/{token}',
    await anonymous.request('POST', `/callbacks/mpesa/${'a'.repeat(32)}`, {
      body: { Body: { stkCallback: { CheckoutRequestID: 'ws_CO_1', ResultCode: 0 } } },
    }),
    'a callback for no order',
  );
  conforms('GET', '/healthz', await anonymous.get('/healthz'));
  conforms('GET', '/readyz', await anonymous.get('/readyz'));
  conforms('GET', '/metrics', await anonymous.get('/metrics'));
  conforms('GET', '/openapi.json', await anonymous.get('/openapi.json'));
  conforms('GET', '/docs', await anonymous.get('/docs'));
  conforms('GET', '/docs/receiving-events', await anonymous.get('/docs/receiving-events'));
  conforms('GET', '/problems', await anonymous.get('/problems'));
  conforms('GET', '/problems/{code}', await anonymous.get('/problems/validation_failed'));
  conforms('GET', '/problems/{code}', await anonymous.get('/problems/no_such_code'), 'an unknown code');
  t.ok(checked >= 35, `${checked} responses checked`);
});

t.test('GET /openapi.json serves the document', async (t) => {
  const { service } = await startProcessing(t);
  const res = await service.api().get('/openapi.json');
  t.equal(res.status, 200);
  t.same(res.body, JSON.parse(openApiText()));
});

t.test('the checker refuses what the document does not promise', async (t) => {
  // Without this, a checker that passes everything would pass the test above.
  const ok = (body: unknown, status = 200) => ({
    status,
    headers: new Headers({ 'content-type': 'application/json' }),
    body,
    text: JSON.stringify(body),
  });
  t.same(checker.check('GET', '/healthz', ok({ status: 'ok', version: '1' })), []);
  t.not(
    checker.check('GET', '/healthz', ok({ status: 'ok', version: '1', extra: true })).length,
    0,
    'an undocumented field',
  );
  t.not(checker.check('GET', '/healthz', ok({ status: 'ok' })).length, 0, 'a missing field');
  t.not(checker.check('GET', '/healthz', ok({ status: 'ok', version: '1' }, 418)).length, 0, 'an undocumented status');
  t.not(checker.check('GET', '/nowhere', ok({})).length, 0, 'an undocumented path');
});

t.test('each problem type resolves to a page that explains its code', async (t) => {
  const { service } = await startProcessing(t);
  const anonymous = service.api();
  for (const code of ERROR_CODES) {
    const res = await anonymous.get(`/problems/${code}`);
    t.equal(res.status, 200, code);
    t.match(res.headers.get('content-type'), /text\/html/);
    t.match(res.text, new RegExp(`<h1><code>${code}</code></h1>`), `${code}: its page names it`);
    t.match(res.text, /What it means[\s\S]*What to do/, `${code}: meaning and action`);
  }
  // A real problem's type, resolved against the request URL as RFC 9457 says, is such a page.
  const refused = await service.api('sk_nope').get('/payment-orders');
  const page = await fetch(new URL(refused.body.type, `${service.url}/payment-orders`));
  t.equal(page.status, 200);
  t.match(await page.text(), /invalid_api_key/);
});
