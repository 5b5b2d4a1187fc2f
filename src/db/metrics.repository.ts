import { sql } from 'kysely';
import type { Db } from './connection.ts';

export type DatabaseFigures = Readonly<{
  pending: number;
  processing: number;
  reconciling: number;
  unrelayed: number;
  oldestUnrelayedSeconds: number;
  unpublished: number;
  oldestUnpublishedSeconds: number;
  kafkaDead: number;
  deliveriesPending: number;
  /** Open reviews by reason. */
  underReview: Readonly<Record<string, number>>;
}>;

/**
 * The backlogs an operator watches, in one round trip. Each count is over a partial index
 * (sql/005_metrics_indexes.sql and the outbox's own), so a scrape costs the backlog's size, not the
 * tables'.
 */
export async function readDatabaseFigures(db: Db, options: { kafka: boolean }): Promise<DatabaseFigures> {
  const { rows } = await databaseFiguresQuery(options).execute(db);
  const row = rows[0];
  if (!row) throw new Error('no row');
  return {
    pending: Number(row.pending),
    processing: Number(row.processing),
    reconciling: Number(row.reconciling),
    unrelayed: Number(row.unrelayed),
    oldestUnrelayedSeconds: Number(row.oldestUnrelayedSeconds),
    unpublished: Number(row.unpublished),
    oldestUnpublishedSeconds: Number(row.oldestUnpublishedSeconds),
    kafkaDead: Number(row.kafkaDead),
    deliveriesPending: Number(row.deliveriesPending),
    underReview: Object.fromEntries(
      Object.entries(row.underReview as unknown as Record<string, number | string>).map(([k, v]) => [k, Number(v)]),
    ),
  };
}

/** readDatabaseFigures's one statement, not executed (bench/scale.ts explains it with a million orders stored). */
export function databaseFiguresQuery(options: { kafka: boolean }) {
  return sql<Record<keyof DatabaseFigures, unknown>>`
    select
      (select count(*) from payment_orders where status = 'PENDING') as pending,
      (select count(*) from payment_orders where status = 'PROCESSING') as processing,
      (select count(*) from payment_orders where status = 'PROCESSING' and reconciling_since is not null) as reconciling,
      (select count(*) from outbox_events where relayed_at is null) as unrelayed,
      (select coalesce(extract(epoch from now() - min(created_at)), 0) from outbox_events where relayed_at is null)
        as "oldestUnrelayedSeconds",
      -- Without Kafka every event stays unpublished: counting them would scan the whole history.
      ${options.kafka ? sql`(select count(*) from outbox_events where kafka_published_at is null and kafka_dead_at is null)` : sql`0`} as unpublished,
      ${
        options.kafka
          ? sql`(select coalesce(extract(epoch from now() - min(created_at)), 0) from outbox_events
                  where kafka_published_at is null and kafka_dead_at is null)`
          : sql`0`
      } as "oldestUnpublishedSeconds",
      (select count(*) from outbox_events where kafka_dead_at is not null) as "kafkaDead",
      (select count(*) from webhook_deliveries where status = 'pending') as "deliveriesPending",
      -- Over the partial index of open reviews (sql/007): the queue, never the whole history.
      (select coalesce(jsonb_object_agg(reason, n), '{}'::jsonb) from (
         select reason, count(*) as n from payment_order_reviews where resolved_at is null group by reason
       ) open_reviews) as "underReview"`;
}
