// A callback is evidence, not authority (src/domain/callback-evidence.ts), row by row. Pure.
import t from 'tap';
import { type CallbackContext, judgeCallback, type ProviderCallback } from '../src/domain/callback-evidence.ts';
import type { CallFact } from '../src/domain/money-rule.ts';
import type { PaymentOrder } from '../src/domain/payment-order.ts';

const PHONE = '254708374149';
const at = new Date('2026-12-01T10:00:00Z');
const order = (status: PaymentOrder['status'], extra: Partial<PaymentOrder> = {}): PaymentOrder => ({
  id: 'po_1',
  merchantId: 'mch_1',
  status,
  amount: 10100,
  currency: 'KES',
  provider: 'mpesa',
  paymentMethod: { type: 'mpesa', phone: PHONE },
  reference: null,
  description: null,
  metadata: {},
  providerReference: null,
  failure: null,
  nextAttemptAt: null,
  reconcilingSince: null,
  review: null,
  createdAt: at,
  updatedAt: at,
  ...extra,
});
const call = (kind: CallFact['kind'], outcome: CallFact['outcome'], reference: string | null): CallFact => ({
  kind,
  outcome,
  reference,
  startedAt: at,
});
const callback = (
  externalId: string,
  outcome: ProviderCallback['outcome'],
  extra: Partial<ProviderCallback> = {},
): ProviderCallback => ({
  provider: 'mpesa',
  externalId,
  resultCode: outcome === 'succeeded' ? '0' : outcome === 'declined' ? '1032' : '4999',
  outcome,
  amount: outcome === 'succeeded' ? 10100 : null,
  phone: outcome === 'succeeded' ? PHONE : null,
  receipt: outcome === 'succeeded' ? 'QRCPT00001' : null,
  declineCode: outcome === 'declined' ? 'cancelled_by_customer' : null,
  declineMessage: null,
  ...extra,
});
const context = (o: PaymentOrder, calls: CallFact[], extra: Partial<CallbackContext> = {}): CallbackContext => ({
  order: o,
  traits: { idempotent: false },
  calls,
  paidExternalId: null,
  claimedElsewhere: false,
  ...extra,
});

const pushed = [call('charge', 'pending', 'ws_A')];
const lostPush = [call('charge', 'unknown', null)];

const TABLE: Array<[string, CallbackContext, ProviderCallback, Record<string, unknown>]> = [
  [
    'our open push, paid, amount and phone match: applied',
    context(order('PROCESSING'), pushed),
    callback('ws_A', 'succeeded'),
    { disposition: 'applied', complete: { reference: 'QRCPT00001' } },
  ],
  [
    'our open push, paid, amount differs: asked about first',
    context(order('PROCESSING'), pushed),
    callback('ws_A', 'succeeded', { amount: 1 }),
    { disposition: 'confirming', confirm: true, complete: undefined },
  ],
  [
    'our open push, paid, phone differs: asked about first',
    context(order('PROCESSING'), pushed),
    callback('ws_A', 'succeeded', { phone: '254700000000' }),
    { disposition: 'confirming', confirm: true },
  ],
  [
    'our open push, paid, no metadata: asked about first',
    context(order('PROCESSING'), pushed),
    callback('ws_A', 'succeeded', { amount: null, phone: null }),
    { disposition: 'confirming', confirm: true },
  ],
  [
    'our open push, declined: asked about first (a decline is evidence too)',
    context(order('PROCESSING'), pushed),
    callback('ws_A', 'declined'),
    { disposition: 'confirming', confirm: true },
  ],
  [
    'a non-final result: nothing',
    context(order('PROCESSING'), pushed),
    callback('ws_A', 'pending'),
    { disposition: 'ignored' },
  ],
  [
    'a forged id while all our pushes are known: recorded, nothing else',
    context(order('PROCESSING'), pushed),
    callback('ws_FORGED', 'succeeded'),
    { disposition: 'unmatched', review: undefined, confirm: undefined },
  ],
  [
    'an unknown id, our push unaccounted for, amount and phone match: a lead, asked about',
    context(order('PROCESSING'), lostPush),
    callback('ws_X', 'succeeded'),
    { disposition: 'confirming', confirm: true },
  ],
  [
    'an unknown id, our push unaccounted for, but another order has that charge: review',
    context(order('PROCESSING'), lostPush, { claimedElsewhere: true }),
    callback('ws_X', 'succeeded'),
    { disposition: 'unmatched', review: { reason: 'unmatched_callback', detail: /another order has it/ } },
  ],
  [
    'an unknown id, our push unaccounted for, amount differs: review',
    context(order('PROCESSING'), lostPush),
    callback('ws_X', 'succeeded', { amount: 999 }),
    { disposition: 'unmatched', review: { reason: 'unmatched_callback' } },
  ],
  [
    'a lead queried without an answer is not proof: asked again',
    context(order('PROCESSING'), [...lostPush, call('status', 'retry', 'ws_X')]),
    callback('ws_X', 'succeeded'),
    { disposition: 'confirming' },
  ],
  [
    'our push that the provider said was not paid, now paid: contradiction, review',
    context(order('PROCESSING'), [...lostPush, call('charge', 'pending', 'ws_A'), call('status', 'declined', 'ws_A')]),
    callback('ws_A', 'succeeded'),
    { disposition: 'contradiction', review: { reason: 'contradiction' } },
  ],
  [
    'a decline for a push already settled: nothing',
    context(order('PROCESSING'), [...lostPush, call('charge', 'pending', 'ws_A'), call('status', 'declined', 'ws_A')]),
    callback('ws_A', 'declined'),
    { disposition: 'ignored' },
  ],
  [
    'COMPLETED, the same payment again: duplicate',
    context(order('COMPLETED', { providerReference: 'QRCPT00001' }), pushed, { paidExternalId: 'ws_A' }),
    callback('ws_A', 'succeeded'),
    { disposition: 'duplicate', review: undefined },
  ],
  [
    'COMPLETED, the same receipt under another id: duplicate',
    context(order('COMPLETED', { providerReference: 'QRCPT00001' }), pushed, { paidExternalId: 'ws_A' }),
    callback('ws_B', 'succeeded'),
    { disposition: 'duplicate' },
  ],
  [
    'COMPLETED, another payment: second payment, review',
    context(order('COMPLETED', { providerReference: 'QRCPT00001' }), pushed, { paidExternalId: 'ws_A' }),
    callback('ws_B', 'succeeded', { receipt: 'QRCPT00002' }),
    { disposition: 'second_payment', review: { reason: 'second_payment' } },
  ],
  [
    'COMPLETED, a decline: nothing',
    context(order('COMPLETED'), pushed, { paidExternalId: 'ws_A' }),
    callback('ws_B', 'declined'),
    { disposition: 'ignored' },
  ],
  [
    'FAILED, paid: paid after failure, review',
    context(order('FAILED'), pushed),
    callback('ws_A', 'succeeded'),
    { disposition: 'paid_after_failure', review: { reason: 'paid_after_failure', detail: /refund/ } },
  ],
  [
    'FAILED, declined: nothing',
    context(order('FAILED'), pushed),
    callback('ws_A', 'declined'),
    { disposition: 'ignored' },
  ],
  [
    'PENDING (nothing pushed yet): unmatched',
    context(order('PENDING'), []),
    callback('ws_A', 'succeeded'),
    { disposition: 'unmatched' },
  ],
];

t.test('what a callback means, row by row', async (t) => {
  for (const [name, ctx, cb, expected] of TABLE) t.match(judgeCallback(ctx, cb), expected, name);
});
