import type { Db, Tx } from '../db/connection.ts';
import type { Notifications } from '../db/notifications.ts';
import { markRelayed, OUTBOX_CHANNEL, takeUnrelayedEventIds } from '../db/outbox-events.repository.ts';
import { insertDeliveriesForEvents } from '../db/webhook-deliveries.repository.ts';
import type { Logger } from '../lib/logger.ts';
import { createWakeSignal } from '../lib/wake-signal.ts';

export type EnqueueDelivery = (trx: Tx, deliveryId: string, attempt: number, delayMs: number) => Promise<void>;

export type RelayDeps = Readonly<{
  db: Db;
  notifications: Notifications;
  /** First attempts of new deliveries, in one insert. */
  enqueueMany: (trx: Tx, deliveryIds: readonly string[]) => Promise<void>;
  logger: Logger;
  /** Fallback poll when no NOTIFY comes. */
  pollMs?: number;
  batchSize?: number;
}>;

/**
 * Turns committed outbox events into webhook deliveries: one per matching, enabled subscription,
 * each with its delivery job, and the events marked relayed — all in one transaction, in a few
 * set-based statements per batch (not per event). A row is taken because it is unmarked, not
 * because it comes after a cursor, so an event whose transaction committed late is still relayed;
 * the unique (event, subscription) pair means never twice. Events of every type go the same way,
 * matched by merchant and type; one about a subscription (webhook_subscription.disabled, which has
 * no order) is never delivered to that subscription itself (insertDeliveriesForEvents).
 */
export async function relayPass(deps: Pick<RelayDeps, 'db' | 'enqueueMany' | 'batchSize'>): Promise<number> {
  return deps.db.transaction().execute(async (trx) => {
    const eventIds = await takeUnrelayedEventIds(trx, deps.batchSize ?? 500);
    if (eventIds.length === 0) return 0;
    const created = await insertDeliveriesForEvents(trx, eventIds);
    if (created.length > 0) await deps.enqueueMany(trx, created);
    await markRelayed(trx, eventIds);
    return eventIds.length;
  });
}

/** Runs relay passes on every NOTIFY from the outbox, and every `pollMs` regardless. */
export async function startRelay(deps: RelayDeps): Promise<{ stop(): Promise<void> }> {
  const pollMs = deps.pollMs ?? 1_000;
  const batchSize = deps.batchSize ?? 500;
  const wake = createWakeSignal();
  let stopped = false;
  await deps.notifications.subscribe(OUTBOX_CHANNEL, wake.notify);

  const loop = (async () => {
    while (!stopped) {
      try {
        // Drain: a full batch means there may be more.
        while (!stopped && (await relayPass(deps)) === batchSize) {}
      } catch (error) {
        deps.logger.error({ err: error }, 'outbox relay pass failed; retrying');
      }
      if (!stopped) await wake.wait(pollMs);
    }
  })();

  return {
    async stop() {
      stopped = true;
      wake.notify();
      await loop;
    },
  };
}
