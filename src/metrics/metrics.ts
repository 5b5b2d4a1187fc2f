import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * What GET /metrics exposes, in Prometheus's text format. Two kinds of figure:
 * - this instance's own counters and histograms (HTTP, provider calls, gate waits, webhook
 *   attempts, Node's process metrics), summed across instances by Prometheus;
 * - the database's view (orders in flight, outbox and delivery backlogs, queue depths), read at
 *   scrape time, the same from every instance.
 * Labels are bounded sets (route patterns, provider names, outcomes): never ids, merchants or keys.
 */
export type Metrics = Readonly<{
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  providerCalls: Counter<'provider' | 'kind' | 'outcome'>;
  providerCallDuration: Histogram<'provider' | 'kind'>;
  gateWait: Histogram<'provider'>;
  webhookAttempts: Counter<'result'>;
  providerCallbacks: Counter<'provider' | 'disposition'>;
  ordersUnderReview: Gauge<'reason'>;
  ordersInFlight: Gauge<'status'>;
  ordersReconciling: Gauge;
  outboxUnrelayed: Gauge;
  outboxOldestUnrelayedSeconds: Gauge;
  outboxUnpublished: Gauge;
  outboxOldestUnpublishedSeconds: Gauge;
  kafkaDead: Gauge;
  kafkaPublished: Counter;
  kafkaPublishFailures: Counter<'reason'>;
  kafkaDeadLettered: Counter;
  webhookDeliveriesPending: Gauge;
  queueJobs: Gauge<'queue' | 'state'>;
  databaseUp: Gauge;
}>;

/** A registry of its own per service, so that several services in one process (tests) do not clash. */
export function createMetrics(options: { kafka: boolean }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const kafkaRegisters = options.kafka ? registers : [];
  return {
    registry,
    httpRequests: new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by method and route pattern.',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    providerCalls: new Counter({
      name: 'provider_calls_total',
      help: 'Calls to payment providers, by provider, kind (charge, status, token) and outcome.',
      labelNames: ['provider', 'kind', 'outcome'],
      registers,
    }),
    providerCallDuration: new Histogram({
      name: 'provider_call_duration_seconds',
      help: 'Latency of provider calls (after the rate gate let them start).',
      labelNames: ['provider', 'kind'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    gateWait: new Histogram({
      name: 'provider_rate_gate_wait_seconds',
      help: 'Time a provider call waited for the global rate gate before it could start.',
      labelNames: ['provider'],
      buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    webhookAttempts: new Counter({
      name: 'webhook_delivery_attempts_total',
      help: 'Webhook delivery jobs run, by result (delivered, retry, dead, disabled, cancelled, stale).',
      labelNames: ['result'],
      registers,
    }),
    providerCallbacks: new Counter({
      name: 'provider_callbacks_total',
      help: 'Provider callbacks received for a known order, by provider and what they meant (applied, confirming, duplicate, ignored, unmatched, paid_after_failure, second_payment, contradiction).',
      labelNames: ['provider', 'disposition'],
      registers,
    }),
    ordersUnderReview: new Gauge({
      name: 'payment_orders_under_review',
      help: 'Orders flagged for people (database-wide), by reason: outcome_unknown, push_unconfirmed, unmatched_callback, paid_after_failure, second_payment, contradiction.',
      labelNames: ['reason'],
      registers,
    }),
    ordersInFlight: new Gauge({
      name: 'payment_orders_in_flight',
      help: 'Orders not yet terminal, by status (database-wide).',
      labelNames: ['status'],
      registers,
    }),
    ordersReconciling: new Gauge({
      name: 'payment_orders_reconciling',
      help: 'PROCESSING orders whose outcome is unknown after the retries ran out, reconciled on the slow schedule.',
      registers,
    }),
    outboxUnrelayed: new Gauge({
      name: 'outbox_events_unrelayed',
      help: 'Committed events the relay has not turned into webhook deliveries yet.',
      registers,
    }),
    outboxOldestUnrelayedSeconds: new Gauge({
      name: 'outbox_oldest_unrelayed_seconds',
      help: 'Age of the oldest event not yet relayed (0 when none).',
      registers,
    }),
    outboxUnpublished: new Gauge({
      name: 'outbox_events_unpublished',
      help: 'Events not yet published to Kafka (and not set aside as refused by the broker).',
      // Without Kafka nothing publishes them, and the count would only grow.
      registers: kafkaRegisters,
    }),
    outboxOldestUnpublishedSeconds: new Gauge({
      name: 'outbox_oldest_unpublished_seconds',
      help: 'Age of the oldest event not yet published to Kafka (0 when none).',
      registers: kafkaRegisters,
    }),
    kafkaDead: new Gauge({
      name: 'outbox_events_kafka_dead',
      help: 'Events the Kafka broker refused for good, set aside (kafka_dead_at; sql/audit/kafka-dead-letters.sql). Alert on > 0.',
      registers: kafkaRegisters,
    }),
    kafkaPublished: new Counter({
      name: 'kafka_events_published_total',
      help: 'Events this instance published to Kafka (acknowledged by the broker and marked).',
      registers: kafkaRegisters,
    }),
    kafkaPublishFailures: new Counter({
      name: 'kafka_publish_failures_total',
      help: 'Kafka publishing steps that failed and will be retried, by reason (topic_missing, broker_unavailable, other).',
      labelNames: ['reason'],
      registers: kafkaRegisters,
    }),
    kafkaDeadLettered: new Counter({
      name: 'kafka_events_dead_lettered_total',
      help: 'Events this instance set aside because the Kafka broker refused them for good.',
      registers: kafkaRegisters,
    }),
    webhookDeliveriesPending: new Gauge({
      name: 'webhook_deliveries_pending',
      help: 'Webhook deliveries not yet delivered, dead or cancelled (due now or waiting for a retry).',
      registers,
    }),
    queueJobs: new Gauge({
      name: 'pgboss_jobs',
      help: 'pg-boss jobs by queue and state (queued, active, deferred), as pg-boss last counted them.',
      labelNames: ['queue', 'state'],
      registers,
    }),
    databaseUp: new Gauge({
      name: 'payment_gateway_database_up',
      help: '1 if the database answered this scrape (the database-wide figures are current), else 0.',
      registers,
    }),
  };
}
