-- One order's full story: the order, every transition and every provider call, in time order.
--   psql "$DATABASE_URL" -v order_id=po_... -f sql/audit/order-story.sql
select id, merchant_id, status, amount, currency, provider, provider_reference,
       failure_code, failure_message, reconciling_since, next_attempt_at, review_reason, review_since,
       created_at, updated_at
from payment_orders where id = :'order_id';

select at, what, detail from (
  select created_at as at, 'transition' as what,
         coalesce(from_status, '-') || ' -> ' || to_status || ': ' || reason as detail
  from payment_order_transitions where order_id = :'order_id'
  union all
  select started_at, 'call #' || attempt_number || ' ' || kind,
         provider || ' ' || coalesce(outcome, 'NO OUTCOME (in flight or crashed)')
           || coalesce(' HTTP ' || http_status, '') || coalesce(' ' || latency_ms || ' ms', '')
           || coalesce(' ref ' || provider_reference, '') || coalesce(' ' || error, '')
  from provider_attempts where order_id = :'order_id'
  union all
  select received_at, 'callback ' || disposition,
         provider || ' ' || external_id || ' ' || outcome || ' (' || result_code || ')'
           || coalesce(' amount ' || amount, '') || coalesce(' receipt ' || receipt, '')
  from provider_callbacks where order_id = :'order_id'
  union all
  select opened_at, 'review opened', reason || ': ' || detail from payment_order_reviews where order_id = :'order_id'
  union all
  select resolved_at, 'review settled', coalesce(resolution, '') || ' by ' || coalesce(resolved_by, '?') || ': ' || coalesce(note, '')
  from payment_order_reviews where order_id = :'order_id' and resolved_at is not null
  union all
  select created_at, 'event', type || ' ' || id from outbox_events where order_id = :'order_id'
) story
order by at;
