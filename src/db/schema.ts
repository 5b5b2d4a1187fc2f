import type { ColumnType, Generated, JSONColumnType } from 'kysely';

/** Row types as the database holds them. They never leave src/db: repositories map them. */
export interface Database {
  payment_order_reviews: PaymentOrderReviewsTable;
  provider_callbacks: ProviderCallbacksTable;
  operator_keys: OperatorKeysTable;
  webhook_subscriptions: WebhookSubscriptionsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_delivery_attempts: WebhookDeliveryAttemptsTable;
  provider_attempts: ProviderAttemptsTable;
  outbox_events: OutboxEventsTable;
  merchants: MerchantsTable;
  api_keys: ApiKeysTable;
  payment_orders: PaymentOrdersTable;
  payment_order_transitions: PaymentOrderTransitionsTable;
  idempotency_keys: IdempotencyKeysTable;
}

type CreatedAt = ColumnType<Date, Date | undefined, never>;

export interface MerchantsTable {
  id: string;
  name: string;
  created_at: CreatedAt;
}

export interface ApiKeysTable {
  id: string;
  merchant_id: string;
  key_hash: Buffer;
  key_prefix: string;
  created_at: CreatedAt;
  revoked_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface PaymentOrdersTable {
  id: string;
  merchant_id: string;
  status: string;
  /** bigint: pg returns it as a string; amounts are ≤ 2^53 - 1, so Number() is exact. */
  amount: ColumnType<string, number, number>;
  currency: string;
  provider: string;
  payment_method: JSONColumnType<Record<string, string> | null, string | null, string | null>;
  reference: string | null;
  description: string | null;
  metadata: JSONColumnType<Record<string, string>, string, string>;
  provider_reference: string | null;
  failure_code: string | null;
  failure_message: string | null;
  idempotency_key: string;
  processing_generation: ColumnType<number, number | undefined, number>;
  callback_token: string | null;
  reconciling_since: Date | null;
  next_attempt_at: Date | null;
  review_reason: string | null;
  review_since: Date | null;
  created_at: ColumnType<Date, Date | undefined, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface PaymentOrderTransitionsTable {
  id: Generated<string>;
  order_id: string;
  from_status: string | null;
  to_status: string;
  reason: string;
  created_at: CreatedAt;
}

export interface IdempotencyKeysTable {
  merchant_id: string;
  idempotency_key: string;
  request_fingerprint: string;
  order_id: string | null;
  response_status: number | null;
  response_body: string | null;
  created_at: ColumnType<Date, Date | undefined, Date>;
  expires_at: Date;
}

export interface ProviderAttemptsTable {
  id: Generated<string>;
  order_id: string;
  provider: string;
  attempt_number: number;
  kind: string;
  idempotency_key: string | null;
  started_at: Date;
  ended_at: Date | null;
  outcome: string | null;
  http_status: number | null;
  latency_ms: number | null;
  error: string | null;
  provider_reference: string | null;
  decline_code: string | null;
}

export interface OutboxEventsTable {
  id: string;
  merchant_id: string;
  /** The event's subject (sql/011): the order for payment_order.*, the subscription for webhook_subscription.*. */
  order_id: string | null;
  subscription_id: string | null;
  type: string;
  payload: JSONColumnType<Record<string, unknown>, string, never>;
  created_at: CreatedAt;
  relayed_at: ColumnType<Date | null, never, Date | null>;
  kafka_published_at: ColumnType<Date | null, never, Date | null>;
  /** Set when the Kafka broker refused the event for good (sql/009); with the broker's error. */
  kafka_dead_at: ColumnType<Date | null, never, Date | null>;
  kafka_error: ColumnType<string | null, never, string | null>;
  /** The writing transaction's id (xid8, as text): the event log's commit order. */
  tx: ColumnType<string, never, never>;
}

export interface WebhookSubscriptionsTable {
  id: string;
  merchant_id: string;
  url: string;
  events: string[];
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  disabled_reason: string | null;
  /** Attempts before this are not held against the endpoint by the automatic disabling (sql/011). */
  failures_count_from: ColumnType<Date, Date | undefined, Date>;
  /**
   * The automatic disabling's state (sql/011, noteAttemptOutcomes): the start of a failed attempt
   * later than every 2xx, and the starts of the latest 2xx and of the latest failure.
   */
  failing_since: Date | null;
  last_success_at: Date | null;
  last_failure_at: Date | null;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | undefined, Date>;
  deleted_at: Date | null;
}

export interface WebhookDeliveriesTable {
  id: string;
  event_id: string;
  subscription_id: string;
  /** The event's type, copied when the delivery is written (sql/011). */
  event_type: string;
  status: string;
  attempt_count: ColumnType<number, number | undefined, number>;
  next_attempt_at: Date | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: Date | null;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface WebhookDeliveryAttemptsTable {
  id: Generated<string>;
  delivery_id: string;
  attempt_number: number;
  started_at: Date;
  ended_at: Date | null;
  status_code: number | null;
  latency_ms: number | null;
  error: string | null;
}

export interface PaymentOrderReviewsTable {
  id: string;
  order_id: string;
  reason: string;
  detail: string;
  opened_at: CreatedAt;
  resolved_at: Date | null;
  resolved_by: string | null;
  resolution: string | null;
  note: string | null;
}

export interface ProviderCallbacksTable {
  id: Generated<string>;
  order_id: string;
  provider: string;
  external_id: string;
  result_code: string;
  outcome: string;
  amount: ColumnType<string | null, number | null, number | null>;
  phone: string | null;
  receipt: string | null;
  disposition: string;
  received_at: CreatedAt;
}

export interface OperatorKeysTable {
  id: string;
  name: string;
  key_hash: Buffer;
  key_prefix: string;
  created_at: CreatedAt;
  revoked_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}
