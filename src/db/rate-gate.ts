import { sql } from 'kysely';
import type { Db } from './connection.ts';

export type GateLimits = Readonly<{
  /** Calls per window across every provider and instance (PROVIDER_CALLS_PER_SECOND). */
  global: number;
  /** Optional lower limits per provider. */
  perProvider: Readonly<Record<string, number>>;
  /** The sliding window: one second plus a safety margin for network jitter. */
  windowMs: number;
}>;

export type GateAnswer = Readonly<{ started: true; at: Date } | { started: false; retryAt: Date; dbNow: Date }>;

/**
 * select * from rate_gate_try_start_ahead(scopes, limits, window, ahead) — lets one call start in
 * the global scope and the provider's own (if it has a limit) now, or up to `aheadMs` from now, at
 * the moment its place frees up; or says when to ask again.
 */
export async function tryStart(db: Db, provider: string, limits: GateLimits, aheadMs = 0): Promise<GateAnswer> {
  const { scopes, perScope } = scopesFor(provider, limits);
  const { rows } = await sql<{ started: boolean; at: Date; db_now: Date }>`
    select started, at, read_at as db_now
    from rate_gate_try_start_ahead(${scopes}::text[], ${perScope}::int[], make_interval(secs => ${limits.windowMs / 1000}),
                                   make_interval(secs => ${aheadMs / 1000}), interval '0')`.execute(db);
  const row = rows[0];
  if (!row) throw new Error('rate_gate_try_start returned no row');
  return row.started ? { started: true, at: row.at } : { started: false, retryAt: row.at, dbNow: row.db_now };
}

/** The attempt row written in the same statement as the grant. */
export type AttemptStart = Readonly<{ orderId: string; provider: string; kind: string; idempotencyKey: string | null }>;

/**
 * A granted start: the attempt row, the grant (database clock), and when the call may leave, by this
 * process's clock (performance.now()): not before `sendAfter`, not after `sendBy`.
 */
export type GrantedStart = Readonly<{
  attemptId: string;
  attemptNumber: number;
  startedAt: Date;
  sendAfter: number;
  sendBy: number;
}>;

/** The provider's own window; `windowMs` is this plus the margin. */
const PROVIDER_WINDOW_MS = 1000;

/** When a granted call leaves: `leadMs` after its grant, within `windowMs`; asked for up to `aheadMs` early. */
export type SendTiming = Readonly<{ leadMs: number; windowMs: number; aheadMs: number }>;

/**
 * Every call leaves in the same short window after its grant, so that the provider sees the calls
 * spaced as they were granted, give or take that window: calls i and i + 2 are granted at least
 * 1 s + margin apart, and arrive at least 1 s + margin − window apart, less what the way to the
 * provider adds unevenly (the rest of the margin is for it). Measured on 2 cores (bench:gate):
 * - lead 10 ms: from grant to socket takes 1-10 ms (the commit's WAL flush, the answer, undici;
 *   p50 5.4 ms, p90 8.9 ms); a call whose answer comes sooner waits, so all leave alike;
 * - window: a quarter of the margin (10 ms at the default 40 ms, at least 2 ms); a call that cannot
 *   leave by then (a stalled event loop, a first call's cold code) gives its grant back;
 * - the other three quarters (30 ms) are for the way to the provider and its own stamping: 1 ms at
 *   p50, up to 29 ms when every core is busy and the sandbox waits for one;
 * - ahead 40 ms: a waiting call asks that long before its place frees up and is granted that exact
 *   moment, so that neither its wake-up nor the query's own time (2-9 ms, more when every core is
 *   busy) adds to the spacing, and its answer is back before it is due.
 */
export function sendTiming(limits: GateLimits): SendTiming {
  return { leadMs: 10, windowMs: Math.max(2, (limits.windowMs - PROVIDER_WINDOW_MS) / 4), aheadMs: 40 };
}

type GrantRow = {
  started: boolean;
  at: Date;
  /** `at`, and the gate's clock reading, in ms since the epoch with microseconds. */
  at_ms: string;
  read_ms: string;
  id: string | null;
  attempt_number: number | null;
};

