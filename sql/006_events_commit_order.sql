-- GET /events in commit order. Event ids (and created_at) are taken before the transaction
-- commits, so an event can become visible after a newer-looking one: a consumer polling the log
-- newest-first and stopping at the last id it saw would miss it. Each event now carries the id of
-- the transaction that wrote it; the log is ordered by it, and lists only events written by
-- transactions older than every transaction still running (pg_snapshot_xmin): anything that commits
-- later sorts above everything already listed.
alter table outbox_events add column tx xid8 not null default pg_current_xact_id();
create index outbox_events_merchant_tx_idx on outbox_events (merchant_id, tx desc, id desc);
