// The chaos test's verdicts (test/helpers/chaos-checks.ts) on made-up runs: each check passes on a
// clean run and fails on the fault it is there to catch, so a green chaos run means something.
import t, { type Test } from 'tap';
import type { LedgerEntry, RequestRecord } from '../sandbox/sandbox.ts';
import { type Check, type RunRecord, runChecks } from './helpers/chaos-checks.ts';
import type { Answer } from './helpers/chaos-load.ts';
import type { ReceivedWebhook } from './helpers/chaos-subscriber.ts';

const ORIGIN = 1_800_000_000_000;
const STRIPE_ORDER = 'po_01aaaaaaaaaaaaaaaaaaaaaaaa';
const MPESA_ORDER = 'po_01bbbbbbbbbbbbbbbbbbbbbbbb';

function answer(fields: Partial<Answer>): Answer {
  return {
    sentMs: 1_000,
    doneMs: 1_010,
    instance: 0,
    method: 'POST',
    path: '/payment-orders',
    idempotencyKey: null,
    status: 201,
    code: null,
    retryAfter: null,
    replayed: false,
    orderId: null,
    bodyHash: fields.orderId ? `hash-of-${fields.orderId}` : null,
    error: null,
    ...fields,
  };
}

function entry(fields: Partial<LedgerEntry>): LedgerEntry {
  return {
    provider: 'stripe',
    id: 'pi_1',
    orderId: STRIPE_ORDER,
    amount: 1050,
    currency: 'usd',
    status: 'charged',
    idempotencyKey: null,
    createdAt: new Date(ORIGIN).toISOString(),
    settledAt: null,
    ...fields,
  };
}

function webhook(fields: Partial<ReceivedWebhook>): ReceivedWebhook {
  return {
    atMs: ORIGIN + 5_000,
    webhookId: `evt_${fields.orderId}`,
    eventId: `evt_${fields.orderId}`,
    type: 'payment_order.completed',
    orderId: STRIPE_ORDER,
    orderStatus: 'COMPLETED',
    review: null,
    signatureValid: true,
    signatureError: null,
    mode: 'ok',
    acknowledged: true,
    ...fields,
  };
}

function arrival(atMs: number): RequestRecord {
  return {
    at: new Date(ORIGIN + atMs).toISOString(),
    atMs: ORIGIN + atMs,
    method: 'POST',
    path: '/v1/payment_intents',
    provider: 'stripe',
    kind: 'charge',
    fault: null,
    status: 200,
  } as RequestRecord;
}

const order = (id: string, status: string, provider: string, extra: object = {}) => ({
  id,
  status,
  provider,
  attempts: [],
  history: [],
  ...extra,
});

/** Two orders: a card order COMPLETED (charged once), an M-Pesa one FAILED (declined), both told. */
function cleanRun(): { -readonly [K in keyof RunRecord]: RunRecord[K] } {
  return {
    seed: 1,
    runMs: 60_000,
    loadMs: 30_000,
    keys: new Map([
      ['k1', { kind: 'card_ok', sends: 2 }],
      ['k2', { kind: 'mpesa_cancelled', sends: 1 }],
    ]),
    answers: [
      answer({ idempotencyKey: 'k1', orderId: STRIPE_ORDER }),
      answer({ idempotencyKey: 'k1', orderId: STRIPE_ORDER, replayed: true }),
      answer({ idempotencyKey: 'k2', orderId: MPESA_ORDER }),
    ],
    orders: new Map([
      [STRIPE_ORDER, order(STRIPE_ORDER, 'COMPLETED', 'stripe')],
      [MPESA_ORDER, order(MPESA_ORDER, 'FAILED', 'mpesa')],
    ]),
    observedStatuses: new Map([
      [STRIPE_ORDER, ['PENDING', 'COMPLETED']],
      [MPESA_ORDER, ['PENDING', 'FAILED']],
    ]),
    listed: [STRIPE_ORDER, MPESA_ORDER],
    ledger: [
      entry({}),
      entry({ provider: 'mpesa', id: 'ws_CO_1', orderId: MPESA_ORDER.slice(-12), status: 'declined', currency: 'KES' }),
    ],
    arrivals: [arrival(1_000), arrival(1_600), arrival(2_100)],
    received: [
      webhook({ orderId: STRIPE_ORDER }),
      webhook({ orderId: MPESA_ORDER, type: 'payment_order.failed', orderStatus: 'FAILED' }),
    ],
    fleet: [],
    dbDown: { fromMs: 10_000, toMs: 13_000 },
    callbacks: [],
    originMs: ORIGIN,
    healed: true,
    healMs: 5_000,
  };
}