/**
 * Waits until the gate lets a call start, and records that start as the call's attempt row in the
 * same statement: one round trip between the grant and the request leaving. Callers that lose the
 * race for a freed place ask again at the next earliest time; nobody is dropped. The call then
 * leaves in its send window (`sendTiming`), by this process's clock.
 *
 * with gate as (select * from rate_gate_try_start_ahead(...)),
 *      attempt as (insert into provider_attempts (...) select ... from gate where started returning ...)
 * select ... from gate left join attempt on true
 */
export function startWhenAllowed(
  db: Db,
  limits: GateLimits,
  start: AttemptStart,
  sleep: (ms: number) => Promise<unknown>,
): Promise<GrantedStart> {
  const { scopes, perScope } = scopesFor(start.provider, limits);
  const timing = sendTiming(limits);
  return untilGranted(clockOf(db), timing, sleep, async () => {
    const { rows } = await sql<GrantRow>`
      with gate as (
        select started, at, read_at from rate_gate_try_start_ahead(${scopes}::text[], ${perScope}::int[],
          make_interval(secs => ${limits.windowMs / 1000}), make_interval(secs => ${timing.aheadMs / 1000}), interval '0')
      ), attempt as (
        insert into provider_attempts (order_id, provider, attempt_number, kind, idempotency_key, started_at)
        select ${start.orderId}, ${start.provider},
               coalesce((select max(attempt_number) from provider_attempts where order_id = ${start.orderId}), 0) + 1,
               ${start.kind}, ${start.idempotencyKey}, gate.at
        from gate where gate.started
        returning id, attempt_number
      )
      select gate.started, gate.at, extract(epoch from gate.at) * 1000 as at_ms,
             extract(epoch from gate.read_at) * 1000 as read_ms, attempt.id, attempt.attempt_number
      from gate left join attempt on true`.execute(db);
    return rows[0];
  });
}

/**
 * For a call whose grant went unused (its request could not leave by `sendBy`): gives that start
 * back to the gate (sql/008) and waits for a new one, which becomes the same attempt row's start
 * (`gate_grants` counts the grants it took). Nothing is lost but the time: the freed place is
 * usually granted again at once, to this call or the next in line. A call whose grants keep going
 * stale (a database far away, whose answers come after the send window; a CPU that cannot keep up)
 * gets its next start further ahead each time — 0, 10, 30, 70 ms ... at most 1 s — so that it can
 * be ready for it, rather than asking again for ever.
 *
 * with gate as (select * from rate_gate_give_back_and_try(..., (select started_at from provider_attempts where id = $1))),
 *      attempt as (update provider_attempts set started_at = gate.at, gate_grants = gate_grants + 1 ...)
 * select ... from gate left join attempt on true
 */
export function restartWhenAllowed(
  db: Db,
  limits: GateLimits,
  attempt: Readonly<{ attemptId: string; provider: string }>,
  sleep: (ms: number) => Promise<unknown>,
): Promise<GrantedStart> {
  const { scopes, perScope } = scopesFor(attempt.provider, limits);
  const timing = sendTiming(limits);
  return untilGranted(clockOf(db), timing, sleep, async () => {
    const { rows } = await sql<GrantRow>`
      with gate as (
        select started, at, read_at from rate_gate_give_back_and_try(
          ${scopes}::text[], ${perScope}::int[], make_interval(secs => ${limits.windowMs / 1000}),
          make_interval(secs => ${timing.aheadMs / 1000}),
          (select make_interval(secs => least(1, 0.01 * (2 ^ (gate_grants - 1) - 1))) from provider_attempts where id = ${attempt.attemptId}),
          (select started_at from provider_attempts where id = ${attempt.attemptId}))
      ), attempt as (
        update provider_attempts set started_at = gate.at, gate_grants = gate_grants + 1
        from gate where gate.started and provider_attempts.id = ${attempt.attemptId}
        returning provider_attempts.id, provider_attempts.attempt_number
      )
      select gate.started, gate.at, extract(epoch from gate.at) * 1000 as at_ms,
             extract(epoch from gate.read_at) * 1000 as read_ms, attempt.id, attempt.attempt_number
      from gate left join attempt on true`.execute(db);
    return rows[0];
  });
}

