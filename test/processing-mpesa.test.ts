import t from 'tap';
import { startProcessing } from './helpers/processing.ts';
import { waitFor } from './helpers/wait.ts';

const { service, sandbox, api, terminal } = await startProcessing(t, {
  PROVIDER_MAX_ATTEMPTS: '4',
  // A push nobody can ask about is flagged after this (5 minutes in production).
  MPESA_PUSH_DEADLINE_SECONDS: '3',
});
t.beforeEach(() => sandbox.reset());
const operator = await service.operator('on-call');

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
const callbacks = (orderId: string) =>
  service.database.rows('select * from provider_callbacks where order_id = $1 order by id', [orderId]);
const events = (orderId: string) =>
  service.database.rows('select type, payload from outbox_events where order_id = $1 order by created_at, id', [
    orderId,
  ]);
const tokenOf = async (orderId: string) =>
  (await service.database.rows('select callback_token from payment_orders where id = $1', [orderId]))[0]
    ?.callback_token as string;
const underReview = (orderId: string) =>
  waitFor(`order ${orderId} to be flagged for review`, async () => {
    const res = await api.get(`/payment-orders/${orderId}`);
    return res.body.review ? res.body : undefined;
  });
/** An STK callback as Daraja posts it (CallbackMetadata only on success). */
const stkCallback = (
  checkoutRequestId: string,
  resultCode: number,
  metadata?: { amount?: number; phone?: string; receipt?: string },
) => ({
  Body: {
    stkCallback: {
      MerchantRequestID: '29115-34620561-1',
      CheckoutRequestID: checkoutRequestId,
      ResultCode: resultCode,
      ResultDesc: resultCode === 0 ? 'The service request is processed successfully.' : 'Request cancelled by user',
      ...(metadata
        ? {
            CallbackMetadata: {
              Item: [
                { Name: 'Amount', Value: metadata.amount ?? 101 },
                { Name: 'MpesaReceiptNumber', Value: metadata.receipt ?? 'QFORGED001' },
                { Name: 'Balance' },
                { Name: 'TransactionDate', Value: 20261201101010 },
                { Name: 'PhoneNumber', Value: Number(metadata.phone ?? PAYS) },
              ],
            },
          }
        : {}),
    },
  },
});
const postCallback = (token: string, body: unknown) =>
  service.api().request('POST', `/callbacks/mpesa/${token}`, { body });

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

t.test(
  '"system is busy" (500.003.02) on the push, then success: pushed again only because the first was refused',
  async (t) => {
    await sandbox.switches({ failNext: 1, faultPaths: ['/mpesa/stkpush'], mpesaErrorCode: '500.003.02' });
    const id = await order();
    const done = await terminal(id);
    t.equal(done.status, 'COMPLETED');
    t.match(mainCalls(done.attempts), [
      { kind: 'charge', outcome: 'retry', httpStatus: 500 },
      { kind: 'charge', outcome: 'pending' },
    ]);
    t.equal((await pushes(id)).length, 1, 'one push reached M-Pesa');
  },
);

