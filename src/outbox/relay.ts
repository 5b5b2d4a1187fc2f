import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type pg from 'pg';
import type { Db, Tx } from '../db/connection.ts';
import { listen } from '../db/listener.ts';
import { newId } from '../lib/ids.ts';
import type { Logger } from '../lib/logger.ts';

export type EnqueueDelivery = (trx: Tx, deliveryId: string, attempt: number, delayMs: number) => Promise<void>;

export type RelayDeps = Readonly<{
  db: Db;
  pool: pg.Pool;
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
export async function relayPass(deps: RelayDeps): Promise<number> {
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
  let wake: (() => void) | null = null;
  let pending = false;
  let stopped = false;
  const notify = () => {
    pending = true;
    wake?.();
  };
  const listener = await listen(deps.pool, 'outbox_events', notify, deps.logger);

  const loop = (async () => {
    while (!stopped) {
      pending = false;
      try {
        // Drain: a full batch means there may be more.
        while (!stopped && (await relayPass(deps)) === (deps.batchSize ?? 500)) {}
      } catch (error) {
        deps.logger.error({ err: error }, 'outbox relay pass failed; retrying');
      }
      if (stopped || pending) continue;
      const controller = new AbortController();
      wake = () => controller.abort();
      await sleep(pollMs, undefined, { signal: controller.signal }).catch(() => {});
      wake = null;
    }
  })();

  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      await listener.close();
    },
  };
}
