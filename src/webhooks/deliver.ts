import type { Dispatcher } from 'undici';
import type { Db } from '../db/connection.ts';
import {
  type AttemptOutcome,
  type DeliveryToSend,
  findDeliveriesToSend,
  recordAttemptOutcomes,
  startAttempts,
} from '../db/webhook-deliveries.repository.ts';
import { eventBody } from '../domain/event-body.ts';
import type { EnqueueDelivery } from '../outbox/relay.ts';
import { disableForGone } from './disable-subscriptions.ts';
import { nextDelayMs } from './retry-schedule.ts';
import { isSuccess, type Sent, sendSigned } from './send-signed.ts';

export type DeliverDeps = Readonly<{
  db: Db;
  dispatcher: Dispatcher;
  enqueue: EnqueueDelivery;
  timeoutMs: number;
  retryScheduleMs: readonly number[];
}>;

export type DeliveryJob = Readonly<{ deliveryId: string; attempt: number }>;
export type DeliveryResult = 'stale' | 'cancelled' | 'delivered' | 'disabled' | 'retry' | 'dead';

/**
 * A batch of delivery attempts: the signed POSTs, all at once, then ONE transaction with what they
 * meant — each attempt row, each delivery's new state, the subscriptions to disable (a 410) with
 * their webhook_subscription.disabled events, and the next attempts' jobs. Reading and stamping the batch are one statement each, so the database work per
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
    if (isSuccess(answer)) {
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
    await disableForGone(trx, [...new Set(toDisable)]);
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
  return sendSigned(deps, subscription.url, subscription.signingSecrets, {
    id: event.id,
    body: JSON.stringify(eventBody(event)),
  });
}
