import type { LedgerEntry, RequestRecord } from '../../sandbox/sandbox.ts';
import type { Answer, OrderKind } from './chaos-load.ts';
import type { FleetEvent, ForwardedRequest } from './chaos-processes.ts';
import type { ReceivedWebhook } from './chaos-subscriber.ts';

/**
 * The chaos test's verdicts, from what can be seen outside the gateways only: the HTTP answers it
 * got, the sandbox's ledger and arrival log (its own process), and the subscriber's log.
 */
export type RunRecord = Readonly<{
  seed: number;
  runMs: number;
  loadMs: number;
  /** Every key the merchant used, with the kind of order and how many times it was sent. */
  keys: ReadonlyMap<string, Readonly<{ kind: OrderKind; sends: number }>>;
  answers: readonly Answer[];
  /** GET /payment-orders/{id} of every order a 201 named, after the heal. */
  orders: ReadonlyMap<string, any>;
  /** Every status each order showed in any answer, in the order seen. */
  observedStatuses: ReadonlyMap<string, readonly string[]>;
  /** Ids GET /payment-orders lists for the merchant. */
  listed: readonly string[];
  ledger: readonly LedgerEntry[];
  arrivals: readonly RequestRecord[];
  received: readonly ReceivedWebhook[];
  fleet: readonly FleetEvent[];
  /** When the database was down: from the stop to the end of the start (ms since origin). */
  dbDown: Readonly<{ fromMs: number; toMs: number }> | null;
  callbacks: readonly ForwardedRequest[];
  originMs: number;
  healed: boolean;
  healMs: number;
}>;

export type Check = Readonly<{ name: string; ok: boolean; evidence: readonly string[] }>;

/** After the database is back, pools reconnect: answers started this soon after still count as "during". */
const DB_RECOVERY_GRACE_MS = 2_000;
const LIMIT_PER_SECOND = 2;
const MAX_EVIDENCE = 12;

const TERMINAL = new Set(['COMPLETED', 'FAILED']);

export function runChecks(run: RunRecord): Check[] {
  return [
    everyOrderSettled(run),
    oneKeyOneOrder(run),
    everyKeyGotItsOrder(run),
    terminalNeverChanges(run),
    chargedAtMostOnce(run),
    failedNotCharged(run),
    completedChargedOnce(run),
    everyTerminalEventReceived(run),
    everyReviewEventReceived(run),
    signaturesValid(run),
    providerRate(run),
    no5xxExceptDatabaseOutage(run),
    noClientErrors(run),
    noGatewayCrashed(run),
  ];
}

// ---------------------------------------------------------------------------------------------
// Orders

function everyOrderSettled(run: RunRecord): Check {
  const evidence: string[] = [];
  for (const [id, order] of run.orders) {
    if (TERMINAL.has(order?.status)) continue;
    if (order?.status === 'PROCESSING' && hasReview(order)) continue;
    evidence.push(describeOrder(run, id));
  }
  return check(
    'every 201 order is terminal, or under review with a reason',
    evidence,
    `${evidence.length} of ${run.orders.size} orders neither terminal nor under review`,
  );
}

/** review: { reason: non-empty string, since: ISO-8601 } (the contract's shape). */
export function hasReview(order: any): boolean {
  const review = order?.review;
  return (
    typeof review?.reason === 'string' &&
    review.reason.length > 0 &&
    typeof review.since === 'string' &&
    !Number.isNaN(Date.parse(review.since))
  );
}

