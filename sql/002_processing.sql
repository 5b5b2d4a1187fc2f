-- Processing: the state machine enforced by the database, provider attempts, the global rate gate
-- and the outbox of terminal events.

alter table payment_orders
  -- Which processing job is the live one: each scheduled follow-up carries generation + 1, so a
  -- job that pg-boss retries after a crash, or a stale check, sees it is outdated and does nothing.
  add column processing_generation integer not null default 0,
  -- Unguessable token in the M-Pesa callback URL: it names the order the callback is about.
  add column callback_token text unique,
  -- Set when retries ran out while the provider may have charged: reconciled on a slow schedule.
  add column reconciling_since timestamptz,
  add column next_attempt_at timestamptz;

-- The state machine, in the database: a status changes only along an allowed edge, and a terminal
-- order (COMPLETED, FAILED) never changes again, whatever code runs the update.
create function enforce_payment_order_transition() returns trigger language plpgsql as $$
begin
  if old.status in ('COMPLETED', 'FAILED') then
    raise exception 'payment order % is %, which is final', old.id, old.status using errcode = 'check_violation';
  end if;
  if new.status is distinct from old.status and not (
       (old.status = 'PENDING' and new.status in ('PROCESSING', 'FAILED'))
    or (old.status = 'PROCESSING' and new.status in ('COMPLETED', 'FAILED'))
  ) then
    raise exception 'payment order %: % -> % is not an allowed transition', old.id, old.status, new.status
      using errcode = 'check_violation';
  end if;
  return new;
end;
$$;
create trigger payment_orders_state_machine
  before update on payment_orders
  for each row execute function enforce_payment_order_transition();

-- Every HTTP call to a provider, one row each: charges, status queries and token requests.
create table provider_attempts (
  id               bigint generated always as identity primary key,
  order_id         text not null references payment_orders (id),
  provider         text not null,
  attempt_number   integer not null,
  kind             text not null check (kind in ('charge', 'status', 'token')),
  idempotency_key  text,
  started_at       timestamptz not null,
  ended_at         timestamptz,
  outcome          text check (outcome in ('succeeded', 'declined', 'pending', 'retry', 'unknown', 'not_found', 'error')),
  http_status      integer,
  latency_ms       integer,
  error            text,
  unique (order_id, attempt_number)
);
-- Audit: calls per second over a period (sql/audit/provider-calls-per-second.sql).
create index provider_attempts_started_at_idx on provider_attempts (started_at);

-- The global rate gate. One row per scope ('global', 'provider:<name>'), holding the start times
-- of the last `limit` calls it let through. A call may start once the call `limit` places before it
-- started at least one window ago: a sliding window, never more than `limit` starts in any window.
create table provider_rate_gate (
  scope   text primary key,
  starts  timestamptz[] not null default '{}'
);

-- Lets one call start now, by the database clock, if every given scope has room in its sliding
-- window; records that start and returns (true, the start). Otherwise returns (false, the earliest
-- time worth asking again). The start is recorded at the moment it is granted, so a caller that is
-- slow to ask (a busy event loop) only delays itself: nothing it was promised can be late.
-- The rows are locked in scope order, so concurrent callers queue and never deadlock.
create function rate_gate_try_start(p_scopes text[], p_limits integer[], p_window interval)
returns table (started boolean, at timestamptz) language plpgsql as $$
declare
  v_now      timestamptz;
  v_earliest timestamptz;
  v_starts   timestamptz[];
  v_n        integer;
  i          integer;
begin
  insert into provider_rate_gate (scope) select unnest(p_scopes) on conflict (scope) do nothing;
  perform 1 from provider_rate_gate where scope = any (p_scopes) order by scope for update;
  v_now := clock_timestamp();
  v_earliest := v_now;
  for i in 1 .. cardinality(p_scopes) loop
    select starts into v_starts from provider_rate_gate where scope = p_scopes[i];
    v_n := cardinality(v_starts);
    -- starts is sorted; its `limit`-th latest entry must be a full window old.
    if v_n >= p_limits[i] then
      v_earliest := greatest(v_earliest, v_starts[v_n - p_limits[i] + 1] + p_window);
    end if;
  end loop;
  if v_earliest > v_now then
    return query select false, v_earliest;
    return;
  end if;
  for i in 1 .. cardinality(p_scopes) loop
    update provider_rate_gate
       set starts = (starts || v_now)[greatest(1, cardinality(starts) + 2 - p_limits[i]):]
     where scope = p_scopes[i];
  end loop;
  return query select true, v_now;
end;
$$;

-- Terminal events, written in the same transaction as the terminal transition. The relay (a later
-- issue) delivers them to webhooks and Kafka.
create table outbox_events (
  id           text primary key,
  merchant_id  text not null references merchants (id),
  order_id     text not null references payment_orders (id),
  type         text not null check (type in ('payment_order.completed', 'payment_order.failed')),
  payload      jsonb not null,
  created_at   timestamptz not null default now()
);
create index outbox_events_merchant_id_idx on outbox_events (merchant_id, id);
-- One terminal event per order: the state machine allows one terminal transition, and this makes
-- the outbox say so too.
create unique index outbox_events_order_id_idx on outbox_events (order_id);
