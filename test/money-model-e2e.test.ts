// The model-based test end to end: sequences of provider outcomes, scripted per payment at the
// real sandbox (sandbox/scripts.ts) and at a relay that refuses connections for real
// (helpers/refusing-proxy.ts), through the real service and a real database. The sample holds every
// ordered pair of outcomes at least once (a de Bruijn cover), for Stripe and for M-Pesa; after each
// sequence the provider answers truthfully (heal) and we check, from the sandbox's ledger and our
// tables:
//   FAILED ⇒ no successful charge for that order at the provider;
//   COMPLETED ⇒ exactly one; never two; never a terminal state while a charge is still pending;
//   in the end terminal, or under review with a reason.
// The pure model (money-model.test.ts) explores every sequence; this checks the adapters, the
// store and the sandbox agree with it.
import t, { type Test } from 'tap';

// About 2 minutes of real time (timeouts, callback waits, push deadlines), more on a busy machine.
t.setTimeout(420_000);

import { startSandbox } from '../sandbox/sandbox.ts';
import { type Outcome, pairCover, pairsOf } from './helpers/outcome-sequences.ts';
import { FAST_PROCESSING } from './helpers/processing.ts';
import { startRefusingProxy } from './helpers/refusing-proxy.ts';
import { type ApiClient, startTestService, type TestService } from './helpers/service.ts';
import { waitFor } from './helpers/wait.ts';

type Provider = 'stripe' | 'mpesa';

/** Timings that keep a sequence to a few seconds without changing what happens. */
const LANE_ENV: Record<string, string> = {
  ...FAST_PROCESSING,
  // Backoff of at least 100 ms: the refusing relay closes before the next call is made.
  RETRY_BASE_DELAY_MS: '200',
  RETRY_MAX_DELAY_MS: '400',
  PROVIDER_TIMEOUT_MS: '300',
  PROVIDER_MAX_ATTEMPTS: '4',
  RECONCILE_INTERVAL_SECONDS: '0.5',
  MPESA_CALLBACK_TIMEOUT_SECONDS: '0.5',
  MPESA_PUSH_DEADLINE_SECONDS: '2',
  REVIEW_AFTER_SECONDS: '15',
  WORKER_CONCURRENCY: '2',
  // Two order locks and the relay's LISTEN hold three (config.ts assertPoolLargeEnough).
  DATABASE_POOL_SIZE: '4',
};

type Lane = Readonly<{
  provider: Provider;
  service: TestService;
  api: ApiClient;
  sandbox: Awaited<ReturnType<typeof startSandbox>>;
  proxy: Awaited<ReturnType<typeof startRefusingProxy>>;
}>;

type Verdict = Readonly<{
  sequence: Outcome[];
  realized: Outcome[];
  orderId: string;
  status: string;
  review: string | null;
  charged: number;
  problems: string[];
}>;

async function startLane(t: Test, provider: Provider): Promise<Lane> {
  // The M-Pesa callback never comes here, so every push is settled by our queries: the calls
  // whose outcomes are scripted. (Callbacks have tests of their own: processing-mpesa.test.ts.)
  const sandbox = await startSandbox({
    port: 0,
    host: '127.0.0.1',
    switches: { mpesaCallback: 'missing', retryAfterSeconds: 1 },
  });
  t.teardown(() => sandbox.stop());
  const proxy = await startRefusingProxy(t, sandbox.url);
  const service = await startTestService(t, { ...LANE_ENV, STRIPE_API_URL: proxy.url, MPESA_API_URL: proxy.url });
  const { api } = await service.merchant(`model-${provider}`);
  return { provider, service, api, sandbox, proxy };
}

let keys = 0;