function failing(run: RunRecord): Check[] {
  return runChecks(run).filter((check) => !check.ok);
}

function failsOnly(t: Test, run: RunRecord, name: RegExp): void {
  const failed = failing(run);
  t.same(
    failed.map((check) => check.name).filter((n) => !name.test(n)),
    [],
    'no other check fails',
  );
  t.ok(
    failed.some((check) => name.test(check.name)),
    `fails: ${failed.map((c) => `${c.name}: ${c.evidence.join(' | ')}`).join('; ') || 'nothing'}`,
  );
}

t.test('a clean run passes every check', async (t) => {
  t.same(failing(cleanRun()), []);
});

t.test('an order neither terminal nor under review fails; one under review with a reason passes', async (t) => {
  const stuck = cleanRun();
  (stuck.orders as Map<string, any>).set(MPESA_ORDER, order(MPESA_ORDER, 'PROCESSING', 'mpesa'));
  stuck.received = [webhook({ orderId: STRIPE_ORDER })];
  failsOnly(t, stuck, /terminal, or under review/);

  const reviewed = cleanRun();
  const review = { reason: 'mpesa_push_unanswered', since: new Date(ORIGIN).toISOString() };
  (reviewed.orders as Map<string, any>).set(MPESA_ORDER, order(MPESA_ORDER, 'PROCESSING', 'mpesa', { review }));
  reviewed.received = [
    webhook({ orderId: STRIPE_ORDER }),
    webhook({ orderId: MPESA_ORDER, type: 'payment_order.review_required', orderStatus: 'PROCESSING', review }),
  ];
  t.same(failing(reviewed), [], 'under review with its event: nothing fails');
  reviewed.received = [webhook({ orderId: STRIPE_ORDER })];
  failsOnly(t, reviewed, /review_required event/);
});

t.test('two orders for one key fail', async (t) => {
  const run = cleanRun();
  run.answers = [...run.answers, answer({ idempotencyKey: 'k1', orderId: MPESA_ORDER })];
  failsOnly(t, run, /one idempotency key/);
});

t.test('a replay whose body differs from the first 201 fails', async (t) => {
  const run = cleanRun();
  run.answers = [
    ...run.answers,
    answer({ idempotencyKey: 'k1', orderId: STRIPE_ORDER, replayed: true, bodyHash: 'other' }),
  ];
  failsOnly(t, run, /one idempotency key/);
});

t.test('an order listed that no 201 named fails', async (t) => {
  const run = cleanRun();
  run.listed = [...run.listed, 'po_01cccccccccccccccccccccccc'];
  failsOnly(t, run, /one idempotency key/);
});

t.test('a key that never got its 201 fails', async (t) => {
  const run = cleanRun();
  (run.keys as Map<string, any>).set('k3', { kind: 'card_ok', sends: 1 });
  run.answers = [...run.answers, answer({ idempotencyKey: 'k3', status: null, error: 'ECONNREFUSED' })];
  failsOnly(t, run, /got its 201/);
});

t.test('a terminal status that changes fails', async (t) => {
  const run = cleanRun();
  (run.observedStatuses as Map<string, string[]>).set(STRIPE_ORDER, ['PENDING', 'COMPLETED', 'PROCESSING']);
  failsOnly(t, run, /never changes/);
});

