-- The money rule reads an order's whole call history, callbacks are evidence, and what no machine
-- can settle goes to people (review), who settle it with an operator key.

-- Each call's provider reference: the one it asked about (a status query) or the one its answer
-- named (a push's CheckoutRequestID, a PaymentIntent id). M-Pesa pushes are separate charges, so
-- whether money may have moved is judged per reference, not from the order's latest reference.
-- decline_code keeps a conclusive decline's code, so a step that finds it in the history (its own
-- answer arrived after the order had moved on) can still fail the order with the provider's reason.
alter table provider_attempts
  add column provider_reference text,
  add column decline_code text;
-- Calls made before this migration kept their reference on the order only. For orders still in
-- flight, the calls that named it (an answer "pending") or asked about it (a status query) get it,
-- so the money rule can go on asking about it. A charge whose answer was lost stays without one:
-- its reference was never learnt (under the old rule a later push could follow an earlier one).
update provider_attempts a
   set provider_reference = o.provider_reference
  from payment_orders o
 where a.order_id = o.id
   and o.status = 'PROCESSING'
   and o.provider_reference is not null
   and a.provider_reference is null
   and ((a.kind = 'charge' and a.outcome = 'pending') or a.kind = 'status');
-- A callback's charge is looked up across orders (is it another order's push?).
create index provider_attempts_reference_idx on provider_attempts (provider_reference) where provider_reference is not null;

-- The open review, on the order itself so that every read of an order (API, events, lists) shows
-- it without a join; payment_order_reviews keeps every review with how it was settled.
alter table payment_orders
  add column review_reason text,
  add column review_since timestamptz,
  add constraint payment_orders_review_check check ((review_reason is null) = (review_since is null));

-- Terminal orders never change, except for their review flag: money that moved after FAILED (or a
-- second payment after COMPLETED) must be flagged on the order people look at, and cleared when
-- they have dealt with it.
create or replace function enforce_payment_order_transition() returns trigger language plpgsql as $$
begin
  if old.status in ('COMPLETED', 'FAILED') then
    if (to_jsonb(old) - 'review_reason' - 'review_since' - 'updated_at')
       is distinct from (to_jsonb(new) - 'review_reason' - 'review_since' - 'updated_at') then
      raise exception 'payment order % is %, which is final', old.id, old.status using errcode = 'check_violation';
    end if;
    return new;
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

create table payment_order_reviews (
  id           text primary key,
  order_id     text not null references payment_orders (id),
  -- A stable code: outcome_unknown, push_unconfirmed, unmatched_callback, paid_after_failure,
  -- second_payment, contradiction.
  reason       text not null,
  detail       text not null,
  opened_at    timestamptz not null default now(),
  resolved_at  timestamptz,
  -- 'provider' when the provider's answer settled it, else the operator key's name.
  resolved_by  text,
  -- The status the order was settled to (or confirmed at, for an order already terminal).
  resolution   text check (resolution in ('COMPLETED', 'FAILED')),
  note         text
);
-- One open review per order and reason (an anomaly arriving while another review is open gets its
-- own); the order's review flag shows the oldest open one. The review queue reads the open ones.
create unique index payment_order_reviews_open_idx on payment_order_reviews (order_id, reason) where resolved_at is null;
create index payment_order_reviews_queue_idx on payment_order_reviews (opened_at) where resolved_at is null;

-- Every provider callback that named an order (by its URL token), with what we made of it: the
-- evidence behind an order's state, and the record of anything that contradicted it.
create table provider_callbacks (
  id               bigint generated always as identity primary key,
  order_id         text not null references payment_orders (id),
  provider         text not null,
  -- M-Pesa: the CheckoutRequestID the callback is about.
  external_id      text not null,
  result_code      text not null,
  outcome          text not null check (outcome in ('succeeded', 'declined', 'pending')),
  -- What the callback says was paid, converted to the order's minor units, and by whom.
  amount           bigint,
  phone            text,
  receipt          text,
  -- applied, confirming, duplicate, ignored, unmatched, paid_after_failure, second_payment,
  -- contradiction.
  disposition      text not null,
  received_at      timestamptz not null default now()
);
create index provider_callbacks_order_idx on provider_callbacks (order_id, id);
create index provider_callbacks_external_idx on provider_callbacks (external_id);

-- Operators (people on call), not merchants: their keys reach the operator routes (resolving a
-- review) and no merchant route. Stored like merchant keys: only a SHA-256.
create table operator_keys (
  id          text primary key,
  name        text not null,
  key_hash    bytea not null unique,
  key_prefix  text not null,
  created_at  timestamptz not null default now(),
  revoked_at  timestamptz
);

-- Events beyond the terminal two: review_required can come more than once per order (a FAILED
-- order may be paid later), so the one-event-per-order rule now holds for terminal events only.
alter table outbox_events drop constraint outbox_events_type_check;
alter table outbox_events add constraint outbox_events_type_check
  check (type in ('payment_order.completed', 'payment_order.failed', 'payment_order.review_required'));
drop index outbox_events_order_id_idx;
create unique index outbox_events_terminal_order_idx on outbox_events (order_id)
  where type in ('payment_order.completed', 'payment_order.failed');
create index outbox_events_order_idx on outbox_events (order_id);
