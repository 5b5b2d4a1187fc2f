import { type Selectable, sql } from 'kysely';
import type { CallFact } from '../domain/money-rule.ts';
import type { AttemptView } from '../domain/order-json.ts';
import type { CallResult, CallTicket } from '../domain/provider.ts';
import type { Db, Tx } from './connection.ts';
import type { ProviderAttemptsTable } from './schema.ts';

/**
 * update provider_attempts set ended_at, outcome, http_status, latency_ms, error, provider_reference,
 * decline_code where id = $1 — with what the money rule records of a charge or status call (`fact`).
 */
export async function finishAttempt(
  db: Db | Tx,
  ticket: CallTicket,
  result: CallResult,
  fact?: CallFact,
): Promise<void> {
  await db
    .updateTable('provider_attempts')
    .set({
      ended_at: sql<Date>`clock_timestamp()`,
      outcome: fact?.outcome ?? result.outcome,
      http_status: result.httpStatus,
      latency_ms: Math.round(result.latencyMs),
      // Bounded: an error text is for people, not a place to dump a provider's whole answer.
      error: result.error === null ? null : result.error.slice(0, 1000),
      provider_reference: fact?.reference ?? null,
      decline_code: fact?.decline?.code ?? null,
    })
    .where('id', '=', ticket.attemptId)
    .execute();
}

/**
 * The order's charge and status calls, oldest first, as the money rule reads them; how many
 * provider calls it has made in all (token requests count: a provider whose token endpoint keeps
 * failing must also run out of retries); and when the first started.
 *
 * select kind, outcome, provider_reference, started_at, decline_code, error from provider_attempts
 * where order_id = $1 order by attempt_number
 */
export async function loadCallFacts(
  db: Db | Tx,
  orderId: string,
): Promise<{ calls: CallFact[]; count: number; firstCallAt: Date | null }> {
  const rows = await db
    .selectFrom('provider_attempts')
    .select(['kind', 'outcome', 'provider_reference', 'started_at', 'decline_code', 'error'])
    .where('order_id', '=', orderId)
    .orderBy('attempt_number')
    .execute();
  const calls = rows
    .filter((row) => row.kind === 'charge' || row.kind === 'status')
    .map(
      (row): CallFact => ({
        kind: row.kind as CallFact['kind'],
        outcome: row.outcome as CallFact['outcome'],
        reference: row.provider_reference,
        startedAt: row.started_at,
        decline: row.decline_code
          ? { code: row.decline_code, message: row.error ?? 'The provider declined the payment.' }
          : null,
      }),
    );
  return { calls, count: rows.length, firstCallAt: rows[0]?.started_at ?? null };
}

/**
 * The charge a COMPLETED order was paid by: the callback that completed it, else the call whose
 * answer was the success (M-Pesa: a CheckoutRequestID).
 */
export async function paidExternalId(db: Db | Tx, orderId: string): Promise<string | null> {
  const { rows } = await sql<{ external_id: string | null }>`
    select coalesce(
      (select external_id from provider_callbacks
        where order_id = ${orderId} and disposition = 'applied' order by id desc limit 1),
      (select provider_reference from provider_attempts
        where order_id = ${orderId} and outcome = 'succeeded' order by attempt_number desc limit 1)
    ) as external_id`.execute(db);
  return rows[0]?.external_id ?? null;
}

/** select * from provider_attempts where order_id = $1 order by attempt_number */
export async function listAttempts(db: Db, orderId: string): Promise<AttemptView[]> {
  const rows = await db
    .selectFrom('provider_attempts')
    .selectAll()
    .where('order_id', '=', orderId)
    .orderBy('attempt_number')
    .execute();
  return rows.map(toAttemptView);
}

type AttemptViewRow = Pick<
  Selectable<ProviderAttemptsTable>,
  | 'attempt_number'
  | 'kind'
  | 'provider'
  | 'started_at'
  | 'ended_at'
  | 'outcome'
  | 'http_status'
  | 'latency_ms'
  | 'error'
  | 'provider_reference'
>;

/** A provider_attempts row as the API shows it (also the operator console's story). */
export function toAttemptView(r: AttemptViewRow): AttemptView {
  return {
    number: r.attempt_number,
    kind: r.kind,
    provider: r.provider,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    outcome: r.outcome,
    httpStatus: r.http_status,
    latencyMs: r.latency_ms,
    error: r.error,
    providerReference: r.provider_reference,
  };
}
