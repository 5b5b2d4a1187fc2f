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
 * select * from rate_gate_try_start(scopes, limits, window) — lets one call start now in the
 * global scope and the provider's own (if it has a limit), or says when to ask again.
 */
export async function tryStart(db: Db, provider: string, limits: GateLimits): Promise<GateAnswer> {
  const { scopes, perScope } = scopesFor(provider, limits);
  const { rows } = await sql<{ started: boolean; at: Date; db_now: Date }>`
    select started, at, clock_timestamp() as db_now
    from rate_gate_try_start(${scopes}::text[], ${perScope}::int[], make_interval(secs => ${limits.windowMs / 1000}))`.execute(
    db,
  );
  const row = rows[0];
  if (!row) throw new Error('rate_gate_try_start returned no row');
  return row.started ? { started: true, at: row.at } : { started: false, retryAt: row.at, dbNow: row.db_now };
}

/** The attempt row written in the same statement as the grant. */
export type AttemptStart = Readonly<{ orderId: string; provider: string; kind: string; idempotencyKey: string | null }>;

/**
 * Waits until the gate lets a call start, and records that start as the call's attempt row in the
 * same statement: one round trip between the grant and the request leaving. Callers that lose the
 * race for a freed place ask again at the next earliest time; nobody is dropped.
 *
 * with gate as (select * from rate_gate_try_start(...)),
 *      attempt as (insert into provider_attempts (...) select ... from gate where started returning ...)
 * select ... from gate left join attempt on true
 */
export async function startWhenAllowed(
  db: Db,
  limits: GateLimits,
  start: AttemptStart,
  sleep: (ms: number) => Promise<unknown>,
): Promise<{ attemptId: string; attemptNumber: number; startedAt: Date }> {
  const { scopes, perScope } = scopesFor(start.provider, limits);
  for (;;) {
    const { rows } = await sql<{
      started: boolean;
      at: Date;
      db_now: Date;
      id: string | null;
      attempt_number: number | null;
    }>`
      with gate as (
        select started, at from rate_gate_try_start(${scopes}::text[], ${perScope}::int[], make_interval(secs => ${limits.windowMs / 1000}))
      ), attempt as (
        insert into provider_attempts (order_id, provider, attempt_number, kind, idempotency_key, started_at)
        select ${start.orderId}, ${start.provider},
               coalesce((select max(attempt_number) from provider_attempts where order_id = ${start.orderId}), 0) + 1,
               ${start.kind}, ${start.idempotencyKey}, gate.at
        from gate where gate.started
        returning id, attempt_number
      )
      select gate.started, gate.at, clock_timestamp() as db_now, attempt.id, attempt.attempt_number
      from gate left join attempt on true`.execute(db);
    const row = rows[0];
    if (!row) throw new Error('rate_gate_try_start returned no row');
    if (row.started && row.id !== null && row.attempt_number !== null) {
      return { attemptId: String(row.id), attemptNumber: row.attempt_number, startedAt: row.at };
    }
    // +1 ms: timers may fire up to a millisecond early.
    await sleep(Math.max(1, row.at.getTime() - row.db_now.getTime() + 1));
  }
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