function oneKeyOneOrder(run: RunRecord): Check {
  const byKey = new Map<string, { ids: Set<string>; fresh: number; bodies: Set<string | null> }>();
  for (const answer of run.answers) {
    if (answer.status !== 201 || !answer.idempotencyKey || !answer.orderId) continue;
    const entry = byKey.get(answer.idempotencyKey) ?? { ids: new Set(), fresh: 0, bodies: new Set() };
    entry.ids.add(answer.orderId);
    entry.bodies.add(answer.bodyHash);
    if (!answer.replayed) entry.fresh += 1;
    byKey.set(answer.idempotencyKey, entry);
  }
  const evidence: string[] = [];
  for (const [key, { ids, fresh, bodies }] of byKey) {
    if (ids.size > 1) evidence.push(`key ${key}: ${ids.size} orders ${[...ids].join(', ')}`);
    if (fresh > 1) evidence.push(`key ${key}: ${fresh} 201s without Idempotent-Replayed (one creation expected)`);
    if (ids.size === 1 && bodies.size > 1)
      evidence.push(`key ${key}: ${bodies.size} different 201 bodies (a replay must repeat the first byte for byte)`);
  }
  // The merchant made orders only through these keys: more orders listed than keys means a key made two.
  const announced = new Set([...byKey.values()].flatMap(({ ids }) => [...ids]));
  const unannounced = run.listed.filter((id) => !announced.has(id));
  if (unannounced.length > 0) {
    evidence.push(
      `${unannounced.length} order(s) listed by GET /payment-orders that no 201 named: ${unannounced.slice(0, 5).join(', ')}`,
    );
  }
  return check('one idempotency key → one order (replays: the first 201 again, byte for byte)', evidence);
}

function everyKeyGotItsOrder(run: RunRecord): Check {
  const with201 = new Set(run.answers.filter((a) => a.status === 201).map((a) => a.idempotencyKey));
  const evidence = [...run.keys.keys()]
    .filter((key) => !with201.has(key))
    .map((key) => {
      const tries = run.answers.filter((a) => a.idempotencyKey === key);
      return `key ${key}: no 201 in ${tries.length} tries: ${tries.map(answerLabel).join(', ')}`;
    });
  return check('every key the merchant sent got its 201 (retrying with the same key)', evidence);
}

function terminalNeverChanges(run: RunRecord): Check {
  const evidence: string[] = [];
  for (const [id, statuses] of run.observedStatuses) {
    const first = statuses.findIndex((status) => TERMINAL.has(status));
    if (first >= 0 && statuses.slice(first).some((status) => status !== statuses[first])) {
      evidence.push(`${id}: seen ${statuses.join(' → ')}`);
    }
  }
  return check('a terminal status never changes (as seen in answers)', evidence);
}

// ---------------------------------------------------------------------------------------------
// Money, from the sandbox's ledger

/** Ledger entries of one order: Stripe's carry the order id, M-Pesa's its last 12 characters. */
export function entriesFor(ledger: readonly LedgerEntry[], orderId: string): LedgerEntry[] {
  return ledger.filter((entry) =>
    entry.provider === 'stripe' ? entry.orderId === orderId : entry.orderId === orderId.slice(-12),
  );
}

const charges = (ledger: readonly LedgerEntry[], orderId: string) =>
  entriesFor(ledger, orderId).filter((entry) => entry.status === 'charged');

function chargedAtMostOnce(run: RunRecord): Check {
  const evidence: string[] = [];
  for (const id of run.orders.keys()) {
    if (charges(run.ledger, id).length > 1) evidence.push(describeOrder(run, id));
  }
  const known = [...run.orders.keys()];
  const orphans = run.ledger.filter(
    (entry) =>
      entry.status === 'charged' &&
      !known.some((id) => (entry.provider === 'stripe' ? entry.orderId === id : entry.orderId === id.slice(-12))),
  );
  for (const entry of orphans) evidence.push(`charge for no order a 201 named: ${ledgerLabel(entry)}`);
  return check('every order charged at most once (sandbox ledger)', evidence);
}

function failedNotCharged(run: RunRecord): Check {
  const evidence: string[] = [];
  for (const [id, order] of run.orders) {
    if (order?.status === 'FAILED' && charges(run.ledger, id).length > 0) evidence.push(describeOrder(run, id));
  }
  return check('FAILED ⇒ not charged', evidence);
}

function completedChargedOnce(run: RunRecord): Check {
  const evidence: string[] = [];
  for (const [id, order] of run.orders) {
    if (order?.status === 'COMPLETED' && charges(run.ledger, id).length !== 1) evidence.push(describeOrder(run, id));
  }
  return check('COMPLETED ⇒ exactly one charge', evidence);
}