/** Plays one sequence: scripts it, creates the order, refuses connections when the script says, heals, checks. */
async function play(lane: Lane, sequence: Outcome[]): Promise<Verdict> {
  const n = ++keys;
  // The script is keyed by something the very first request carries (the order id is not known yet).
  const key = lane.provider === 'stripe' ? `model-${n}` : `2547${String(10_000_000 + n).slice(-8)}`;
  lane.sandbox.script(key, sequence);
  const created = await lane.api.createOrder(
    lane.provider === 'stripe'
      ? { amount: 1000 + n, currency: 'USD', description: key, paymentMethod: { type: 'card', token: 'pm_card_visa' } }
      : { amount: 100 * (100 + n), currency: 'KES', paymentMethod: { type: 'mpesa', phone: key } },
  );
  if (created.status !== 201) throw new Error(`create: ${created.status} ${created.text}`);
  const orderId = created.body.id as string;
  const db = lane.service.database;
  const ended = async () => db.count('provider_attempts', 'order_id = $1 and ended_at is not null', [orderId]);
  const inFlight = async () => db.count('provider_attempts', 'order_id = $1 and ended_at is null', [orderId]);

  let settled: { status: string; review: { reason: string } | null } | undefined;
  const deadline = Date.now() + 45_000;
  while (!settled && Date.now() < deadline) {
    const order = (await lane.api.get(`/payment-orders/${orderId}`)).body;
    if (
      order.status === 'COMPLETED' ||
      order.status === 'FAILED' ||
      (order.review && lane.sandbox.scripted(key).length === 0)
    ) {
      settled = order;
      break;
    }
    if (order.review && lane.sandbox.scripted(key).length > 0 && order.nextAttemptAt === null) {
      settled = order; // nothing more will be asked (a push nobody can query): the rest of the script is moot
      break;
    }
    if (lane.sandbox.scripted(key)[0] === 'refused' && (await inFlight()) === 0) {
      // The next call must find the provider's host refusing connections.
      const before = await ended();
      await lane.proxy.refuse();
      await waitFor(`call ${before + 1} of ${orderId} to be refused`, async () => (await ended()) > before, {
        timeoutMs: 30_000,
        intervalMs: 10,
      }).catch(() => undefined);
      lane.sandbox.skipScripted(key, 'refused');
      await lane.proxy.accept();
      continue;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (!settled) {
    // Heal: nothing scripted is left to wait for; the order must still end well.
    settled = await waitFor(
      `order ${orderId} to settle`,
      async () => {
        const order = (await lane.api.get(`/payment-orders/${orderId}`)).body;
        return order.status === 'COMPLETED' || order.status === 'FAILED' || order.review ? order : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    ).catch(() => (lane.api.get(`/payment-orders/${orderId}`) as Promise<{ body: any }>).then((r) => r.body));
  }
  const final = (await lane.api.get(`/payment-orders/${orderId}`)).body;
  const entries = lane.sandbox
    .ledger()
    .filter(
      (e) => e.orderId === orderId || (e.orderId !== null && e.orderId.length === 12 && orderId.endsWith(e.orderId)),
    );
  const charged = entries.filter((e) => e.status === 'charged').length;
  const pending = entries.filter((e) => e.status === 'pending').length;
  const problems: string[] = [];
  if (charged > 1) problems.push(`${charged} successful charges`);
  if (final.status === 'FAILED' && charged > 0) problems.push('FAILED while the provider holds the money');
  if (final.status === 'FAILED' && pending > 0) problems.push('FAILED while a charge may still be paid');
  if (final.status === 'COMPLETED' && charged !== 1) problems.push(`COMPLETED with ${charged} charges`);
  if (final.status === 'COMPLETED' && pending > 0) problems.push('COMPLETED while another charge is pending');
  if (final.status === 'PROCESSING' && !final.review?.reason) problems.push('neither terminal nor under review');
  const realized = lane.sandbox
    .scriptsUsed()
    .filter((use) => use.key === key)
    .map((use) => use.outcome);
  return {
    sequence,
    realized,
    orderId,
    status: final.status,
    review: final.review?.reason ?? null,
    charged,
    problems,
  };
}

/**
 * Where an outcome may land in a sequence: first, after a pending answer (a status call), after a
 * lost one (Stripe: a status call by key; an M-Pesa push whose answer was lost leaves nothing to
 * ask, so that context leads nowhere there).
 */
const CONTEXTS: Readonly<Record<Provider, readonly (readonly Outcome[])[]>> = {
  stripe: [[], ['pending'], ['lost']],
  mpesa: [[], ['pending']],
};
/** Lanes per provider: M-Pesa's sequences wait longer (callback timeouts, push deadlines). */
const LANES: Readonly<Record<Provider, number>> = { stripe: 1, mpesa: 3 };

async function explore(t: Test, provider: Provider) {
  const started = Date.now();
  const cover = pairCover(5);
  // Lanes (service, database, sandbox, relay each) share the work: they mostly wait. (Each lane is
  // a service with its own connections; the machine's PostgreSQL 15 takes 100 in all.)
  const lanes = await Promise.all(Array.from({ length: LANES[provider] }, () => startLane(t, provider)));
  const split = <T>(items: readonly T[]) => lanes.map((_, l) => items.filter((_, i) => i % lanes.length === l));
  const first = (
    await Promise.all(
      split(cover).map(async (half, l) => {
        const verdicts: Verdict[] = [];
        for (const sequence of half) verdicts.push(await play(lanes[l] as Lane, sequence));
        return verdicts;
      }),
    )
  ).flat();
  // Pairs the cover scripted but that did not reach the provider in that order are sought
  // directly, in each context until one gets there. An outcome that settled the order in a context
  // (a success, a decline) is not tried there again: nothing can follow it.
  const realized = new Set(first.flatMap((v) => pairsOf(v.realized)));
  const sought = [...new Set(first.flatMap((v) => pairsOf(v.sequence)))].filter((pair) => !realized.has(pair));
  const deadEnds = new Set<string>();
  const second = (
    await Promise.all(
      split(sought).map(async (pairs, l) => {
        const verdicts: Verdict[] = [];
        for (const pair of pairs) {
          const [x, y] = pair.split('→') as [Outcome, Outcome];
          for (const context of CONTEXTS[provider]) {
            const where = `${context.join(',')}|${x}`;
            if (deadEnds.has(where)) continue;
            const verdict = await play(lanes[l] as Lane, [...context, x, y]);
            verdicts.push(verdict);
            if (pairsOf(verdict.realized).includes(pair)) break;
            if (verdict.realized.length <= context.length + 1) deadEnds.add(where);
          }
        }
        return verdicts;
      }),
    )
  ).flat();
  return { verdicts: [...first, ...second], seconds: (Date.now() - started) / 1000 };
}

t.test('every ordered pair of outcomes, end to end, for Stripe and M-Pesa: the money stays right', async (t) => {
  const results = await Promise.all(
    (['stripe', 'mpesa'] as const).map(async (provider) => ({ provider, ...(await explore(t, provider)) })),
  );
  for (const { provider, verdicts, seconds } of results) {
    const scripted = new Set(verdicts.flatMap((v) => pairsOf(v.sequence)));
    const realized = new Set(verdicts.flatMap((v) => pairsOf(v.realized)));
    const ends = new Map<string, number>();
    for (const v of verdicts) {
      const end = v.status === 'PROCESSING' ? `review:${v.review}` : v.status;
      ends.set(end, (ends.get(end) ?? 0) + 1);
    }
    const never = [...scripted].filter((p) => !realized.has(p));
    t.comment(
      `${provider}: ${verdicts.length} sequences in ${seconds.toFixed(1)} s; scripted pairs ${scripted.size}/100; ` +
        `pairs that reached the provider in order ${realized.size}; ends: ${[...ends].map(([k, v]) => `${k} ${v}`).join(', ')}`,
    );
    t.comment(
      `${provider}: pairs that never reached the provider in that order (the first settles the order, or leaves nothing to ask): ${never.join(' ')}`,
    );
    t.equal(scripted.size, 100, `${provider}: the sample scripts every ordered pair of outcomes`);
    for (const v of verdicts) {
      t.same(
        v.problems,
        [],
        `${provider} ${v.sequence.join(',')} (took ${v.realized.join(',')}) → ${v.status}${v.review ? ` review:${v.review}` : ''} ${v.orderId}`,
      );
    }
  }
});
