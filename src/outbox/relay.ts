import { sql } from 'kysely';
import type { Db, Tx } from '../db/connection.ts';
import type { Notifications } from '../db/notifications.ts';
import { OUTBOX_CHANNEL } from '../db/outbox-events.repository.ts';
import { newId } from '../lib/ids.ts';
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
 * the unique (event, subscription) pair means never twice.
 */
export async function relayPass(deps: Pick<RelayDeps, 'db' | 'enqueueMany' | 'batchSize'>): Promise<number> {
  return deps.db.transaction().execute(async (trx) => {
    // skip locked: several instances relay at once, each takes rows the others are not on.
    const { rows } = await sql<{ id: string }>`
      select id from outbox_events where relayed_at is null
      order by created_at, id limit ${deps.batchSize ?? 500}
      for update skip locked`.execute(trx);
    if (rows.length === 0) return 0;
    const eventIds = rows.map((r) => r.id);
    const pairs = await trx
      .selectFrom('outbox_events as e')
      .innerJoin('webhook_subscriptions as s', (join) =>
        join
          .onRef('s.merchant_id', '=', 'e.merchant_id')
          .on('s.enabled', '=', true)
          .on('s.deleted_at', 'is', null)
          .on(sql<boolean>`e.type = any(s.events)`),
      )
      .select(['e.id as eventId', 's.id as subscriptionId'])
      .where('e.id', 'in', eventIds)
      .execute();
    if (pairs.length > 0) {
      const created = await trx
        .insertInto('webhook_deliveries')
        .values(
          pairs.map((pair) => ({
            id: newId('whd'),
            event_id: pair.eventId,
            subscription_id: pair.subscriptionId,
            status: 'pending',
            next_attempt_at: sql<Date>`now()`,
          })),
        )
        .onConflict((conflict) => conflict.columns(['event_id', 'subscription_id']).doNothing())
        .returning('id')
        .execute();
      if (created.length > 0)
        await deps.enqueueMany(
          trx,
          created.map((d) => d.id),
        );
    }
    await trx.updateTable('outbox_events').set({ relayed_at: sql<Date>`now()` }).where('id', 'in', eventIds).execute();
    return rows.length;
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
