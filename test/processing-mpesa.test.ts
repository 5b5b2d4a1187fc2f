import t from 'tap';
import { startProcessing } from './helpers/processing.ts';
import { waitFor } from './helpers/wait.ts';

const { service, sandbox, api, terminal } = await startProcessing(t, { PROVIDER_MAX_ATTEMPTS: '4' });
t.beforeEach(() => sandbox.reset());

const PAYS = '254708374149';
const CANCELS = '254708371032';

const order = async (phone = PAYS, amount = 10100) => {
  const res = await api.createOrder({ amount, currency: 'KES', paymentMethod: { type: 'mpesa', phone } });
  t.equal(res.status, 201);
  t.equal(res.body.provider, 'mpesa');
  return res.body.id as string;
};
const pushes = async (orderId: string) => (await sandbox.chargesFor(orderId)).filter((e) => e.provider === 'mpesa');
const mainCalls = <T extends { kind: string }>(attempts: T[]) => attempts.filter((a) => a.kind !== 'token');
const transitions = (orderId: string) =>
  service.database.count('payment_order_transitions', 'order_id = $1', [orderId]);

t.test('success through the callback: token, one push, COMPLETED with the M-Pesa receipt', async (t) => {
  const id = await order();
  const done = await terminal(id);
  t.match(done, { status: 'COMPLETED', providerReference: /^[A-Z0-9]{10}$/, failure: null });
  t.match(mainCalls(done.attempts), [{ kind: 'charge', outcome: 'pending', httpStatus: 200 }]);
  t.match(done.history.at(-1), { from: 'PROCESSING', to: 'COMPLETED', reason: 'callback: succeeded' });
  const [push] = await pushes(id);
  t.match(push, { status: 'charged', amount: 101, currency: 'KES' });
  t.equal((await pushes(id)).length, 1);
  const [event] = await service.database.rows('select * from outbox_events where order_id = $1', [id]);
  t.match(event, { type: 'payment_order.completed', payload: { status: 'COMPLETED', amount: 10100 } });
});

t.test('the customer cancels: FAILED with the result code', async (t) => {
  const id = await order(CANCELS);
  const done = await terminal(id);
  t.match(done, { status: 'FAILED', failure: { code: 'cancelled_by_customer', message: /cancelled/i } });
  t.match((await service.database.rows('select type from outbox_events where order_id = $1', [id]))[0], {
    type: 'payment_order.failed',
  });
});

t.test('5xx on the push, then success: pushed again only because the first was refused', async (t) => {
  await sandbox.switches({ failNext: 1, faultPaths: ['/mpesa/stkpush'] });
  const id = await order();
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  t.match(mainCalls(done.attempts), [
    { kind: 'charge', outcome: 'retry', httpStatus: 500 },
    { kind: 'charge', outcome: 'pending' },
  ]);
  t.equal((await pushes(id)).length, 1, 'one push reached M-Pesa');
});

t.test('429 with Retry-After on the push: waits, then pushes', async (t) => {
  await sandbox.switches({ rateLimitNext: 1, retryAfterSeconds: 1, faultPaths: ['/mpesa/stkpush'] });
  const id = await order();
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  const [first, second] = mainCalls(done.attempts) as unknown as Array<{ startedAt: string; httpStatus: number }>;
  t.equal(first?.httpStatus, 429);
  t.ok(Date.parse(second?.startedAt ?? '') - Date.parse(first?.startedAt ?? '') >= 1000, 'Retry-After honoured');
  t.equal((await pushes(id)).length, 1);
});

t.test('late callback: the STK query answers first; the late callback changes nothing', async (t) => {
  await sandbox.switches({ mpesaCallback: 'late', mpesaLateCallbackDelayMs: 2500 });
  const id = await order();
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  t.match(mainCalls(done.attempts), [
    { kind: 'charge', outcome: 'pending' },
    { kind: 'status', outcome: 'succeeded', httpStatus: 200 },
  ]);
  t.match(done.history.at(-1), { to: 'COMPLETED', reason: 'status: succeeded' });
  const before = await transitions(id);
  // The late callback arrives; the sandbox records its delivery.
  await waitFor('the late callback', async () => {
    const requests = await sandbox.callbackDeliveries();
    return requests.length > 0 ? requests : undefined;
  });
  t.equal(await transitions(id), before, 'no new transition');
  t.equal((await api.get(`/payment-orders/${id}`)).body.status, 'COMPLETED');
  t.equal((await pushes(id)).length, 1);
});

t.test('missing callback: the STK query finds the result', async (t) => {
  await sandbox.switches({ mpesaCallback: 'missing' });
  const id = await order(CANCELS);
  const done = await terminal(id);
  t.match(done, { status: 'FAILED', failure: { code: 'cancelled_by_customer' } });
  t.match(mainCalls(done.attempts).at(-1), { kind: 'status', outcome: 'declined' });
});

