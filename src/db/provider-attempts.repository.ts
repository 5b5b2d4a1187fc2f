import { sql } from 'kysely';
import type { AttemptView } from '../domain/order-json.ts';
import type { LastCall } from '../domain/process-payment-order.ts';
import type { CallResult, CallTicket } from '../domain/provider.ts';
import type { Db, Tx } from './connection.ts';

/** update provider_attempts set ended_at, outcome, http_status, latency_ms, error where id = $1 */
export async function finishAttempt(db: Db | Tx, ticket: CallTicket, result: CallResult): Promise<void> {
  await db
    .updateTable('provider_attempts')
    .set({
      ended_at: sql<Date>`clock_timestamp()`,
      outcome: result.outcome,
      http_status: result.httpStatus,
      latency_ms: Math.round(result.latencyMs),
      // Bounded: an error text is for people, not a place to dump a provider's whole answer.
      error: result.error === null ? null : result.error.slice(0, 1000),
    })
    .where('id', '=', ticket.attemptId)
    .execute();
}

/**
 * The order's last charge or status call, and how many provider calls it has made in all (token
 * requests count: a provider whose token endpoint keeps failing must also run out of retries).
 */
export async function lastCall(
  db: Db,
  orderId: string,
): Promise<{ last: LastCall | null; count: number; firstCallAt: Date | null }> {
  const rows = await db
    .selectFrom('provider_attempts')
    .select(['kind', 'outcome', 'started_at'])
    .where('order_id', '=', orderId)
    .orderBy('attempt_number', 'desc')
    .execute();
  const first = rows.find((row) => row.kind === 'charge' || row.kind === 'status');
  return {
    last: first ? { kind: first.kind as LastCall['kind'], outcome: first.outcome as LastCall['outcome'] } : null,
    count: rows.length,
    firstCallAt: rows.at(-1)?.started_at ?? null,
  };
}

/** select * from provider_attempts where order_id = $1 order by attempt_number */
export async function listAttempts(db: Db, orderId: string): Promise<AttemptView[]> {
  const rows = await db
    .selectFrom('provider_attempts')
    .selectAll()
    .where('order_id', '=', orderId)
    .orderBy('attempt_number')
    .execute();
  return rows.map((r) => ({
    number: r.attempt_number,
    kind: r.kind,
    provider: r.provider,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    outcome: r.outcome,
    httpStatus: r.http_status,
    latencyMs: r.latency_ms,
    error: r.error,
  }));
}
