import { randomBytes } from 'node:crypto';
import t from 'tap';
import { startProcessing } from './helpers/processing.ts';
import { ApiClient, startTestService } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

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
    req: { id: requestId, method: 'POST', route: '/payment-orders' },
    res: { statusCode: 201 },
    merchantId: merchant.id,
  });
  t.ok(
    service.logs.some((l) => l.includes('"level":50') && l.includes('injected')),
    'the 500 is logged with its cause',
  );
});

t.test('M-Pesa callback tokens never reach the logs, whatever the callback did', async (t) => {
  // Its own service with workers and a sandbox: an order must really be pushed to hold a token.
  // The sandbox sends no callback and the service waits a minute before asking, so it stays in flight.
  const { service, sandbox, api } = await startProcessing(t, {
    LOG_LEVEL: 'trace',
    MPESA_CALLBACK_TIMEOUT_SECONDS: '60',
  });
  await sandbox.switches({ mpesaCallback: 'missing' });
  const pushed = async () => {
    const created = await api.createOrder({ amount: 10100, currency: 'KES', paymentMethod: { type: 'mpesa', phone } });
    t.equal(created.status, 201);
    return waitFor('the push to M-Pesa', async () => {
      const [row] = await service.database.rows(
        'select callback_token, provider_reference from payment_orders where id = $1',
        [created.body.id],
      );
      return row?.callback_token && row.provider_reference
        ? { token: row.callback_token as string, checkoutRequestId: row.provider_reference as string }
        : undefined;
    });
  };
  const first = await pushed();
  const second = await pushed();
  const random = randomBytes(24).toString('base64url');
  const body = (checkoutRequestId: string) => ({
    Body: {
      stkCallback: {
        MerchantRequestID: 'm',
        CheckoutRequestID: checkoutRequestId,
        ResultCode: 0,
        ResultDesc: 'The service request is processed successfully.',
        CallbackMetadata: {
          Item: [
            { Name: 'MpesaReceiptNumber', Value: 'QLOG000001' },
            { Name: 'Amount', Value: 101 },
          ],
        },
      },
    },
  });
  const anonymous = service.api();
  const post = (path: string, payload: unknown = body(first.checkoutRequestId)) =>
    anonymous.request('POST', path, { body: payload });

  const real = await post(`/callbacks/mpesa/${first.token}`);
  t.equal(real.status, 200, "the order's own callback is acknowledged");
  t.equal((await post(`/callbacks/mpesa/${random}`)).status, 404, 'a random token: 404');
  t.equal((await post(`/callbacks/mpesa/${first.token}`, { hello: 1 })).status, 400, 'a malformed callback: 400');
  t.equal((await post(`/callbacks/mpesa/${first.token}%zz`)).status, 400, 'a malformed path: 400');
  t.equal((await anonymous.get(`/callbacks/mpesa/${random}`)).status, 401, 'GET on a token path: unmatched');
  // A failure inside the route (500) logs its error: that line must not carry the token either.
  await service.database.pool.query(`create function test_fail_update() returns trigger language plpgsql as $$
    begin raise exception 'injected'; end $$`);
  await service.database.pool.query(
    'create trigger test_fail_update before update on payment_orders for each row execute function test_fail_update()',
  );
  t.teardown(() => service.database.pool.query('drop trigger if exists test_fail_update on payment_orders'));
  const failed = await post(`/callbacks/mpesa/${second.token}`, body(second.checkoutRequestId));
  t.ok(failed.status === 500 || failed.status === 200, `a failing or recorded callback (${failed.status})`);

  const lines = service.logs;
  for (const [name, token] of [
    ["the in-flight order's token", first.token],
    ["the second order's token", second.token],
    ['a random token', random],
  ] as const) {
    t.notOk(
      lines.some((line) => line.includes(token) || line.includes(token.slice(0, 16))),
      `${name} is in no log line`,
    );
  }
  const requests = lines.map((line) => JSON.parse(line)).filter((line) => line.req?.method);
  t.ok(
    requests.some((line) => line.req.method === 'POST' && line.req.route === '/callbacks/mpesa/:token'),
    'callbacks are logged by their route pattern',
  );
  t.ok(
    requests.some((line) => line.req.route === 'unmatched' && line.req.path === '/callbacks/mpesa/*'),
    'an unmatched request by its path with the token starred',
  );
  t.notOk(
    requests.some((line) => 'url' in line.req),
    'no request line carries its URL',
  );
});
