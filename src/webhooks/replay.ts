import type { Db } from '../db/connection.ts';
import {
  insertMissedDeliveries,
  type ReplayQuery,
  reopenDeliveries,
  takeDeliveriesToReplay,
} from '../db/webhook-deliveries.repository.ts';
import type { EnqueueDelivery } from '../outbox/relay.ts';

/**
 * Most deliveries one replay call reopens. Each is an update row and a pg-boss job inserted in the
 * call's one transaction; a bigger backlog is taken a page at a time (`startingAfter`). A page of
 * 500 took 0.8 s end to end on the shared 2-core test machine (test/webhook-operations-replay.test.ts
 * prints it), so a call stays well inside an HTTP client's patience and the transaction short.
 */
export const REPLAY_PAGE_SIZE = 500;

/**
 * Most deliveries one call writes for events the endpoint missed while it was off (they wait as
 * `cancelled` for this call's page and the next ones). Ten pages: one statement of that many rows.
 */
const MISSED_PER_CALL = 10 * REPLAY_PAGE_SIZE;

export type ReplayResult = Readonly<{
  deliveries: ReadonlyArray<{ id: string; eventId: string }>;
  hasMore: boolean;
}>;

/**
 * Sends an endpoint's failed deliveries again (like Svix's "recover"): first the events it missed
 * while it was switched off get their deliveries (insertMissedDeliveries: an outage is recovered,
 * not only the deliveries that were cut short); then its dead and cancelled
 * deliveries whose events were created in [since, until), oldest first, up to REPLAY_PAGE_SIZE,
 * go back to pending with their next attempt's job (attempt number after the last made, due now)
 * — all in one transaction, as redeliver.ts does for one. An older job for one of them is stale.
 * A reopened delivery goes on with its retry schedule where it stopped: a dead one (schedule used
 * up) is dead again after one more failure; one cancelled part-way (its endpoint was switched off)
 * keeps the retries it had left.
 */
export async function replayDeliveries(
  deps: Readonly<{ db: Db; enqueue: EnqueueDelivery }>,
  query: Omit<ReplayQuery, 'limit'>,
): Promise<ReplayResult> {
  return deps.db.transaction().execute(async (trx) => {
    const missed = await insertMissedDeliveries(trx, { ...query, limit: MISSED_PER_CALL });
    const page = await takeDeliveriesToReplay(trx, { ...query, limit: REPLAY_PAGE_SIZE });
    const { deliveries } = page;
    // Missed events not yet written are newer than every one written: the next page finds them.
    const hasMore = page.hasMore || missed.more;
    await reopenDeliveries(
      trx,
      deliveries.map((d) => d.id),
    );
    for (const delivery of deliveries) await deps.enqueue(trx, delivery.id, delivery.attemptCount + 1, 0);
    return { deliveries: deliveries.map(({ id, eventId }) => ({ id, eventId })), hasMore };
  });
}
