import t from 'tap';
import { card, startTestService, validOrder } from './helpers/service.ts';

const service = await startTestService(t);
const { api } = await service.merchant();

t.test('POST /payment-orders creates a PENDING order with its transition and its job', async (t) => {
  const res = await api.createOrder({
    ...validOrder,
    reference: 'inv-1001',
    description: 'Two coffees',
    // Built with JSON.parse: an object literal would treat __proto__ as the prototype, not a key.
    metadata: JSON.parse('{"cart":"c-7","__proto__":"harmless","constructor":"also harmless"}'),
  });
  t.equal(res.status, 201);
  t.match(res.headers.get('content-type'), /^application\/json/);
  const order = res.body;
  t.match(order.id, /^po_[0-9a-z]{26}$/);
  t.equal(res.headers.get('location'), `/payment-orders/${order.id}`);
  t.equal(res.headers.get('idempotent-replayed'), null);
  t.match(order, {
    object: 'payment_order',
    status: 'PENDING',
    amount: 1050,
    currency: 'USD',
    provider: 'stripe',
    paymentMethod: card,
    reference: 'inv-1001',
    description: 'Two coffees',
    providerReference: null,
    failure: null,
    attempts: [],
    history: [{ from: null, to: 'PENDING', reason: 'accepted' }],
  });
  t.same(Object.keys(order.metadata).sort(), ['__proto__', 'cart', 'constructor']);
  t.equal(order.metadata.__proto__, 'harmless');
  t.equal(Object.getPrototypeOf({}).polluted, undefined);

  const [row] = await service.database.rows('select * from payment_orders where id = $1', [order.id]);
  t.match(row, { status: 'PENDING', amount: '1050', currency: 'USD', provider: 'stripe' });
  t.equal(row?.metadata.__proto__, 'harmless');
  t.equal(await service.database.count('payment_order_transitions', 'order_id = $1', [order.id]), 1);
  t.equal(
    await service.database.count('pgboss.job', "name = 'payment-orders.process' and data->>'orderId' = $1", [order.id]),
    1,
  );
});

t.test('GET /payment-orders/{id} returns the order with its history', async (t) => {
  const created = (await api.createOrder(validOrder)).body;
  const res = await api.get(`/payment-orders/${created.id}`);
  t.equal(res.status, 200);
  t.match(res.body, { id: created.id, status: 'PENDING', amount: 1050, currency: 'USD', attempts: [] });
  t.same(
    res.body.history.map((h: { to: string }) => h.to),
    ['PENDING'],
  );
  t.same(res.body.createdAt, created.createdAt);
});

t.test('an unknown or malformed id answers 404 problem+json', async (t) => {
  for (const id of ['po_01aaaaaaaaaaaaaaaaaaaaaaaa', 'nope', 'po_%27%3B--']) {
    const res = await api.get(`/payment-orders/${id}`);
    t.equal(res.status, 404, id);
    t.match(res.headers.get('content-type'), /^application\/problem\+json/);
    t.equal(res.body.code, 'resource_missing');
  }
});

t.test('currency is case-insensitive in, upper-case stored and returned', async (t) => {
  const res = await api.createOrder({ amount: 500, currency: 'eUr', paymentMethod: card });
  t.equal(res.status, 201);
  t.equal(res.body.currency, 'EUR');
});

t.test('routing: KES goes to mpesa by default, others to stripe; an explicit provider wins', async (t) => {
  const kes = await api.createOrder({
    amount: 10100,
    currency: 'KES',
    paymentMethod: { type: 'mpesa', phone: '+254708374149' },
  });
  t.equal(kes.status, 201);
  t.equal(kes.body.provider, 'mpesa');
  t.same(kes.body.paymentMethod, { type: 'mpesa', phone: '254708374149' }, 'phone stored as E.164 digits');
  const kesByCard = await api.createOrder({ amount: 10150, currency: 'KES', provider: 'stripe', paymentMethod: card });
  t.equal(kesByCard.status, 201);
  t.equal(kesByCard.body.provider, 'stripe');
});

t.test('provider rules are checked before anything is stored', async (t) => {
  const before = await service.database.count('payment_orders');
  const cases = [
    [{ amount: 100, currency: 'USD', provider: 'paypal' }, 'unknown_provider'],
    [{ amount: 10150, currency: 'KES', paymentMethod: { type: 'mpesa', phone: '254708374149' } }, 'amount_invalid'],
    [{ amount: 10000, currency: 'USD', provider: 'mpesa' }, 'currency_unsupported'],
    [{ amount: 10000, currency: 'KES', paymentMethod: card }, 'payment_method_unsupported'],
  ] as const;
  for (const [body, code] of cases) {
    const res = await api.createOrder(body);
    t.equal(res.status, 400, code);
    t.equal(res.body.code, code);
    t.match(res.headers.get('content-type'), /^application\/problem\+json/);
  }
  t.equal(await service.database.count('payment_orders'), before);
});

t.test('amount bounds: 1 .. 2^53 - 1 pass validation; then the provider maximum applies', async (t) => {
  // Stripe's largest IDR amount (12 digits) is past 2^32: stored exactly in a bigint.
  for (const [amount, currency] of [
    [1, 'JPY'],
    [999_999_999_999, 'IDR'],
  ] as const) {
    const res = await api.createOrder({ amount, currency, paymentMethod: card });
    t.equal(res.status, 201, String(amount));
    t.equal(res.body.amount, amount);
    const [row] = await service.database.rows('select amount::text from payment_orders where id = $1', [res.body.id]);
    t.equal(row?.amount, String(amount), 'stored exactly');
  }
  // 2^53 - 1 is a valid amount (2^53 is not: bad-input.test.ts) that no Stripe currency can take.
  const largest = await api.createOrder({ amount: Number.MAX_SAFE_INTEGER, currency: 'JPY', paymentMethod: card });
  t.equal(largest.status, 400);
  t.match(largest.body, { code: 'amount_invalid', param: 'amount' });
});
