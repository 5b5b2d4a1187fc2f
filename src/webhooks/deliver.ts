import { type Dispatcher, request } from 'undici';
import type { Db } from '../db/connection.ts';
import {
  type AttemptOutcome,
  type DeliveryToSend,
  findDeliveriesToSend,
  recordAttemptOutcomes,
  startAttempts,
} from '../db/webhook-deliveries.repository.ts';
import { disableSubscription } from '../db/webhook-subscriptions.repository.ts';
import { eventBody } from '../domain/event-body.ts';
import { retryAfterMs } from '../lib/retry-after.ts';
import { VERSION } from '../lib/version.ts';
import type { EnqueueDelivery } from '../outbox/relay.ts';
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

export type DeliveryJob = Readonly<{ deliveryId: string; attempt: number }>;
export type DeliveryResult = 'stale' | 'cancelled' | 'delivered' | 'disabled' | 'retry' | 'dead';

/**
 * A batch of delivery attempts: the signed POSTs, all at once, then ONE transaction with what they
 * meant — each attempt row, each delivery's new state, the subscriptions to disable and the next
 * attempts' jobs. Reading and stamping the batch are one statement each, so the database work per
 * delivery shrinks with the batch. A crash after a subscriber's 2xx and before that transaction
 * means the attempt is made again: at least once, same webhook-id. A job whose attempt is already
 * recorded (an older or repeated job) is stale and does nothing.
 */
export async function deliverWebhooks(deps: DeliverDeps, jobs: readonly DeliveryJob[]): Promise<DeliveryResult[]> {
  const found = await findDeliveriesToSend(
    deps.db,
    jobs.map((job) => job.deliveryId),
  );
  const results: DeliveryResult[] = jobs.map(() => 'stale');
  const cancelled: AttemptOutcome[] = [];
  const candidates: Array<{ index: number; job: DeliveryJob; item: DeliveryToSend }> = [];
  const taken = new Set<string>();
  jobs.forEach((job, index) => {
    const item = found.get(job.deliveryId);
    // The same delivery twice in one batch is sent once.
    if (!item || taken.has(job.deliveryId)) return;
    const { delivery, subscription } = item;
    if (delivery.status !== 'pending' || delivery.attemptCount + 1 !== job.attempt) return;
    taken.add(job.deliveryId);
    if (!subscription.enabled || subscription.deleted) {
      results[index] = 'cancelled';
      cancelled.push(outcome(job, 'cancelled', { error: 'subscription disabled or deleted' }));
      return;
    }
    candidates.push({ index, job, item });
  });

  const attemptIds = await startAttempts(
    deps.db,
    candidates.map(({ job }) => job.deliveryId),
  );
  // A delivery whose attempt another worker has just started is left to it (this job is stale).
  const toSend = candidates.filter(({ job }) => attemptIds.has(job.deliveryId));
  // Every send settles (sendEvent turns failures into outcomes), so the batch never fails while
  // one of its requests is still in flight: a retried batch cannot race its own sends.
  const sent = await Promise.all(toSend.map(({ item }) => sendEvent(deps, item).catch(failedToSend)));

  const outcomes = [...cancelled];
  const toDisable: string[] = [];
  toSend.forEach(({ index, job, item }, i) => {
    const answer = sent[i] as Sent;
    const request = {
      statusCode: answer.statusCode,
      error: answer.error,
      attemptId: attemptIds.get(job.deliveryId) ?? null,
      latencyMs: answer.latencyMs,
    };
    if (answer.statusCode !== null && answer.statusCode >= 200 && answer.statusCode < 300) {
      results[index] = 'delivered';
      outcomes.push(outcome(job, 'delivered', request));
    } else if (answer.statusCode === 410) {
      // The subscriber says the endpoint is gone for good: stop sending it anything.
      results[index] = 'disabled';
      outcomes.push(outcome(job, 'cancelled', { ...request, error: 'endpoint gone (410)' }));
      toDisable.push(item.subscription.id);
    } else {
      const delayMs = nextDelayMs(deps.retryScheduleMs, job.attempt, answer.retryAfterMs);
      results[index] = delayMs === null ? 'dead' : 'retry';
      outcomes.push(outcome(job, delayMs === null ? 'dead' : 'pending', { ...request, delayMs }));
    }
  });

  await deps.db.transaction().execute(async (trx) => {
    const applied = await recordAttemptOutcomes(trx, outcomes);
    for (const subscriptionId of new Set(toDisable))
      await disableSubscription(trx, subscriptionId, 'the endpoint answered 410 Gone');
    for (const o of outcomes) {
      if (o.status === 'pending' && o.delayMs !== null && applied.has(o.deliveryId))
        await deps.enqueue(trx, o.deliveryId, o.attempt + 1, o.delayMs);
    }
  });
  return results;
}

function outcome(
  job: DeliveryJob,
  status: AttemptOutcome['status'],
  fields: Partial<Omit<AttemptOutcome, 'deliveryId' | 'attempt' | 'status'>>,
): AttemptOutcome {
  return {
    deliveryId: job.deliveryId,
    attempt: job.attempt,
    status,
    statusCode: fields.statusCode ?? null,
    error: fields.error ?? null,
    delayMs: fields.delayMs ?? null,
    attemptId: fields.attemptId ?? null,
    latencyMs: fields.latencyMs ?? null,
  };
}

function failedToSend(error: unknown): Sent {
  return {
    statusCode: null,
    error: `not sent: ${(error as Error)?.message ?? String(error)}`,
    retryAfterMs: undefined,
    latencyMs: 0,
  };
}

/** The Standard Webhooks request: body `{ id, type, createdAt, data }`, signed with every live secret. */
async function sendEvent(deps: DeliverDeps, { event, subscription }: DeliveryToSend): Promise<Sent> {
  const body = JSON.stringify(eventBody(event));
  const timestamp = Math.floor(Date.now() / 1000);
  return send(
    deps,
    subscription.url,
    {
      'content-type': 'application/json',
      'user-agent': `payment-order-gateway-webhooks/${VERSION}`,
      'webhook-id': event.id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signWebhook(subscription.signingSecrets, event.id, timestamp, body),
    },
    body,
  );
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