/** Runs `ask` until it is granted, sleeping until the gate's next free moment in between. */
async function untilGranted(
  databaseClock: DatabaseClockBound,
  timing: SendTiming,
  sleep: (ms: number) => Promise<unknown>,
  ask: () => Promise<GrantRow | undefined>,
): Promise<GrantedStart> {
  for (;;) {
    const sentAt = performance.now();
    const row = await ask();
    const receivedAt = performance.now();
    if (!row) throw new Error('the rate gate returned no row');
    const atMs = Number(row.at_ms);
    const readMs = Number(row.read_ms);
    databaseClock.observe(sentAt, readMs, receivedAt);
    if (row.started) {
      // Granted and written in one statement: a grant without its row is a bug (an unknown attempt id).
      if (row.id === null || row.attempt_number === null)
        throw new Error('the gate granted a start with no attempt row');
      const grant = databaseClock.localTime(atMs);
      const sendBy = Math.max(sentAt, grant.earliest) + timing.leadMs + timing.windowMs;
      // The start is the gate's reading or a moment just after it: after the query left, in any case.
      const sendAfter = Math.min(grant.latest + timing.leadMs, sendBy - 1);
      return {
        attemptId: String(row.id),
        attemptNumber: row.attempt_number,
        startedAt: row.at,
        sendAfter,
        sendBy,
      };
    }
    // Back just before the place frees up (it may be granted up to aheadMs early); +1 ms: timers
    // may fire up to a millisecond early.
    await sleep(Math.max(1, atMs - readMs - timing.aheadMs + 1));
  }
}

/**
 * When, by this process's clock (performance.now()), did the database read its clock — at the
 * earliest and at the latest? Every gate query bounds the offset (database clock − ours): a
 * clock_timestamp() read during the statement was read after the query left and before its answer
 * came back, so reading − receivedAt ≤ offset ≤ reading − sentAt. The tightest bounds of the last
 * few seconds come from queries that waited for nothing, within a fraction of a millisecond of the
 * offset (same machine or not), and stay true while the clocks do not jump apart. Without them, a
 * grant's age would count from the query's departure, lock waits and all: with 12 callers on
 * 2 cores, 2-45 ms (median 7 ms) pass between asking and the grant.
 */
class DatabaseClockBound {
  /** [when observed (ours), lower bound on the offset, upper bound]; the last OFFSET_WINDOW_MS of them. */
  #bounds: Array<readonly [number, number, number]> = [];

  observe(sentAt: number, readingMs: number, receivedAt: number): void {
    const bound = [receivedAt, readingMs - receivedAt, readingMs - sentAt] as const;
    this.#bounds = this.#bounds.filter(([at]) => receivedAt - at <= OFFSET_WINDOW_MS);
    this.#bounds.push(bound);
    if (this.#bounds.length > OFFSET_SAMPLES) this.#bounds.shift();
    // Bounds that no longer agree (a clock was stepped): only the newest is known to be true.
    if (Math.max(...this.#bounds.map(([, low]) => low)) > Math.min(...this.#bounds.map(([, , high]) => high))) {
      this.#bounds = [bound];
    }
  }

  /** Our clock at the database's `readingMs` (a reading, or a time just after one; observe that query first). */
  localTime(readingMs: number): { earliest: number; latest: number } {
    const lower = Math.max(...this.#bounds.map(([, low]) => low));
    const upper = Math.min(...this.#bounds.map(([, , high]) => high));
    return { earliest: readingMs - upper, latest: readingMs - lower };
  }
}

/** Offset bounds are kept this long (the clocks' drift over it is far below a millisecond) ... */
const OFFSET_WINDOW_MS = 5_000;
/** ... and at most this many. */
const OFFSET_SAMPLES = 64;

/** One per database handle: every gate query of every caller in the process refines it. */
const clocks = new WeakMap<Db, DatabaseClockBound>();

function clockOf(db: Db): DatabaseClockBound {
  let clock = clocks.get(db);
  if (!clock) {
    clock = new DatabaseClockBound();
    clocks.set(db, clock);
  }
  return clock;
}

function scopesFor(provider: string, limits: GateLimits): { scopes: string[]; perScope: number[] } {
  const scopes = ['global'];
  const perScope = [limits.global];
  const own = limits.perProvider[provider];
  if (own !== undefined) {
    scopes.push(`provider:${provider}`);
    perScope.push(own);
  }
  return { scopes, perScope };
}
