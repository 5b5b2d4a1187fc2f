-- GET /metrics counts the backlogs at every scrape: orders in flight and deliveries not yet settled.
-- Partial indexes keep each count proportional to the backlog, not to the history.
create index payment_orders_in_flight_idx on payment_orders (status, reconciling_since)
  where status in ('PENDING', 'PROCESSING');
create index webhook_deliveries_pending_idx on webhook_deliveries (next_attempt_at) where status = 'pending';