t.test('a second charge fails, even for an M-Pesa order (matched on the last 12 characters)', async (t) => {
  const run = cleanRun();
  run.ledger = [...run.ledger, entry({ id: 'pi_2' })];
  t.ok(failing(run).some((check) => /at most once/.test(check.name)));
  t.ok(failing(run).some((check) => /exactly one charge/.test(check.name)));

  const paidFailed = cleanRun();
  paidFailed.ledger = [
    entry({}),
    entry({ provider: 'mpesa', id: 'ws_CO_2', orderId: MPESA_ORDER.slice(-12), currency: 'KES' }),
  ];
  failsOnly(t, paidFailed, /FAILED ⇒ not charged/);
});

t.test('a charge for no known order fails', async (t) => {
  const run = cleanRun();
  run.ledger = [...run.ledger, entry({ id: 'pi_9', orderId: 'po_01zzzzzzzzzzzzzzzzzzzzzzzz' })];
  failsOnly(t, run, /at most once/);
});

t.test('COMPLETED without a charge fails', async (t) => {
  const run = cleanRun();
  run.ledger = run.ledger.filter((e) => e.provider !== 'stripe');
  failsOnly(t, run, /exactly one charge/);
});

t.test('an event not acknowledged, badly signed, or contradicting the status fails', async (t) => {
  const unacknowledged = cleanRun();
  unacknowledged.received = [
    webhook({ orderId: STRIPE_ORDER, mode: 'error', acknowledged: false }),
    webhook({ orderId: MPESA_ORDER, type: 'payment_order.failed', orderStatus: 'FAILED' }),
  ];
  failsOnly(t, unacknowledged, /terminal order's event/);

  const forged = cleanRun();
  forged.received = [
    ...forged.received,
    webhook({ orderId: STRIPE_ORDER, signatureValid: false, signatureError: 'No matching signature found' }),
  ];
  failsOnly(t, forged, /verifies/);

  const contradicting = cleanRun();
  contradicting.received = [
    ...contradicting.received,
    webhook({ orderId: STRIPE_ORDER, eventId: 'evt_other', type: 'payment_order.failed' }),
  ];
  failsOnly(t, contradicting, /terminal order's event/);
});

t.test('three provider arrivals within one second fail; exactly 1 s apart passes', async (t) => {
  const crowded = cleanRun();
  crowded.arrivals = [arrival(1_000), arrival(1_500), arrival(1_999)];
  failsOnly(t, crowded, /provider arrivals/);
  const spaced = cleanRun();
  spaced.arrivals = [arrival(1_000), arrival(1_500), arrival(2_000)];
  t.same(failing(spaced), []);
});

t.test('5xx: only 503 database_unavailable with Retry-After during the outage passes', async (t) => {
  const during = { sentMs: 11_000, doneMs: 11_005, idempotencyKey: 'k1', orderId: null };
  const allowed = cleanRun();
  allowed.answers = [
    ...allowed.answers,
    answer({ ...during, status: 503, code: 'database_unavailable', retryAfter: '5' }),
  ];
  t.same(failing(allowed), [], '503 with Retry-After during the outage');

  for (const [label, fields] of [
    ['a 500 during the outage', { ...during, status: 500, code: 'internal_error' }],
    ['a 503 without Retry-After', { ...during, status: 503, code: 'database_unavailable' }],
    [
      'a 503 long after the outage',
      { ...during, sentMs: 40_000, doneMs: 40_001, status: 503, code: 'database_unavailable', retryAfter: '5' },
    ],
  ] as const) {
    const run = cleanRun();
    run.answers = [...run.answers, answer(fields)];
    t.ok(
      failing(run).some((check) => /no 5xx/.test(check.name)),
      `${label} fails`,
    );
  }
});

t.test('a 4xx answer fails', async (t) => {
  const run = cleanRun();
  run.answers = [...run.answers, answer({ status: 422, code: 'idempotency_key_reused' })];
  failsOnly(t, run, /no 4xx/);
});

t.test('a gateway that crashed, or did not wait for the database at start, fails', async (t) => {
  const run = cleanRun();
  run.fleet = [{ atMs: 11_000, slot: 1, type: 'start_failed', detail: 'ECONNREFUSED' }];
  failsOnly(t, run, /no gateway exits/);
});
