import { sql } from 'kysely';
import { type Dispatcher, request } from 'undici';
import type { Db, Tx } from '../db/connection.ts';
import { disableSubscription, findDelivery, findEvent, toSubscription } from '../db/webhooks.repository.ts';
import { eventBody } from '../domain/event-body.ts';
import type { EnqueueDelivery } from '../outbox/relay.ts';
import { retryAfterMs } from '../providers/stripe.ts';
import { nextDelayMs } from './retry-schedule.ts';
import { isForbiddenDestination } from './safe-http.ts';
import { signWebhook } from './signing.ts';

export type DeliverDeps = Readonly<{
  db: Db;
  dispatcher: Dispatcher;
  enqueue: EnqueueDelivery;
  timeoutMs: number;
  retryScheduleMs: readonly number[];
}>;

/** Read at most this much of a subscriber's answer: we only need its status. */
const MAX_RESPONSE_BYTES = 64 * 1024;

type Sent = Readonly<{
  statusCode: number | null;
  error: string | null;
  retryAfterMs: number | undefined;
  latencyMs: number;
}>;

/**
 * One delivery attempt: the signed POST, then ONE transaction with what it meant — the attempt
 * row, the delivery's new state, and the next attempt's job. A crash after the subscriber's 2xx
 * and before that transaction means the attempt is made again: at least once, same webhook-id.
 * `attempt` is the attempt this job is for; an older job (its attempt already recorded) does nothing.
 */
export async function deliverWebhook(deps: DeliverDeps, deliveryId: string, attempt: number): Promise<string> {
  const delivery = await findDelivery(deps.db, deliveryId);
  if (delivery?.status !== 'pending' || delivery.attemptCount + 1 !== attempt) return 'stale';
  const subscriptionRow = await deps.db
    .selectFrom('webhook_subscriptions')
    .selectAll()
    .where('id', '=', delivery.subscriptionId)
    .executeTakeFirstOrThrow();
  const subscription = toSubscription(subscriptionRow);
  if (!subscription.enabled || subscriptionRow.deleted_at !== null) {
    await finishDelivery(deps, deliveryId, attempt, { status: 'cancelled', error: 'subscription disabled or deleted' });
    return 'cancelled';
  }
  const event = await findEvent(deps.db, delivery.eventId);
  if (!event) throw new Error(`delivery ${deliveryId} names a missing event`);

  const body = JSON.stringify(eventBody(event));
  const timestamp = Math.floor(Date.now() / 1000);
  const attemptId = await startAttempt(deps.db, deliveryId);
  const sent = await send(
    deps,
    subscription.url,
    {
      'content-type': 'application/json',
      'user-agent': 'payment-order-gateway-webhooks/1',
      'webhook-id': event.id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signWebhook(subscription.signingSecrets, event.id, timestamp, body),
    },
    body,
  );

  // The attempt row, the delivery's state and any next job: one transaction (finishDelivery).
  const outcome = { attemptId, statusCode: sent.statusCode, error: sent.error, latencyMs: sent.latencyMs };
  if (sent.statusCode !== null && sent.statusCode >= 200 && sent.statusCode < 300) {
    await finishDelivery(deps, deliveryId, attempt, { status: 'delivered', ...outcome });
    return 'delivered';
  }
  if (sent.statusCode === 410) {
    // The subscriber says the endpoint is gone for good: stop sending it anything.
    await finishDelivery(
      deps,
      deliveryId,
      attempt,
      { status: 'cancelled', ...outcome, error: 'endpoint gone (410)' },
      async (trx) => disableSubscription(trx, subscription.id, 'the endpoint answered 410 Gone'),
    );
    return 'disabled';
  }
  const delayMs = nextDelayMs(deps.retryScheduleMs, attempt, sent.retryAfterMs);
  if (delayMs === null) {
    await finishDelivery(deps, deliveryId, attempt, { status: 'dead', ...outcome });
    return 'dead';
  }
  await finishDelivery(deps, deliveryId, attempt, { status: 'pending', ...outcome, delayMs });
  return 'retry';
}

async function send(deps: DeliverDeps, url: string, headers: Record<string, string>, body: string): Promise<Sent> {
  const started = performance.now();
  try {
    const response = await request(url, {
      method: 'POST',
      headers,
      body,
      dispatcher: deps.dispatcher,
      signal: AbortSignal.timeout(deps.timeoutMs),
      // No redirects: a 3xx is an answer like any other non-2xx.
      maxRedirections: 0,
    } as Parameters<typeof request>[1]);
    await drain(response.body);
    const retryAfter = response.headers['retry-after'];
    return {
      statusCode: response.statusCode,
      error: response.statusCode >= 300 ? `HTTP ${response.statusCode}` : null,
      retryAfterMs: retryAfterMs(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter),
      latencyMs: performance.now() - started,
    };
  } catch (error) {
    const e = error as { name?: string; code?: string; message?: string };
    const reason = isForbiddenDestination(error)
      ? `refused: ${e.message ?? 'forbidden destination'}`
      : e.name === 'TimeoutError' || e.name === 'AbortError'
        ? `timeout after ${deps.timeoutMs} ms`
        : (e.code ?? e.message ?? String(error));
    return { statusCode: null, error: reason, retryAfterMs: undefined, latencyMs: performance.now() - started };
  }
}

async function drain(body: AsyncIterable<Uint8Array> & { destroy?: () => void }): Promise<void> {
  let read = 0;
  for await (const chunk of body) {
    read += chunk.length;
    if (read > MAX_RESPONSE_BYTES) {
      body.destroy?.();
      return;
    }
  }
}

async function startAttempt(db: Db, deliveryId: string): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    insert into webhook_delivery_attempts (delivery_id, attempt_number, started_at)
    select ${deliveryId}, coalesce(max(attempt_number), 0) + 1, clock_timestamp()
    from webhook_delivery_attempts where delivery_id = ${deliveryId}
    returning id`.execute(db);
  const row = rows[0] as { id: string } | undefined;
  return String(row?.id);
}

async function finishDelivery(
  deps: DeliverDeps,
  deliveryId: string,
  attempt: number,
  result: {
    status: 'pending' | 'delivered' | 'dead' | 'cancelled';
    statusCode?: number | null;
    error?: string | null;
    delayMs?: number;
    attemptId?: string;
    latencyMs?: number;
  },
  alsoInTransaction?: (trx: Tx) => Promise<void>,
): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('webhook_deliveries')
      .set({
        status: result.status,
        attempt_count: attempt,
        last_status_code: result.statusCode ?? null,
        last_error: result.error ?? null,
        next_attempt_at:
          result.delayMs === undefined ? null : sql<Date>`now() + make_interval(secs => ${result.delayMs / 1000})`,
        delivered_at: result.status === 'delivered' ? sql<Date>`now()` : null,
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', deliveryId)
      .where('status', '=', 'pending')
      .where('attempt_count', '=', attempt - 1)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) return;
    if (result.attemptId) {
      await trx
        .updateTable('webhook_delivery_attempts')
        .set({
          ended_at: sql<Date>`clock_timestamp()`,
          status_code: result.statusCode ?? null,
          latency_ms: result.latencyMs === undefined ? null : Math.round(result.latencyMs),
          error: result.error ?? null,
        })
        .where('id', '=', result.attemptId)
        .execute();
    }
    if (alsoInTransaction) await alsoInTransaction(trx);
    if (result.status === 'pending' && result.delayMs !== undefined)
      await deps.enqueue(trx, deliveryId, attempt + 1, result.delayMs);
  });
}