t.test("Daraja's internal error (500.003.1001) on the push: it may have pushed, so never pushed again", async (t) => {
  await sandbox.switches({ failNext: 1, faultPaths: ['/mpesa/stkpush'], mpesaErrorCode: '500.003.1001' });
  const id = await order();
  const flagged = await underReview(id);
  t.match(flagged, { status: 'PROCESSING', review: { reason: 'push_unconfirmed' } });
  t.match(mainCalls(flagged.attempts), [{ kind: 'charge', outcome: 'unknown', httpStatus: 500 }]);
  t.equal((await sandbox.requests()).filter((r) => r.kind === 'charge').length, 1, 'one push request, no second');
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

t.test('lost push response: never pushed again; its callback is a lead, confirmed by an STK query', async (t) => {
  await sandbox.switches({ loseNext: 1, faultPaths: ['/mpesa/stkpush'] });
  const id = await order();
  const done = await terminal(id);
  const [push] = await pushes(id);
  t.equal((await pushes(id)).length, 1, 'one push, no second');
  t.match(done, { status: 'COMPLETED', providerReference: push?.id, review: null });
  t.match(mainCalls(done.attempts), [
    { kind: 'charge', outcome: 'unknown' },
    { kind: 'status', outcome: 'succeeded', providerReference: push?.id },
  ]);
  // Daraja's callback named a CheckoutRequestID we never learnt, with our amount and phone: asked about, not believed.
  t.match(await callbacks(id), [
    { external_id: push?.id, outcome: 'succeeded', disposition: 'confirming', amount: '10100' },
  ]);
});

t.test('lost push response, and a callback that does not match the order: people decide', async (t) => {
  await sandbox.switches({ loseNext: 1, faultPaths: ['/mpesa/stkpush'], mpesaCallback: 'missing' });
  const id = await order();
  await waitFor('the lost push', async () => ((await pushes(id)).length === 1 ? true : undefined));
  const res = await postCallback(await tokenOf(id), stkCallback('ws_CO_01122026101010777777', 0, { amount: 999 }));
  t.equal(res.status, 200);
  const flagged = await underReview(id);
  t.match(flagged, { status: 'PROCESSING', review: { reason: 'unmatched_callback', since: /Z$/ } });
  t.match(await callbacks(id), [
    { external_id: 'ws_CO_01122026101010777777', disposition: 'unmatched', amount: '99900' },
  ]);
  t.match(await events(id), [
    { type: 'payment_order.review_required', payload: { review: { reason: 'unmatched_callback' } } },
  ]);
  t.equal((await pushes(id)).length, 1, 'never pushed again');

  // The operator checks with Safaricom and settles it, with the receipt.
  const resolved = await operator.api.request('POST', `/payment-orders/${id}/resolve`, {
    body: { status: 'COMPLETED', providerReference: 'QRECEIPT01', note: 'confirmed on the M-Pesa portal' },
  });
  t.equal(resolved.status, 200, resolved.text);
  t.match(resolved.body, { status: 'COMPLETED', providerReference: 'QRECEIPT01', review: null });
  const done = await terminal(id);
  t.match(done.history.at(-1), {
    from: 'PROCESSING',
    to: 'COMPLETED',
    reason: 'resolved by operator on-call: confirmed on the M-Pesa portal',
  });
  t.match(done.reviews, [
    {
      reason: 'unmatched_callback',
      resolvedBy: 'on-call',
      resolution: 'COMPLETED',
      note: 'confirmed on the M-Pesa portal',
    },
  ]);
  t.match(
    (await events(id)).map((e) => e.type),
    ['payment_order.review_required', 'payment_order.completed'],
  );
});

t.test(
  'push timed out and no callback ever comes: past its deadline, flagged for review; never pushed twice',
  async (t) => {
    await sandbox.switches({ timeoutNext: 1, faultPaths: ['/mpesa/stkpush'] });
    const id = await order();
    const flagged = await underReview(id);
    t.match(flagged, {
      status: 'PROCESSING',
      review: { reason: 'push_unconfirmed' },
      nextAttemptAt: null,
      reconcilingSince: /Z$/,
    });
    t.match(mainCalls(flagged.attempts), [{ kind: 'charge', outcome: 'unknown', error: /timeout/ }]);
    t.match(flagged.reviews, [{ reason: 'push_unconfirmed', detail: /cannot be queried/, resolvedAt: null }]);
    // No further step is scheduled: nothing is rescheduled forever without a provider call.
    const [row] = await service.database.rows('select processing_generation from payment_orders where id = $1', [id]);
    const jobs = await service.database.count(
      'pgboss.job',
      "name = 'payment-orders.process' and data->>'orderId' = $1 and state in ('created', 'retry', 'active')",
      [id],
    );
    t.equal(jobs, 0, 'no job waits for this order');
    t.equal(await service.database.count('provider_attempts', "order_id = $1 and kind = 'charge'", [id]), 1);
    t.equal((await sandbox.requests()).filter((r) => r.kind === 'charge').length, 1);
    t.ok(row, 'order row exists');
    t.equal(
      (await events(id)).filter((e) => e.type === 'payment_order.review_required').length,
      1,
      'one review_required event',
    );
    // The operator, having found no payment, fails it.
    const resolved = await operator.api.request('POST', `/payment-orders/${id}/resolve`, {
      body: { status: 'FAILED', note: 'no payment on the M-Pesa statement' },
    });
    t.equal(resolved.status, 200, resolved.text);
    t.match(resolved.body, {
      status: 'FAILED',
      failure: { code: 'resolved_by_operator', message: 'no payment on the M-Pesa statement' },
    });
    const again = await operator.api.request('POST', `/payment-orders/${id}/resolve`, {
      body: { status: 'COMPLETED', note: 'changed my mind' },
    });
    t.match(again, { status: 409, body: { code: 'order_not_under_review' } });
  },
);

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

t.test(
  'a success callback for an order already FAILED: recorded, counted, flagged for review with an event',
  async (t) => {
    const id = await order(CANCELS);
    const done = await terminal(id);
    t.equal(done.status, 'FAILED');
    const [row] = await service.database.rows('select provider_reference from payment_orders where id = $1', [id]);
    const res = await postCallback(
      await tokenOf(id),
      stkCallback(row?.provider_reference, 0, { amount: 101, receipt: 'QLATE00001' }),
    );
    t.equal(res.status, 200);
    const after = (await api.get(`/payment-orders/${id}`)).body;
    t.match(after, { status: 'FAILED', review: { reason: 'paid_after_failure' } }, 'terminal stays terminal, flagged');
    t.match((await callbacks(id)).at(-1), { disposition: 'paid_after_failure', receipt: 'QLATE00001' });
    t.match((await events(id)).at(-1), {
      type: 'payment_order.review_required',
      payload: { status: 'FAILED', review: { reason: 'paid_after_failure' } },
    });
    const metrics = await service.api().request('GET', '/metrics');
    t.match(metrics.text, /provider_callbacks_total\{provider="mpesa",disposition="paid_after_failure"\} 1/);
    t.match(metrics.text, /payment_orders_under_review\{reason="paid_after_failure"\} 1/);
    t.ok(
      service.logs.some((l) => l.includes('"level":50') && l.includes('contradicts') && l.includes('QLATE00001')),
      'and an alert-worthy log line for whoever is on call',
    );
    // Terminal states never change: the operator closes the review once the money is refunded.
    const wrong = await operator.api.request('POST', `/payment-orders/${id}/resolve`, {
      body: { status: 'COMPLETED', note: 'it was paid' },
    });
    t.match(wrong, { status: 409, body: { code: 'order_terminal' } });
    const closed = await operator.api.request('POST', `/payment-orders/${id}/resolve`, {
      body: { status: 'FAILED', note: 'refunded QLATE00001 on the portal' },
    });
    t.match(closed, { status: 200, body: { status: 'FAILED', review: null } });
    t.match((await api.get(`/payment-orders/${id}`)).body.reviews, [
      {
        reason: 'paid_after_failure',
        resolvedBy: 'on-call',
        resolution: 'FAILED',
        note: 'refunded QLATE00001 on the portal',
      },
    ]);
  },
);

t.test('a forged success callback cannot complete an order the customer cancelled', async (t) => {
  // No callback from Daraja, and a long wait before the query: a window for a forger.
  await sandbox.switches({ mpesaCallback: 'missing' });
  const id = await order(CANCELS);
  await waitFor('the push', async () => ((await pushes(id)).length === 1 ? true : undefined));
  const [push] = await pushes(id);
  const token = await tokenOf(id);
  // A CheckoutRequestID we never made, and ours with an amount that does not match.
  const forged = await postCallback(token, stkCallback('ws_CO_01122026101010999999', 0, { amount: 101 }));
  t.equal(forged.status, 200, 'acknowledged (recorded as evidence)');
  const mismatched = await postCallback(
    token,
    stkCallback(push?.id as string, 0, { amount: 1, receipt: 'QFORGED002' }),
  );
  t.equal(mismatched.status, 200);
  const done = await terminal(id);
  t.match(done, { status: 'FAILED', failure: { code: 'cancelled_by_customer' } }, 'the STK query had the last word');
  t.match(await callbacks(id), [
    { external_id: 'ws_CO_01122026101010999999', disposition: 'unmatched' },
    { external_id: push?.id, disposition: 'confirming' },
  ]);
  const calls = mainCalls(done.attempts) as Array<{ kind: string; outcome: string; providerReference: string }>;
  t.match(calls[0], { kind: 'charge', outcome: 'pending' });
  t.ok(
    calls.slice(1).every((c) => c.kind === 'status' && c.providerReference === push?.id),
    'then only queries about our push (one was asked at once, to confirm the callback)',
  );
  t.match(calls.at(-1), { kind: 'status', outcome: 'declined' });
  t.equal(done.review, null, 'nothing for people: the provider settled it');
});

t.test('a second paid push after COMPLETED is flagged for review', async (t) => {
  const id = await order();
  const done = await terminal(id);
  t.equal(done.status, 'COMPLETED');
  const [push] = await pushes(id);
  const token = await tokenOf(id);
  // The same payment again (Daraja's duplicate) changes nothing...
  const dup = await postCallback(token, stkCallback(push?.id as string, 0, { receipt: done.providerReference }));
  t.equal(dup.status, 200);
  t.equal((await api.get(`/payment-orders/${id}`)).body.review, null);
  // ...a payment for another push is money taken twice.
  const second = await postCallback(token, stkCallback('ws_CO_01122026101010888888', 0, { receipt: 'QSECOND001' }));
  t.equal(second.status, 200);
  t.match((await api.get(`/payment-orders/${id}`)).body, { status: 'COMPLETED', review: { reason: 'second_payment' } });
  t.match(
    (await callbacks(id)).map((c) => c.disposition),
    ['applied', 'duplicate', 'second_payment'],
  );
});

t.test('malformed callbacks answer 400 and change nothing', async (t) => {
  const id = await order();
  await terminal(id);
  const token = await tokenOf(id);
  const base = stkCallback('ws_CO_1', 0, { amount: 101 });
  const withItems = (items: unknown) => ({
    Body: { stkCallback: { ...base.Body.stkCallback, CallbackMetadata: { Item: items } } },
  });
  for (const [name, body] of [
    ['Item is {}', withItems({})],
    ['Item is [null]', withItems([null])],
    ['Item has a number for a name', withItems([{ Name: 1, Value: 2 }])],
    ['no ResultCode', { Body: { stkCallback: { CheckoutRequestID: 'ws_CO_1' } } }],
    ['ResultCode is an object', { Body: { stkCallback: { CheckoutRequestID: 'ws_CO_1', ResultCode: {} } } }],
    ['Body is null', { Body: null }],
    ['an array', [1, 2]],
  ] as const) {
    const res = await postCallback(token, body);
    t.equal(res.status, 400, name);
    t.equal(res.body.code, 'validation_failed', name);
  }
  t.equal((await callbacks(id)).length, 1, 'only the real callback was recorded');
});

t.test('result codes: only known final failures decline; others are not an answer yet', async (t) => {
  const { parseStkCallback } = await import('../src/providers/mpesa.ts');
  const callback = (code: number) => ({
    Body: { stkCallback: { CheckoutRequestID: 'ws_CO_1', ResultCode: code, ResultDesc: 'x' } },
  });
  t.match(parseStkCallback(callback(1032)), { outcome: 'declined', declineCode: 'cancelled_by_customer' });
  t.match(parseStkCallback(callback(1)), { outcome: 'declined', declineCode: 'insufficient_funds' });
  t.match(parseStkCallback(callback(4999)), { outcome: 'pending' });
  t.match(parseStkCallback(callback(0)), { outcome: 'succeeded', amount: null, phone: null });
  t.match(parseStkCallback(stkCallback('ws_CO_2', 0, { amount: 101, phone: PAYS })), {
    externalId: 'ws_CO_2',
    amount: 10100,
    phone: PAYS,
    receipt: 'QFORGED001',
  });
  t.match(parseStkCallback(stkCallback('ws_CO_2', 0, { amount: 101.5 })), { amount: 10150 }, 'exact decimal');
});

t.test(
  'a callback completes the order while a query is in flight, and the query says declined: flagged as a contradiction',
  async (t) => {
    await sandbox.switches({ mpesaCallback: 'missing', latencyMs: 600 });
    const id = await order(CANCELS);
    await waitFor(
      'a status query in flight',
      async () =>
        (await service.database.count('provider_attempts', "order_id = $1 and kind = 'status' and ended_at is null", [
          id,
        ])) > 0
          ? true
          : undefined,
      { intervalMs: 5 },
    );
    const [push] = await pushes(id);
    // Amount and phone match (they are not secrets): the callback completes the order at once...
    const res = await postCallback(await tokenOf(id), stkCallback(push?.id as string, 0, { phone: CANCELS }));
    t.equal(res.status, 200);
    t.equal((await api.get(`/payment-orders/${id}`)).body.status, 'COMPLETED');
    // ...and the query's answer, the customer's cancellation, comes after: money out of place.
    const flagged = await underReview(id);
    await sandbox.switches({ latencyMs: 0 });
    t.match(flagged, { status: 'COMPLETED', review: { reason: 'contradiction' } });
    t.match(flagged.reviews, [
      { reason: 'contradiction', detail: /declined.*cancelled_by_customer/, resolvedAt: null },
    ]);
    t.match(
      (await events(id)).map((e) => e.type),
      ['payment_order.completed', 'payment_order.review_required'],
    );
  },
);

t.test("Daraja's answers to a push and a query, as outcomes", async (t) => {
  const { fromPush, fromQuery } = await import('../src/providers/mpesa.ts');
  const answer = (status: number, body: Record<string, unknown>, headers = {}) => ({ status, body, headers });
  const push: Array<[string, ReturnType<typeof answer>, Record<string, unknown>]> = [
    ['accepted', answer(200, { ResponseCode: '0', CheckoutRequestID: 'ws_A' }), { kind: 'pending', reference: 'ws_A' }],
    ['accepted, numeric code', answer(200, { ResponseCode: 0, CheckoutRequestID: 'ws_A' }), { kind: 'pending' }],
    [
      'accepted without an id: may have pushed',
      answer(200, { ResponseCode: '0' }),
      { kind: 'retry', charged: 'unknown' },
    ],
    ['200 we cannot read: may have pushed', answer(200, {}), { kind: 'retry', charged: 'unknown' }],
    ['refused by Daraja (ResponseCode 1)', answer(200, { ResponseCode: '1' }), { kind: 'declined' }],
    [
      '400 invalid request',
      answer(400, { errorCode: '400.002.02' }),
      { kind: 'declined', code: 'mpesa_request_invalid' },
    ],
    ['401 token', answer(401, { errorCode: '404.001.03' }), { kind: 'retry', charged: 'no' }],
    ['403 (a firewall)', answer(403, {}), { kind: 'retry', charged: 'no' }],
    ['429', answer(429, {}, { 'retry-after': '2' }), { kind: 'retry', charged: 'no', retryAfterMs: 2000 }],
    ['500 system is busy', answer(500, { errorCode: '500.003.02' }), { kind: 'retry', charged: 'no' }],
    ['500 subscriber locked', answer(500, { errorCode: '500.001.1001' }), { kind: 'retry', charged: 'no' }],
    [
      '500 internal error: may have pushed',
      answer(500, { errorCode: '500.003.1001' }),
      { kind: 'retry', charged: 'unknown' },
    ],
    ['502 from a proxy: may have pushed', answer(502, {}), { kind: 'retry', charged: 'unknown' }],
  ];
  for (const [name, a, expected] of push) t.match(fromPush(a), expected, `push: ${name}`);
  const query: Array<[string, ReturnType<typeof answer>, Record<string, unknown>]> = [
    ['paid', answer(200, { ResultCode: '0' }), { kind: 'succeeded', reference: 'ws_A' }],
    ['cancelled', answer(200, { ResultCode: '1032' }), { kind: 'declined', code: 'cancelled_by_customer' }],
    ['still processing', answer(500, { errorCode: '500.001.1001' }), { kind: 'pending' }],
    [
      '"no such CheckoutRequestID"',
      answer(400, { errorMessage: 'Bad Request - Invalid CheckoutRequestID' }),
      { kind: 'not_found' },
    ],
    ['429', answer(429, {}), { kind: 'retry' }],
    ['500', answer(500, { errorCode: '500.003.1001' }), { kind: 'retry' }],
  ];
  for (const [name, a, expected] of query) t.match(fromQuery(a, 'ws_A'), expected, `query: ${name}`);
});
