-- pgbench's side of `npm run bench:ingest`: one accepted order as the gateway stores it, written
-- by PostgreSQL's own load generator with nothing of ours in between. One transaction of the same
-- rows: the idempotency key with its saved response, the order (PENDING), its first transition and
-- the pg-boss processing job, with the column values pg-boss 12 writes for our queue (bench/ingest.ts
-- checks them against a job pg-boss itself inserted before it runs this script, and stops if they
-- differ). Variables, set by bench/ingest.ts with -D: merchant, body (a saved response of the
-- gateway's size). Run with -M prepared: every statement is parsed once per connection.
\set r random(1, 9223372036854775806)
BEGIN;
INSERT INTO idempotency_keys (merchant_id, idempotency_key, request_fingerprint, order_id, response_status, response_body, expires_at)
  VALUES (:merchant, 'pgbench-' || :client_id || '-' || :r, md5(:r::text), NULL, NULL, NULL, now() + interval '24 hours');
INSERT INTO payment_orders (id, merchant_id, status, amount, currency, provider, payment_method, reference, description, metadata, idempotency_key, created_at, updated_at)
  VALUES ('po_pgbench_' || :client_id || '_' || :r, :merchant, 'PENDING', 1050, 'USD', 'stripe', '{"type":"card","token":"pm_card_visa"}', 'bench', NULL, '{}', 'pgbench-' || :client_id || '-' || :r, now(), now());
INSERT INTO payment_order_transitions (order_id, from_status, to_status, reason)
  VALUES ('po_pgbench_' || :client_id || '_' || :r, NULL, 'PENDING', 'accepted');
INSERT INTO pgboss.job (id, name, data, priority, start_after, created_on, expire_seconds, deletion_seconds, keep_until, retry_limit, retry_delay, retry_backoff, retry_delay_max, policy, heartbeat_seconds)
  VALUES (gen_random_uuid(), 'payment-orders.process', jsonb_build_object('orderId', 'po_pgbench_' || :client_id || '_' || :r, 'generation', 0), 0, now(), now(), 120, 604800, now() + interval '1209600 seconds', 1000, 1, true, 30, 'standard', 10);
UPDATE idempotency_keys SET order_id = 'po_pgbench_' || :client_id || '_' || :r, response_status = 201, response_body = :body
  WHERE merchant_id = :merchant AND idempotency_key = 'pgbench-' || :client_id || '-' || :r;
COMMIT;