// ---------------------------------------------------------------------------------------------
// Events, from the subscriber's log

function everyTerminalEventReceived(run: RunRecord): Check {
  const evidence: string[] = [];
  const typeFor: Record<string, string> = { COMPLETED: 'payment_order.completed', FAILED: 'payment_order.failed' };
  for (const [id, order] of run.orders) {
    if (!TERMINAL.has(order?.status)) continue;
    const mine = run.received.filter((r) => r.orderId === id && r.type?.startsWith('payment_order.'));
    const terminal = mine.filter((r) => r.type === 'payment_order.completed' || r.type === 'payment_order.failed');
    const taken = terminal.filter((r) => r.acknowledged && r.signatureValid && r.type === typeFor[order.status]);
    const eventIds = new Set(terminal.map((r) => r.eventId));
    const contradicting = terminal.filter((r) => r.type !== typeFor[order.status]);
    if (taken.length === 0) {
      evidence.push(
        `${id} ${order.status}: no acknowledged, validly signed ${typeFor[order.status]} (received: ${
          mine.map((r) => `${r.type}/${r.mode}${r.signatureValid ? '' : '/bad-signature'}`).join(', ') || 'nothing'
        })`,
      );
    }
    if (eventIds.size > 1)
      evidence.push(`${id}: ${eventIds.size} different terminal event ids ${[...eventIds].join(', ')}`);
    if (contradicting.length > 0) {
      evidence.push(`${id} ${order.status}: also received ${contradicting.map((r) => r.type).join(', ')}`);
    }
  }
  return check("every terminal order's event received, acknowledged, validly signed (one event id)", evidence);
}

function everyReviewEventReceived(run: RunRecord): Check {
  const evidence: string[] = [];
  for (const [id, order] of run.orders) {
    if (order?.status !== 'PROCESSING' || !hasReview(order)) continue;
    const taken = run.received.some(
      (r) => r.orderId === id && r.type === 'payment_order.review_required' && r.acknowledged && r.signatureValid,
    );
    if (!taken) evidence.push(`${id} under review (${order.review.reason}): no payment_order.review_required received`);
  }
  return check('every order under review: its payment_order.review_required event received', evidence);
}

function signaturesValid(run: RunRecord): Check {
  const evidence = run.received
    .filter((r) => !r.signatureValid)
    .map((r) => `${r.webhookId} ${r.type} for ${r.orderId}: ${r.signatureError}`);
  return check('every webhook the subscriber received verifies (standardwebhooks)', evidence);
}

// ---------------------------------------------------------------------------------------------
// The provider's view of the rate, from the sandbox's arrival log

export type Window = Readonly<{ startMs: number; arrivals: readonly RequestRecord[] }>;

/** For each arrival s (sorted by atMs), the arrivals in [s, s + 1000 ms). */
export function arrivalWindows(arrivals: readonly RequestRecord[]): Window[] {
  const sorted = arrivals.toSorted((a, b) => a.atMs - b.atMs);
  const windows: Window[] = [];
  for (let i = 0, j = 0; i < sorted.length; i++) {
    const startMs = (sorted[i] as RequestRecord).atMs;
    while (j < sorted.length && (sorted[j] as RequestRecord).atMs < startMs + 1000) j++;
    windows.push({ startMs, arrivals: sorted.slice(i, j) });
  }
  return windows;
}

export function maxArrivalsPerSecond(arrivals: readonly RequestRecord[]): number {
  return Math.max(0, ...arrivalWindows(arrivals).map((window) => window.arrivals.length));
}

function providerRate(run: RunRecord): Check {
  const crowded = arrivalWindows(run.arrivals).filter((window) => window.arrivals.length > LIMIT_PER_SECOND);
  const attempts = recordedAttempts(run);
  const evidence = crowded.map(
    (window) =>
      `+${((window.startMs - run.originMs) / 1000).toFixed(3)} s: ${window.arrivals.length} arrivals within ${
        (window.arrivals.at(-1) as RequestRecord).atMs - window.startMs
      } ms: ${window.arrivals
        .map(
          (a) =>
            `${a.kind} ${a.path} @+${a.atMs - window.startMs} ms${a.fault ? ` (${a.fault})` : ''}${connectionLabel(a)}${nearestAttempt(attempts, a.atMs)}`,
        )
        .join('; ')}`,
  );
  return check(`at most ${LIMIT_PER_SECOND} provider arrivals in any 1 s (sandbox atMs)`, evidence);
}

