import t from 'tap';
import { ApiClient, startTestService } from './helpers/service.ts';

/** Secrets and payment method details must never reach the logs, whatever the request did. */
const service = await startTestService(t, { LOG_LEVEL: 'trace' });
const merchant = await service.merchant();
const token = 'pm_card_secret_token_4242';
const phone = '254711222333';

t.test('the log carries request ids and merchants, never keys or payment methods', async (t) => {
  const requestId = 'log-check-1';
  const created = await merchant.api.createOrder(
    { amount: 100, currency: 'USD', paymentMethod: { type: 'card', token } },
    'log-1',
    {
      'X-Request-Id': requestId,
    },
  );
  t.equal(created.status, 201);
  await merchant.api.createOrder({ amount: 10000, currency: 'KES', paymentMethod: { type: 'mpesa', phone } });
  await merchant.api.createOrder({ amount: 1.5, currency: 'KES', paymentMethod: { type: 'mpesa', phone } });
  await new ApiClient(service.url, `${merchant.key.slice(0, -2)}xx`).get('/payment-orders');

  // A failing create (500) logs its error; that line must not carry the request either.
  await service.database.pool.query(`create function test_fail() returns trigger language plpgsql as $$
    begin raise exception 'injected'; end $$`);
  await service.database.pool.query(
    'create trigger test_fail before insert on payment_orders for each row execute function test_fail()',
  );
  t.equal(
    (await merchant.api.createOrder({ amount: 100, currency: 'USD', paymentMethod: { type: 'card', token } })).status,
    500,
  );

  const logs = service.logs.join('');
  t.ok(service.logs.length > 5, 'there are logs to look at');
  for (const secret of [merchant.key, merchant.key.slice(3, 20), token, phone, 'Bearer']) {
    t.notMatch(logs, secret, `no ${secret.slice(0, 8)}... in the logs`);
  }
  const line = service.logs.map((l) => JSON.parse(l)).find((l) => l.req?.id === requestId);
  t.match(line, {
    req: { id: requestId, method: 'POST', url: '/payment-orders' },
    res: { statusCode: 201 },
    merchantId: merchant.id,
  });
  t.ok(
    service.logs.some((l) => l.includes('"level":50') && l.includes('injected')),
    'the 500 is logged with its cause',
  );
});
