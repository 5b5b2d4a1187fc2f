-- One order's full story: the order, every transition and every provider call, in time order.
--   psql "$DATABASE_URL" -v order_id=po_... -f sql/audit/order-story.sql
select id, merchant_id, status, amount, currency, provider, provider_reference,
       failure_code, failure_message, reconciling_since, next_attempt_at, created_at, updated_at
from payment_orders where id = :'order_id';

select at, what, detail from (
  select created_at as at, 'transition' as what,
         coalesce(from_status, '-') || ' -> ' || to_status || ': ' || reason as detail
  from payment_order_transitions where order_id = :'order_id'
  union all
  select started_at, 'call #' || attempt_number || ' ' || kind,
         provider || ' ' || coalesce(outcome, 'NO OUTCOME (in flight or crashed)')
           || coalesce(' HTTP ' || http_status, '') || coalesce(' ' || latency_ms || ' ms', '')
           || coalesce(' ' || error, '')
  from provider_attempts where order_id = :'order_id'
  union all
  select created_at, 'event', type || ' ' || id from outbox_events where order_id = :'order_id'
) story
order by at;
