import type { PgBoss } from 'pg-boss';
import type { Db } from '../db/connection.ts';
import { readDatabaseFigures } from '../db/metrics.repository.ts';
import type { ReviewReason } from '../domain/decide.ts';
import type { Metrics } from './metrics.ts';

const REVIEW_REASONS: readonly ReviewReason[] = [
  'outcome_unknown',
  'push_unconfirmed',
  'unmatched_callback',
  'paid_after_failure',
  'second_payment',
  'contradiction',
];

export type DatabaseGaugesDeps = Readonly<{
  db: Db;
  boss: PgBoss;
  metrics: Metrics;
  queues: readonly string[];
  kafka: boolean;
}>;

/**
 * Sets the database-wide gauges from the database, for one scrape. When the database does not
 * answer, `payment_gateway_database_up` says so and the gauges keep their last values: the
 * instance's own figures are still worth serving.
 */
export async function refreshDatabaseGauges(deps: DatabaseGaugesDeps): Promise<void> {
  const { metrics } = deps;
  try {
    const [figures, queues] = await Promise.all([
      readDatabaseFigures(deps.db, { kafka: deps.kafka }),
      deps.boss.getQueues([...deps.queues]),
    ]);
    metrics.ordersInFlight.set({ status: 'PENDING' }, figures.pending);
    metrics.ordersInFlight.set({ status: 'PROCESSING' }, figures.processing);
    metrics.ordersReconciling.set(figures.reconciling);
    metrics.outboxUnrelayed.set(figures.unrelayed);
    metrics.outboxOldestUnrelayedSeconds.set(figures.oldestUnrelayedSeconds);
    metrics.outboxUnpublished.set(figures.unpublished);
    metrics.outboxOldestUnpublishedSeconds.set(figures.oldestUnpublishedSeconds);
    metrics.kafkaDead.set(figures.kafkaDead);
    metrics.webhookDeliveriesPending.set(figures.deliveriesPending);
    // Every reason is set (to 0 when none is open), so a resolved review's series drops to 0.
    for (const reason of REVIEW_REASONS) metrics.ordersUnderReview.set({ reason }, figures.underReview[reason] ?? 0);
    for (const queue of queues) {
      metrics.queueJobs.set({ queue: queue.name, state: 'queued' }, queue.queuedCount);
      metrics.queueJobs.set({ queue: queue.name, state: 'active' }, queue.activeCount);
      metrics.queueJobs.set({ queue: queue.name, state: 'deferred' }, queue.deferredCount);
    }
    metrics.databaseUp.set(1);
  } catch {
    metrics.databaseUp.set(0);
  }
}