type RecordedAttempt = Readonly<{ orderId: string; number: number; kind: string; startedMs: number }>;

/** Every provider call as the orders' `attempts` (GET /payment-orders/{id}) show it. */
function recordedAttempts(run: RunRecord): RecordedAttempt[] {
  return [...run.orders].flatMap(([orderId, order]) =>
    (order?.attempts ?? []).map((a: any) => ({
      orderId,
      number: a.number,
      kind: a.kind,
      startedMs: Date.parse(a.startedAt),
    })),
  );
}

/**
 * The recorded call that most probably made an arrival: the latest start at or before it (within
 * 300 ms). Same host, so one clock; the gap is the call's way from the gate's grant to the provider.
 */
function nearestAttempt(attempts: readonly RecordedAttempt[], atMs: number): string {
  let best: RecordedAttempt | null = null;
  for (const attempt of attempts) {
    if (attempt.startedMs > atMs + 2 || attempt.startedMs < atMs - 300) continue;
    if (!best || attempt.startedMs > best.startedMs) best = attempt;
  }
  return best
    ? ` [${best.orderId} #${best.number} ${best.kind}, recorded start ${atMs - best.startedMs} ms earlier]`
    : '';
}

/** The sandbox's connection stamp, where it keeps one (a connection's first request is a cold one). */
function connectionLabel(arrival: RequestRecord): string {
  const connection = (arrival as { connection?: { id?: number; request?: number } }).connection;
  return connection?.id ? ` conn ${connection.id} req ${connection.request}` : '';
}

// ---------------------------------------------------------------------------------------------
// Answers

function duringOutage(run: RunRecord, answer: Answer): boolean {
  if (!run.dbDown) return false;
  return answer.doneMs >= run.dbDown.fromMs && answer.sentMs <= run.dbDown.toMs + DB_RECOVERY_GRACE_MS;
}

function no5xxExceptDatabaseOutage(run: RunRecord): Check {
  const bad = run.answers.filter(
    (a) =>
      a.status !== null &&
      a.status >= 500 &&
      !(a.status === 503 && a.code === 'database_unavailable' && a.retryAfter !== null && duringOutage(run, a)),
  );
  const groups = new Map<string, Answer[]>();
  for (const answer of bad) {
    const label = `${answer.status} ${answer.code ?? '-'}${answer.status === 503 && answer.retryAfter === null ? ' (no Retry-After)' : ''} ${answer.method} ${answer.path.replace(/po_\w+/, ':id')} ${duringOutage(run, answer) ? 'during the outage' : 'OUTSIDE the outage'}`;
    groups.set(label, [...(groups.get(label) ?? []), answer]);
  }
  const evidence = [...groups].map(
    ([label, answers]) =>
      `${answers.length} × ${label}, at +${answers
        .slice(0, 6)
        .map((a) => (a.sentMs / 1000).toFixed(1))
        .join(
          ', ',
        )}${answers.length > 6 ? ', ...' : ''} s (instances ${[...new Set(answers.map((a) => a.instance))].join(',')})`,
  );
  return check('no 5xx, except 503 database_unavailable with Retry-After while the database was down', evidence);
}

function noClientErrors(run: RunRecord): Check {
  const evidence = run.answers
    .filter((a) => a.status !== null && a.status >= 400 && a.status < 500)
    .map(
      (a) =>
        `${a.status} ${a.code} ${a.method} ${a.path} key ${a.idempotencyKey ?? '-'} at +${(a.sentMs / 1000).toFixed(1)} s`,
    );
  return check('no 4xx (the test only sends valid requests)', evidence);
}

