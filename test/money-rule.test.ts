// The money rule (src/domain/money-rule.ts) and the decisions built on it (src/domain/decide.ts),
// row by row. Pure: no database, no HTTP. The model in money-model.test.ts explores sequences.
import t from 'tap';
import {
  type Decision,
  decide,
  nextCall,
  type RetryPolicy,
  type StepAnswer,
  type StepHistory,
} from '../src/domain/decide.ts';
import { type CallFact, type Knowledge, knowledgeOf } from '../src/domain/money-rule.ts';
import type { ProviderOutcome } from '../src/domain/provider.ts';

const STRIPE = { idempotent: true } as const;
const MPESA = { idempotent: false } as const;
const T0 = Date.parse('2026-12-01T10:00:00Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);

let clock = 0;
const call = (kind: CallFact['kind'], outcome: CallFact['outcome'], reference: string | null = null): CallFact => ({
  kind,
  outcome,
  reference,
  startedAt: at(clock++),
  decline: outcome === 'declined' ? { code: 'card_declined', message: 'Your card was declined.' } : null,
});
const charge = (outcome: CallFact['outcome'], reference: string | null = null) => call('charge', outcome, reference);
const status = (outcome: CallFact['outcome'], reference: string | null = null) => call('status', outcome, reference);

type RuleRow = Readonly<{
  name: string;
  traits: { idempotent: boolean };
  calls: () => CallFact[];
  expect: Partial<Knowledge> & { state: Knowledge['state'] };
}>;

// Every kind of call history the rule distinguishes, for both kinds of provider.
const RULE_TABLE: RuleRow[] = [
  { name: 'no call yet', traits: STRIPE, calls: () => [], expect: { state: 'clear' } },
  {
    name: 'charge succeeded',
    traits: STRIPE,
    calls: () => [charge('succeeded', 'pi_1')],
    expect: { state: 'paid', reference: 'pi_1' },
  },
  { name: 'charge declined', traits: STRIPE, calls: () => [charge('declined', 'pi_1')], expect: { state: 'declined' } },
  {
    name: 'charge pending: ask about its reference',
    traits: STRIPE,
    calls: () => [charge('pending', 'pi_1')],
    expect: { state: 'in_doubt', askAbout: 'pi_1', askable: true },
  },
  {
    name: 'charge lost (Stripe): ask by idempotency key',
    traits: STRIPE,
    calls: () => [charge('unknown')],
    expect: { state: 'in_doubt', askAbout: null, askable: true },
  },
  {
    name: 'push lost (M-Pesa): nothing to ask about',
    traits: MPESA,
    calls: () => [charge('unknown')],
    expect: { state: 'in_doubt', askAbout: null, askable: false },
  },
  {
    name: 'charge never finished (process died mid-call)',
    traits: STRIPE,
    calls: () => [charge(null)],
    expect: { state: 'in_doubt', askable: true },
  },
  {
    name: "charge 'error' outcome counts as unknown",
    traits: STRIPE,
    calls: () => [charge('error')],
    expect: { state: 'in_doubt' },
  },
  {
    name: 'charge refused (429/401/refused): nothing moved',
    traits: STRIPE,
    calls: () => [charge('retry')],
    expect: { state: 'clear' },
  },
  { name: 'two refusals', traits: MPESA, calls: () => [charge('retry'), charge('retry')], expect: { state: 'clear' } },
  {
    name: 'lost, then a status 429: the doubt stays (the issue)',
    traits: STRIPE,
    calls: () => [charge('unknown'), status('retry')],
    expect: { state: 'in_doubt', askable: true },
  },
  {
    name: 'lost, status 429, charge 429, charge 429: still in doubt, never clear (the issue)',
    traits: STRIPE,
    calls: () => [charge('unknown'), status('retry'), charge('retry'), charge('retry')],
    expect: { state: 'in_doubt' },
  },
  {
    name: 'lost, then a status timeout',
    traits: STRIPE,
    calls: () => [charge('unknown'), status('unknown')],
    expect: { state: 'in_doubt' },
  },
  {
    name: 'lost, then status succeeded',
    traits: STRIPE,
    calls: () => [charge('unknown'), status('succeeded', 'pi_1')],
    expect: { state: 'paid', reference: 'pi_1' },
  },
  {
    name: 'lost, then status declined',
    traits: STRIPE,
    calls: () => [charge('unknown'), status('declined', 'pi_1')],
    expect: { state: 'declined' },
  },
  {
    name: 'lost, then status not found (search)',
    traits: STRIPE,
    calls: () => [charge('unknown'), status('not_found')],
    expect: { state: 'clear' },
  },
  {
    name: 'lost, then status pending: now there is a reference to ask about',
    traits: STRIPE,
    calls: () => [charge('unknown'), status('pending', 'pi_1')],
    expect: { state: 'in_doubt', askAbout: 'pi_1', since: at(0) },
  },
  {
    name: 'pending, then failed retrieves: keep asking about the reference, never a fresh create',
    traits: STRIPE,
    calls: () => [charge('pending', 'pi_1'), status('retry', 'pi_1'), status('unknown', 'pi_1')],
    expect: { state: 'in_doubt', askAbout: 'pi_1' },
  },
  {
    name: 'push pending, query declined',
    traits: MPESA,
    calls: () => [charge('pending', 'ws_A'), status('declined', 'ws_A')],
    expect: { state: 'declined' },
  },
  {
    name: 'push pending, query "no such CheckoutRequestID" for the id Daraja gave us: not proof, still in doubt',
    traits: MPESA,
    calls: () => [charge('pending', 'ws_A'), status('not_found', 'ws_A')],
    expect: { state: 'in_doubt', askAbout: 'ws_A', askable: true },
  },
  {
    name: 'a lead the provider does not know is answered (it leads nowhere); our lost push stays open',
    traits: MPESA,
    calls: () => [charge('unknown'), status('not_found', 'ws_X')],
    expect: { state: 'in_doubt', open: [null] },
  },
  {
    name: 'push pending, query 401: no answer',
    traits: MPESA,
    calls: () => [charge('pending', 'ws_A'), status('unknown', 'ws_A')],
    expect: { state: 'in_doubt', askAbout: 'ws_A', askable: true },
  },
  {
    name: 'a lost push stays open when another push is settled (M-Pesa answers per push)',
    traits: MPESA,
    calls: () => [charge('unknown'), charge('pending', 'ws_B'), status('declined', 'ws_B')],
    expect: { state: 'in_doubt', askable: false, open: [null] },
  },
  {
    name: 'an idempotent provider settles every call with one answer',
    traits: STRIPE,
    calls: () => [charge('unknown'), charge('pending', 'pi_1'), status('declined', 'pi_1')],
    expect: { state: 'declined' },
  },
  {
    name: 'a charge never answers "not found": it proves nothing',
    traits: STRIPE,
    calls: () => [charge('unknown'), charge('not_found')],
    expect: { state: 'in_doubt' },
  },
  {
    name: 'a decline is superseded by a later charge',
    traits: MPESA,
    calls: () => [charge('declined'), charge('retry')],
    expect: { state: 'clear' },
  },
  {
    name: 'success after several pendings',
    traits: MPESA,
    calls: () => [charge('pending', 'ws_A'), status('pending', 'ws_A'), status('succeeded', 'ws_A')],
    expect: { state: 'paid', reference: 'ws_A' },
  },
];

t.test('a lead (a success callback naming a charge we never learnt) makes a lost push askable', async (t) => {
  clock = 0;
  const lost = [charge('unknown')];
  t.match(knowledgeOf(MPESA, lost, ['ws_X']), { state: 'in_doubt', askAbout: 'ws_X', askable: true });
  t.match(
    knowledgeOf(MPESA, [...lost, status('retry', 'ws_X')], ['ws_X']),
    { askAbout: 'ws_X' },
    'no answer: ask again',
  );
  t.match(knowledgeOf(MPESA, [...lost, status('succeeded', 'ws_X')], ['ws_X']), { state: 'paid', reference: 'ws_X' });
  t.match(
    knowledgeOf(MPESA, [...lost, status('declined', 'ws_X')], ['ws_X']),
    { state: 'in_doubt', askable: false, open: [null] },
    'the lead was not paid: it proves nothing about our push, which stays open and unaskable',
  );
  t.match(
    knowledgeOf(MPESA, [charge('pending', 'ws_A')], ['ws_X']),
    { askAbout: 'ws_A' },
    'no lost push: leads unused',
  );
});

t.test('the money rule, row by row', async (t) => {
  for (const row of RULE_TABLE) {
    clock = 0;
    t.match(knowledgeOf(row.traits, row.calls()), row.expect, row.name);
  }
});

// ------------------------------------------------------------------------------------------------
// Decisions

const POLICY: RetryPolicy = {
  maxAttempts: 4,
  baseDelayMs: 1000,
  maxDelayMs: 60_000,
  reconcileIntervalMs: 60_000,
  pendingCheckDelayMs: (provider) => (provider === 'mpesa' ? 30_000 : 1000),
  reviewAfterMs: 3_600_000,
  unaskableDeadlineMs: (provider) => (provider === 'mpesa' ? 300_000 : 3_600_000),
  // The middle of the jitter: delays are exactly 3/4 of the exponential step.
  random: () => 0.5,
};

const history = (provider: 'stripe' | 'mpesa', calls: CallFact[], extra: Partial<StepHistory> = {}): StepHistory => ({
  provider,
  traits: provider === 'stripe' ? STRIPE : MPESA,
  calls,
  callCount: calls.length,
  reconcilingSince: null,
  underReview: false,
  now: at(10),
  ...extra,
});
const answer = (kind: StepAnswer['kind'], outcome: ProviderOutcome, askedAbout: string | null = null): StepAnswer => ({
  kind,
  outcome,
  askedAbout,
  startedAt: at(9),
});
const r429 = (retryAfterMs?: number): ProviderOutcome => ({
  kind: 'retry',
  charged: 'no',
  reason: 'HTTP 429',
  retryAfterMs,
});
const lost: ProviderOutcome = { kind: 'retry', charged: 'unknown', reason: 'connection: ECONNRESET' };
const ok = (reference: string): ProviderOutcome => ({ kind: 'succeeded', reference });
const no: ProviderOutcome = { kind: 'declined', code: 'card_declined', message: 'Your card was declined.' };

type DecideRow = Readonly<{
  name: string;
  history: () => StepHistory;
  answer: StepAnswer | null;
  expect: { type: Decision['type'] } & Record<string, unknown>;
}>;

const DECIDE_TABLE: DecideRow[] = [
  {
    name: 'success: complete with the reference',
    history: () => history('stripe', []),
    answer: answer('charge', ok('pi_1')),
    expect: { type: 'complete', reference: 'pi_1', reason: 'charge: succeeded' },
  },
  {
    name: 'decline: fail with the provider code',
    history: () => history('stripe', []),
    answer: answer('charge', no),
    expect: { type: 'fail', failure: { code: 'card_declined' } },
  },
  {
    name: 'refused, budget left: retry after the backoff (at least Retry-After)',
    history: () => history('stripe', []),
    answer: answer('charge', r429(5000)),
    expect: { type: 'schedule', delayMs: 5000, reason: 'charge: HTTP 429, retrying' },
  },
  {
    name: 'refused, backoff grows with the calls made',
    history: () => history('stripe', [charge('retry')]),
    answer: answer('charge', r429()),
    expect: { type: 'schedule', delayMs: 1500 },
  },
  {
    name: 'refused, budget spent, nothing open: FAILED provider_unavailable',
    history: () => history('stripe', [charge('retry'), charge('retry'), charge('retry')]),
    answer: answer('charge', r429()),
    expect: {
      type: 'fail',
      failure: { code: 'provider_unavailable', message: /after 4 attempts.*nothing was charged/ },
    },
  },
  {
    name: 'refused while reconciling, nothing open: FAILED (the doubt was settled by "not found")',
    history: () => history('stripe', [charge('unknown'), status('not_found')], { reconcilingSince: at(0) }),
    answer: answer('charge', r429()),
    expect: { type: 'fail', failure: { code: 'provider_unavailable' } },
  },
  {
    name: 'not found: charge again at once, forgetting the reference, no longer reconciling',
    history: () => history('stripe', [charge('unknown')]),
    answer: answer('status', { kind: 'not_found' }),
    expect: { type: 'schedule', delayMs: 0, clearReference: true, reconciling: false },
  },
  {
    name: 'lost answer, budget left: ask, with backoff',
    history: () => history('stripe', []),
    answer: answer('charge', lost),
    expect: { type: 'schedule', delayMs: 750, reason: /may have charged, asking/ },
  },
  {
    name: 'the issue: lost, then 429s with the budget spent: reconciling, never FAILED',
    history: () => history('stripe', [charge('unknown'), status('retry'), status('retry')]),
    answer: answer('status', r429(1000)),
    expect: { type: 'schedule', delayMs: 60_000, reconciling: true, reason: /reconciling/ },
  },
  {
    name: 'the issue, as it happened then (a charge refused after the doubt): still not FAILED',
    history: () => history('stripe', [charge('unknown'), status('retry'), charge('retry')]),
    answer: answer('charge', r429()),
    expect: { type: 'schedule', reconciling: true },
  },
  {
    name: 'a late answer then 401s (cousin): reconciling',
    history: () => history('stripe', [charge('unknown'), status('retry'), status('retry')]),
    answer: answer('status', { kind: 'retry', charged: 'no', reason: 'authentication_error 401' }),
    expect: { type: 'schedule', reconciling: true },
  },
  {
    name: 'in doubt with a Retry-After longer than the slow schedule: waits the Retry-After',
    history: () => history('stripe', [charge('unknown'), status('retry'), status('retry'), status('retry')]),
    answer: answer('status', r429(120_000)),
    expect: { type: 'schedule', delayMs: 120_000, reconciling: true },
  },
  {
    name: 'pending on the charge (M-Pesa): wait for the callback before asking',
    history: () => history('mpesa', []),
    answer: answer('charge', { kind: 'pending', reference: 'ws_A' }),
    expect: { type: 'schedule', delayMs: 30_000, reference: 'ws_A' },
  },
  {
    name: 'pending on a query, budget left: backoff',
    history: () => history('stripe', [charge('pending', 'pi_1')]),
    answer: answer('status', { kind: 'pending', reference: 'pi_1' }, 'pi_1'),
    expect: { type: 'schedule', delayMs: 1500, reference: 'pi_1' },
  },
  {
    name: 'pending on a query, budget spent: the slow schedule, not a gate slot every second',
    history: () => history('stripe', [charge('pending', 'pi_1'), status('pending', 'pi_1'), status('pending', 'pi_1')]),
    answer: answer('status', { kind: 'pending', reference: 'pi_1' }, 'pi_1'),
    expect: { type: 'schedule', delayMs: 60_000, reconciling: true },
  },
  {
    name: 'unknown past the review deadline: flagged, still asked',
    history: () => history('stripe', [charge('unknown')], { now: at(3601), reconcilingSince: at(100) }),
    answer: answer('status', lost),
    expect: { type: 'schedule', reconciling: true, review: { reason: 'outcome_unknown' } },
  },
  {
    name: 'already under review: not flagged twice',
    history: () =>
      history('stripe', [charge('unknown')], { now: at(7200), reconcilingSince: at(100), underReview: true }),
    answer: answer('status', lost),
    expect: { type: 'schedule', review: undefined },
  },
  {
    name: 'M-Pesa push lost, before its deadline: no call, wait for the callback until the deadline',
    history: () => history('mpesa', [charge('unknown')], { now: at(60) }),
    answer: null,
    expect: { type: 'schedule', delayMs: 240_000, reconciling: true },
  },
  {
    name: 'M-Pesa push lost, past its deadline: no more steps, flagged for review',
    history: () => history('mpesa', [charge('unknown')], { now: at(301) }),
    answer: null,
    expect: { type: 'await', review: { reason: 'push_unconfirmed' } },
  },
  {
    name: 'the answer was already in the history (it came after the order moved on): complete without a call',
    history: () => history('mpesa', [charge('pending', 'ws_A'), status('succeeded', 'ws_A')]),
    answer: null,
    expect: { type: 'complete', reference: 'ws_A', reason: 'history: succeeded' },
  },
];

t.test('the decisions, row by row', async (t) => {
  for (const row of DECIDE_TABLE) {
    clock = 0;
    t.match(decide(POLICY, row.history(), row.answer), row.expect, row.name);
  }
});

t.test('which call a step makes', async (t) => {
  clock = 0;
  t.match(nextCall(POLICY, history('stripe', [])), { type: 'charge' }, 'nothing sent: charge');
  t.match(nextCall(POLICY, history('stripe', [charge('retry')])), { type: 'charge' }, 'refused: charge again');
  t.match(
    nextCall(POLICY, history('stripe', [charge('unknown')])),
    { type: 'status', reference: null },
    'lost: ask by key',
  );
  t.match(
    nextCall(POLICY, history('stripe', [charge('pending', 'pi_1'), status('retry', 'pi_1')])),
    { type: 'status', reference: 'pi_1' },
    'a failed retrieve: retrieve again, never create',
  );
  t.match(
    nextCall(POLICY, history('stripe', [charge('unknown'), status('retry'), charge('retry')])),
    { type: 'status' },
    'a refused charge after a doubt does not clear it: ask',
  );
  t.match(
    nextCall(POLICY, history('mpesa', [charge('unknown')])),
    { type: 'none' },
    'a lost push: nothing to ask, never push again',
  );
  t.match(nextCall(POLICY, history('mpesa', [charge('pending', 'ws_A')])), { type: 'status', reference: 'ws_A' });
  t.match(
    nextCall(POLICY, history('mpesa', [charge('pending', 'ws_A'), status('not_found', 'ws_A')])),
    { type: 'status', reference: 'ws_A' },
    'Daraja says it does not know the push it named: ask again, never push again',
  );
  t.match(nextCall(POLICY, history('stripe', [charge('unknown'), status('declined', 'pi_1')])), {
    type: 'settled',
    decision: { type: 'fail', failure: { code: 'card_declined' } },
  });
});

t.test('the issue, end to end over the rule: loseNext 1 then rateLimitNext 10, PROVIDER_MAX_ATTEMPTS=4', async (t) => {
  clock = 0;
  const calls: CallFact[] = [];
  const seen: string[] = [];
  let reconcilingSince: Date | null = null;
  // The provider: the first request is processed and its answer lost, the next ten are 429s.
  const outcomes: ProviderOutcome[] = [lost, ...Array.from({ length: 10 }, () => r429(1000))];
  for (let step = 0; step < outcomes.length; step++) {
    const h = history('stripe', [...calls], { reconcilingSince, now: at(step * 10) });
    const next = nextCall(POLICY, h);
    t.not(next.type, 'settled');
    const kind = next.type === 'charge' ? 'charge' : 'status';
    if (step > 0) t.equal(kind, 'status', `call ${step + 1} asks (never charges while in doubt)`);
    const a = answer(kind, outcomes[step] as ProviderOutcome, null);
    const decision = decide(POLICY, h, a);
    t.not(decision.type, 'fail', `call ${step + 1}: never FAILED while Stripe may hold the money`);
    if (decision.type === 'schedule' && decision.reconciling) reconcilingSince ??= h.now;
    calls.push({ kind, outcome: step === 0 ? 'unknown' : 'retry', reference: null, startedAt: at(step * 10) });
    seen.push(`${kind}:${decision.type}${decision.type === 'schedule' && decision.reconciling ? '(reconciling)' : ''}`);
  }
  t.ok(reconcilingSince, 'reconciling once the budget is spent');
  t.comment(seen.join(' '));
});

t.test('a step on an instance without the order provider never fails money that may have moved', async (t) => {
  const { withoutProvider } = await import('../src/domain/decide.ts');
  clock = 0;
  t.match(withoutProvider(POLICY, history('mpesa', [charge('retry')])), {
    type: 'fail',
    failure: { code: 'provider_not_configured' },
  });
  t.match(withoutProvider(POLICY, history('mpesa', [charge('pending', 'ws_A')])), {
    type: 'schedule',
    delayMs: 60_000,
    reconciling: true,
    review: undefined,
  });
  t.match(withoutProvider(POLICY, history('mpesa', [charge('pending', 'ws_A')], { now: at(4000) })), {
    type: 'schedule',
    review: { reason: 'outcome_unknown' },
  });
  t.match(withoutProvider(POLICY, history('stripe', [charge('unknown'), status('succeeded', 'pi_1')])), {
    type: 'complete',
    reference: 'pi_1',
  });
});
