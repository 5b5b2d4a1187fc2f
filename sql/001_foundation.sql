-- The foundation: merchants and their API keys, payment orders, their transitions, and the
-- idempotency keys that make POST /payment-orders safe to retry.

create table merchants (
  id          text primary key,
  name        text not null unique,
  created_at  timestamptz not null default now()
);

-- Only a SHA-256 of each key is stored. Keys are 256 random bits, so a fast hash is enough: there
-- is nothing to brute-force, and the lookup stays one index probe per request.
create table api_keys (
  id           text primary key,
  merchant_id  text not null references merchants (id),
  key_hash     bytea not null unique,
  key_prefix   text not null,
  created_at   timestamptz not null default now(),
  revoked_at   timestamptz
);
create index api_keys_merchant_id_idx on api_keys (merchant_id);

create table payment_orders (
  id                 text primary key,
  merchant_id        text not null references merchants (id),
  status             text not null check (status in ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
  amount             bigint not null check (amount > 0 and amount <= 9007199254740991),
  currency           text not null check (currency ~ '^[A-Z]{3}$'),
  provider           text not null,
  payment_method     jsonb,
  reference          text check (char_length(reference) <= 255),
  description        text check (char_length(description) <= 1000),
  metadata           jsonb not null default '{}'::jsonb,
  provider_reference text,
  failure_code       text,
  failure_message    text,
  -- The key the order was created with, kept for audit after the key itself is swept.
  idempotency_key    text not null,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now()
);
-- Lists are per merchant, newest first, optionally by status; ids sort by creation time.
create index payment_orders_merchant_id_idx on payment_orders (merchant_id, id desc);
create index payment_orders_merchant_status_id_idx on payment_orders (merchant_id, status, id desc);

create table payment_order_transitions (
  id           bigint generated always as identity primary key,
  order_id     text not null references payment_orders (id),
  from_status  text,
  to_status    text not null,
  reason       text not null,
  created_at   timestamptz not null default now()
);
create index payment_order_transitions_order_id_idx on payment_order_transitions (order_id, id);

-- Append-only: history is evidence, so the database itself refuses to rewrite it.
create function forbid_history_rewrite() returns trigger language plpgsql as $$
begin
  raise exception '% is append-only', tg_table_name using errcode = 'restrict_violation';
end;
$$;
create trigger payment_order_transitions_append_only
  before update or delete on payment_order_transitions
  for each row execute function forbid_history_rewrite();

-- Idempotency keys live in their own table rather than on the order: they are swept after their
-- TTL while orders stay forever, and a swept key may be used again for a new order (as on Stripe).
-- The saved response is kept as text so that a replay is byte-for-byte the first answer.
create table idempotency_keys (
  merchant_id          text not null references merchants (id),
  idempotency_key      text not null,
  request_fingerprint  text not null,
  order_id             text references payment_orders (id),
  response_status      integer,
  response_body        text,
  created_at           timestamptz not null default now(),
  expires_at           timestamptz not null,
  primary key (merchant_id, idempotency_key)
);
-- The sweeper deletes by expiry.
create index idempotency_keys_expires_at_idx on idempotency_keys (expires_at);