function noGatewayCrashed(run: RunRecord): Check {
  const evidence = run.fleet
    .filter((event) => event.type === 'crashed' || event.type === 'start_failed')
    .map(
      (event) =>
        `gateway ${event.slot} ${event.type} at +${(event.atMs / 1000).toFixed(1)} s${outageNote(run, event.atMs)}: ${event.detail ?? ''}`,
    );
  return check('no gateway exits on its own, and one started while the database is down waits for it', evidence);
}

function outageNote(run: RunRecord, atMs: number): string {
  if (!run.dbDown) return '';
  return atMs >= run.dbDown.fromMs && atMs <= run.dbDown.toMs + DB_RECOVERY_GRACE_MS ? ' (database down)' : '';
}

// ---------------------------------------------------------------------------------------------
// Evidence and figures

function check(name: string, evidence: string[], summary?: string): Check {
  const shown = evidence.slice(0, MAX_EVIDENCE);
  if (evidence.length > MAX_EVIDENCE) shown.push(`... and ${evidence.length - MAX_EVIDENCE} more`);
  return { name, ok: evidence.length === 0, evidence: summary && evidence.length > 0 ? [summary, ...shown] : shown };
}

/** One order as the API, the ledger and the subscriber show it: what a reviewer needs to find it. */
export function describeOrder(run: RunRecord, id: string): string {
  const order = run.orders.get(id);
  const attempts = (order?.attempts ?? [])
    .map(
      (a: any) =>
        `#${a.number} ${a.kind} ${a.outcome ?? 'unfinished'}${a.httpStatus ? ` ${a.httpStatus}` : ''}${a.error ? ` (${String(a.error).slice(0, 60)})` : ''}`,
    )
    .join('; ');
  const ledger = entriesFor(run.ledger, id).map(ledgerLabel).join('; ') || 'none';
  const review = order?.review ? ` review=${JSON.stringify(order.review)}` : '';
  const reconciling = order?.reconcilingSince ? ` reconcilingSince=${order.reconcilingSince}` : '';
  const last = order?.history?.at(-1);
  return `${id} [${order?.provider} ${order?.status}${reconciling}${review}] last transition: ${last ? `${last.to} "${last.reason}"` : '-'}; attempts: ${attempts || 'none'}; ledger: ${ledger}`;
}

function ledgerLabel(entry: LedgerEntry): string {
  const callbacks = entry.callbacks?.length
    ? ` callbacks ${entry.callbacks.map((c) => c.status ?? c.error).join(',')}`
    : entry.provider === 'mpesa'
      ? ' no callback'
      : '';
  return `${entry.id} ${entry.status}${entry.resultCode ? ` (${entry.resultCode})` : ''}${callbacks}`;
}

function answerLabel(answer: Answer): string {
  return `${answer.status ?? answer.error}${answer.code ? ` ${answer.code}` : ''}@+${(answer.sentMs / 1000).toFixed(1)}s`;
}

function countBy<T>(items: readonly T[], key: (item: T) => string): string {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return (
    [...counts]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, n]) => `${name}: ${n}`)
      .join(', ') || 'none'
  );
}

/** The most arrivals in any 10-second window (sorted input). */
function busiest10s(sorted: readonly RequestRecord[]): number {
  let best = 0;
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && (sorted[j] as RequestRecord).atMs < (sorted[i] as RequestRecord).atMs + 10_000) j++;
    best = Math.max(best, j - i);
  }
  return best;
}

