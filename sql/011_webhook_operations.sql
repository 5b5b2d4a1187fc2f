-- Webhook operations: endpoints switched off automatically, and the event that says so; bulk
-- replay and filtered, paginated listing of an endpoint's deliveries.

-- The outbox carries events about things other than orders: `webhook_subscription.disabled` is
-- about a subscription. Each event names exactly one subject, the column matching its type's
-- prefix, so `psql` can still join an event to what it is about (and the Kafka key is that id).
alter table outbox_events alter column order_id drop not null;
alter table outbox_events add column subscription_id text references webhook_subscriptions (id);
alter table outbox_events add constraint outbox_events_subject_check check (
  case when type like 'payment_order.%' then order_id is not null and subscription_id is null
       when type like 'webhook_subscription.%' then subscription_id is not null and order_id is null
       else false end
);
alter table outbox_events drop constraint outbox_events_type_check;
alter table outbox_events add constraint outbox_events_type_check
  check (type in ('payment_order.completed', 'payment_order.failed', 'payment_order.review_required',
                  'webhook_subscription.disabled'));
create index outbox_events_subscription_idx on outbox_events (subscription_id) where subscription_id is not null;

-- The automatic disabling judges an endpoint only on attempts made since it was last created,
-- turned back on or pointed at a new URL: without this, an endpoint the merchant has just fixed
-- and re-enabled would be switched off again at the next check, on the strength of the very
-- failures that got it switched off. Existing rows start their clock now.
alter table webhook_subscriptions add column failures_count_from timestamptz not null default now();

-- The automatic disabling reads the last N days of attempts (WEBHOOK_DISABLE_AFTER_DAYS, default
-- 5) once an hour: a range scan on this instead of the whole table. started_at is written once, at
-- insert, so the index costs nothing on the update that closes an attempt.
create index webhook_delivery_attempts_started_idx on webhook_delivery_attempts (started_at);

-- GET /webhook-subscriptions/{id}/deliveries pages newest first by (created_at, id): the id breaks
-- ties between deliveries made by one relay statement (same now()), so a page never skips one.
drop index webhook_deliveries_subscription_idx;
create index webhook_deliveries_subscription_idx on webhook_deliveries (subscription_id, created_at desc, id desc);

-- POST /webhook-subscriptions/{id}/replay takes an endpoint's dead and cancelled deliveries. They
-- are few next to the delivered ones, which this partial index leaves out.
create index webhook_deliveries_unsent_idx on webhook_deliveries (subscription_id)
  where status in ('dead', 'cancelled');
