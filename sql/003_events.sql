-- Events: webhook subscriptions, deliveries and their attempts, and the progress of the two
-- consumers of the outbox (the webhook relay and the Kafka emitter).

-- Progress is a mark on each outbox row, not a cursor over a sequence: a cursor skips a row whose
-- transaction committed after a later row's (ids are handed out before commit). A consumer takes
-- the unmarked rows, whenever they committed, and marks them in the same transaction as its work.
alter table outbox_events
  add column relayed_at timestamptz,
  add column kafka_published_at timestamptz;
create index outbox_events_unrelayed_idx on outbox_events (created_at) where relayed_at is null;
create index outbox_events_unpublished_idx on outbox_events (created_at) where kafka_published_at is null;

-- Wake the relay and the Kafka emitter as soon as an event commits (NOTIFY is delivered at commit).
create function notify_outbox_event() returns trigger language plpgsql as $$
begin
  perform pg_notify('outbox_events', new.id);
  return null;
end;
$$;
create trigger outbox_events_notify after insert on outbox_events
  for each row execute function notify_outbox_event();

create table webhook_subscriptions (
  id                          text primary key,
  merchant_id                 text not null references merchants (id),
  url                         text not null,
  events                      text[] not null,
  enabled                     boolean not null default true,
  -- Signing secrets (whsec_ + base64). During a rotation the previous one signs too, until it expires.
  secret                      text not null,
  previous_secret             text,
  previous_secret_expires_at  timestamptz,
  disabled_reason             text,
  created_at                  timestamptz not null default now(),
  updated_at                  timestamptz not null default now(),
  -- Deleted subscriptions stay, so their delivery history stays readable; they never deliver again.
  deleted_at                  timestamptz
);
create index webhook_subscriptions_merchant_idx on webhook_subscriptions (merchant_id, id desc) where deleted_at is null;

create table webhook_deliveries (
  id               text primary key,
  event_id         text not null references outbox_events (id),
  subscription_id  text not null references webhook_subscriptions (id),
  status           text not null check (status in ('pending', 'delivered', 'dead', 'cancelled')),
  attempt_count    integer not null default 0,
  next_attempt_at  timestamptz,
  last_status_code integer,
  last_error       text,
  delivered_at     timestamptz,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  -- One delivery per (event, subscription), whatever the relay does twice.
  unique (event_id, subscription_id)
);
create index webhook_deliveries_subscription_idx on webhook_deliveries (subscription_id, created_at desc);

create table webhook_delivery_attempts (
  id             bigint generated always as identity primary key,
  delivery_id    text not null references webhook_deliveries (id),
  attempt_number integer not null,
  started_at     timestamptz not null,
  ended_at       timestamptz,
  status_code    integer,
  latency_ms     integer,
  error          text,
  unique (delivery_id, attempt_number)
);
