-- An order's reviews, read by every GET /payment-orders/{id} (reviews.repository.ts listReviews:
-- where order_id = $1 order by opened_at, id). The only index leading with order_id was the partial
-- one of open reviews (007), so that read scanned every review ever opened: settled reviews are kept,
-- and the scan grew with the history. bench:scale with 1M orders stored (about 2,500 reviews):
-- before, a Seq Scan removing every row, and GET by id fell from 1,400 to 1,050 req/s against the
-- empty table (p50 11 → 15 ms); after, an index scan of the order's own rows in the order the read
-- wants them, and 1,460 → 1,300 req/s (PostgreSQL 18), 1,400 → 1,460 (15).
create index payment_order_reviews_order_idx on payment_order_reviews (order_id, opened_at, id);