t.test('duplicate callback: applied once', async (t) => {
  await sandbox.switches({ mpesaCallback: 'duplicate' });
  const id = await order();
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  await waitFor('both callbacks', async () => ((await sandbox.callbackDeliveries()).length >= 2 ? true : undefined));
  t.same(
    done.history.map((h: { to: string }) => h.to),
    ['PENDING', 'PROCESSING', 'COMPLETED'],
  );
  t.equal(await service.database.count('outbox_events', 'order_id = $1', [id]), 1, 'one event');
});

t.test('lost push response: never pushed again; the callback (its URL names the order) settles it', async (t) => {
  await sandbox.switches({ loseNext: 1, faultPaths: ['/mpesa/stkpush'] });
  const id = await order();
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  t.match(mainCalls(done.attempts), [{ kind: 'charge', outcome: 'unknown' }]);
  t.equal((await pushes(id)).length, 1, 'one push, no second');
});

t.test('push timed out and no callback ever comes: PROCESSING and reconciling, never pushed twice', async (t) => {
  await sandbox.switches({ timeoutNext: 1, faultPaths: ['/mpesa/stkpush'] });
  const id = await order();
  const waiting = await waitFor('reconciling', async () => {
    const res = await api.get(`/payment-orders/${id}`);
    return res.body.reconcilingSince ? res.body : undefined;
  });
  t.equal(waiting.status, 'PROCESSING', 'never FAILED: M-Pesa may have pushed');
  t.match(mainCalls(waiting.attempts), [{ kind: 'charge', outcome: 'unknown', error: /timeout/ }]);
  // Another reconciliation pass comes and goes without a second push.
  await waitFor('another pass', async () => {
    const [row] = await service.database.rows('select processing_generation from payment_orders where id = $1', [id]);
    return row && row.processing_generation >= 3 ? true : undefined;
  });
  t.equal(await service.database.count('provider_attempts', "order_id = $1 and kind = 'charge'", [id]), 1);
  t.equal((await sandbox.requests()).filter((r) => r.kind === 'charge').length, 1);
});

t.test('callbacks for no order in flight answer 404 and change nothing', async (t) => {
  const id = await order();
  await terminal(id);
  const [row] = await service.database.rows('select callback_token from payment_orders where id = $1', [id]);
  const body = (checkoutRequestId: string) => ({
    Body: {
      stkCallback: { MerchantRequestID: 'm', CheckoutRequestID: checkoutRequestId, ResultCode: 0, ResultDesc: 'ok' },
    },
  });
  const anon = service.api();
  const unknown = await anon.request('POST', `/callbacks/mpesa/${'x'.repeat(32)}`, { body: body('ws_CO_1') });
  t.equal(unknown.status, 404);
  const late = await anon.request('POST', `/callbacks/mpesa/${row?.callback_token}`, { body: body('ws_CO_other') });
  t.equal(late.status, 200, 'a callback for a finished order is acknowledged');
  t.match(late.body, { ResultCode: 0 });
  const malformed = await anon.request('POST', `/callbacks/mpesa/${row?.callback_token}`, { body: { hello: 1 } });
  t.equal(malformed.status, 400);
});

t.test('a success callback for an order already FAILED is acknowledged and logged as an error', async (t) => {
  const id = await order(CANCELS);
  const done = await terminal(id);
  t.equal(done.status, 'FAILED');
  const [row] = await service.database.rows(
    'select callback_token, provider_reference from payment_orders where id = $1',
    [id],
  );
  const res = await service.api().request('POST', `/callbacks/mpesa/${row?.callback_token}`, {
    body: {
      Body: {
        stkCallback: {
          MerchantRequestID: 'm',
          CheckoutRequestID: row?.provider_reference,
          ResultCode: 0,
          ResultDesc: 'The service request is processed successfully.',
          CallbackMetadata: { Item: [{ Name: 'MpesaReceiptNumber', Value: 'QLATE00001' }] },
        },
      },
    },
  });
  t.equal(res.status, 200);
  t.equal((await api.get(`/payment-orders/${id}`)).body.status, 'FAILED', 'terminal stays terminal');
  t.ok(
    service.logs.some((l) => l.includes('"level":50') && l.includes('already FAILED') && l.includes('QLATE00001')),
    'logged for people to reconcile',
  );
});

t.test('result codes: only known final failures decline; others are not an answer yet', async (t) => {
  const { parseStkCallback } = await import('../src/providers/mpesa.ts');
  const callback = (code: number) => ({
    Body: { stkCallback: { CheckoutRequestID: 'ws_CO_1', ResultCode: code, ResultDesc: 'x' } },
  });
  t.match(parseStkCallback(callback(1032))?.outcome, { kind: 'declined', code: 'cancelled_by_customer' });
  t.match(parseStkCallback(callback(1))?.outcome, { kind: 'declined', code: 'insufficient_funds' });
  t.match(parseStkCallback(callback(4999))?.outcome, { kind: 'pending' });
  t.match(parseStkCallback(callback(0))?.outcome, { kind: 'succeeded' });
});