export function figures(run: RunRecord): string[] {
  const posts = run.answers.filter((a) => a.method === 'POST' && a.path === '/payment-orders');
  const created = posts.filter((a) => a.status === 201);
  const orders = [...run.orders.values()];
  const charged = run.ledger.filter((e) => e.status === 'charged');
  const events = run.received.filter((r) => r.acknowledged && r.signatureValid);
  const webhookIds = run.received.map((r) => r.webhookId);
  // At least once: a webhook-id received again after the subscriber had acknowledged it.
  const acknowledgedAt = new Map<string, number>();
  let duplicates = 0;
  for (const r of run.received) {
    const firstAck = r.webhookId ? acknowledgedAt.get(r.webhookId) : undefined;
    if (firstAck !== undefined && r.atMs >= firstAck) duplicates += 1;
    if (r.webhookId && r.acknowledged && firstAck === undefined) acknowledgedAt.set(r.webhookId, r.atMs);
  }
  const sortedArrivals = run.arrivals.toSorted((a, b) => a.atMs - b.atMs);
  const spanS =
    sortedArrivals.length > 1
      ? ((sortedArrivals.at(-1) as RequestRecord).atMs - (sortedArrivals[0] as RequestRecord).atMs) / 1000
      : 0;
  const loadArrivals = sortedArrivals.filter((a) => a.atMs - run.originMs <= run.loadMs);
  const kills = run.fleet.filter((e) => e.type === 'killed');
  const s = (ms: number) => `+${(ms / 1000).toFixed(1)} s`;
  return [
    `seed: ${run.seed} (replay: CHAOS_SEED=${run.seed} npm run test:chaos)`,
    `run time: ${(run.runMs / 1000).toFixed(1)} s (load ${(run.loadMs / 1000).toFixed(0)} s, heal ${run.healed ? 'done' : 'NOT done'} after ${(run.healMs / 1000).toFixed(1)} s)`,
    `orders: ${run.keys.size} keys sent ${posts.length} times (${[...run.keys.values()].reduce((n, k) => n + k.sends, 0)} merchant sends + retries), ${created.length} × 201 for ${run.orders.size} orders, ${created.filter((a) => a.replayed).length} replays (Idempotent-Replayed)`,
    `order kinds: ${countBy([...run.keys.values()], (k) => k.kind)}`,
    `kills: ${kills.length} (kill -9 at ${kills.map((e) => `${s(e.atMs)} #${e.slot}`).join(', ') || '-'}); gateway events: ${countBy(run.fleet, (e) => e.type)}`,
    `database restart: ${run.dbDown ? `down ${s(run.dbDown.fromMs)} → up ${s(run.dbDown.toMs)} (${((run.dbDown.toMs - run.dbDown.fromMs) / 1000).toFixed(1)} s)` : 'none'}`,
    `answers by status: ${countBy(run.answers, (a) => (a.status === null ? `no answer (${a.error})` : `${a.status}${a.code ? ` ${a.code}` : ''}`))}`,
    `orders by status: ${countBy(orders, (o) => String(o?.status))}; under review: ${orders.filter(hasReview).length}; reconciling: ${orders.filter((o) => o?.reconcilingSince).length}`,
    `ledger: ${run.ledger.length} entries, ${charged.length} charged, ${run.ledger.filter((e) => e.status === 'declined').length} declined, ${run.ledger.filter((e) => e.status === 'pending').length} pending`,
    `M-Pesa callbacks through the load balancer: ${countBy(run.callbacks, (c) => String(c.status))}`,
    `webhooks: ${run.received.length} requests received, ${events.length} acknowledged and valid, ${new Set(events.map((r) => r.eventId)).size} distinct events; retries (same webhook-id again): ${webhookIds.length - new Set(webhookIds).size}, of them after an acknowledgement: ${duplicates}; by subscriber mode: ${countBy(run.received, (r) => r.mode)}`,
    `provider arrivals: ${run.arrivals.length} (${countBy(run.arrivals, (a) => `${a.provider} ${a.kind}${a.fault ? ` ${a.fault}` : ''}`)})`,
    `max provider arrivals in any 1 s: ${maxArrivalsPerSecond(run.arrivals)} (limit ${LIMIT_PER_SECOND})`,
    ...[...run.orders.keys()]
      .filter((id) => hasReview(run.orders.get(id)))
      .slice(0, 10)
      .map((id) => `under review: ${describeOrder(run, id)}`),
    `provider call rate: ${spanS > 0 ? ((sortedArrivals.length - 1) / spanS).toFixed(2) : '0'} calls/s over ${spanS.toFixed(1)} s (${loadArrivals.length} arrivals during the load phase); busiest 10 s: ${(busiest10s(sortedArrivals) / 10).toFixed(2)} calls/s`,
  ];
}
