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
-- failures that got it switched off. Existing rows start their clock now. An attempt started
-- before the clock (in flight across a re-enable) is not counted when it ends.
alter table webhook_subscriptions add column failures_count_from timestamptz not null default now();

-- The automatic disabling's state, kept on the endpoint by the transaction that records attempt
-- outcomes (noteAttemptOutcomes, src/db/webhook-subscriptions.repository.ts), so that the hourly
-- check reads endpoints, not days of attempts. Over the finished attempts started at or after
-- failures_count_from, by start time (attempts end out of order):
--   last_success_at  the start of the latest 2xx;
--   last_failure_at  the start of the latest failed one (any answer but a 2xx, or none at all);
--   failing_since    the start of a failed attempt later than every 2xx, null when there is none:
--                    the streak of failures began then or later (never earlier; see the function).
-- All three are reset with failures_count_from.
alter table webhook_subscriptions
  add column failing_since timestamptz,
  add column last_success_at timestamptz,
  add column last_failure_at timestamptz;

-- Existing rows, computed once from their attempts. With their clock started now, only attempts
-- that instances still running the previous release start during this migration can count; with
-- none, every row stays null. failing_since here is exact: the earliest failure after the last 2xx.
with counted as (
  select d.subscription_id as id, a.started_at as at, coalesce(a.status_code between 200 and 299, false) as ok
    from webhook_delivery_attempts a
    join webhook_deliveries d on d.id = a.delivery_id
    join webhook_subscriptions s on s.id = d.subscription_id
   where a.ended_at is not null and a.started_at >= s.failures_count_from
), latest as (
  select id, max(at) filter (where ok) as success_at, max(at) filter (where not ok) as failure_at
    from counted group by id
), streak as (
  select c.id, min(c.at) as since
    from counted c join latest l on l.id = c.id
   where not c.ok and c.at > coalesce(l.success_at, '-infinity')
   group by c.id
)
update webhook_subscriptions s
   set last_success_at = l.success_at, last_failure_at = l.failure_at, failing_since = f.since
  from latest l left join streak f on f.id = l.id
 where s.id = l.id;

-- The hourly check looks up the endpoints failing since before its cutoff: few, and this partial
-- index holds only those that are failing at all.
create index webhook_subscriptions_failing_idx on webhook_subscriptions (failing_since)
  where enabled and failing_since is not null;

-- Subscriptions store their event types explicitly: one created without `events` got the full list
-- of its day, the three payment_order.* types. Those endpoints meant "everything", so they get the
-- new type too; an endpoint that chose some of the payment types keeps its choice.
update webhook_subscriptions
   set events = array_append(events, 'webhook_subscription.disabled')
 where events @> array['payment_order.completed', 'payment_order.failed', 'payment_order.review_required']
   and not events @> array['webhook_subscription.disabled'];

-- GET /webhook-subscriptions/{id}/deliveries pages newest first by (created_at, id): the id breaks
-- ties between deliveries made by one relay statement (same now()), so a page never skips one.
drop index webhook_deliveries_subscription_idx;
create index webhook_deliveries_subscription_idx on webhook_deliveries (subscription_id, created_at desc, id desc);

-- POST /webhook-subscriptions/{id}/replay takes an endpoint's dead and cancelled deliveries. They
-- are few next to the delivered ones, which this partial index leaves out.
create index webhook_deliveries_unsent_idx on webhook_deliveries (subscription_id)
  where status in ('dead', 'cancelled');

-- The delivery's event type, copied from its event when the delivery is written: filtering an
-- endpoint's deliveries by type (GET /webhook-subscriptions/{id}/deliveries?eventType=) is then one
-- index range, not a walk through the endpoint's whole history and each delivery's event.
alter table webhook_deliveries add column event_type text;
update webhook_deliveries d set event_type = e.type from outbox_events e where e.id = d.event_id;
alter table webhook_deliveries alter column event_type set not null;
create index webhook_deliveries_subscription_type_idx
  on webhook_deliveries (subscription_id, event_type, created_at desc, id desc);
