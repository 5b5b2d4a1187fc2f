-- The review queue: orders people must settle, oldest first, with why and what the provider and
-- its callbacks last said. Settle one with POST /payment-orders/{id}/resolve (an operator key).
--   psql "$DATABASE_URL" -f sql/audit/review-queue.sql
select r.opened_at, now() - r.opened_at as waiting, r.order_id, o.status, o.provider, o.amount, o.currency,
       o.provider_reference, r.reason, r.detail,
       last_call.kind || ' ' || coalesce(last_call.outcome, 'NO OUTCOME') || coalesce(' HTTP ' || last_call.http_status, '')
         || ' at ' || last_call.started_at as last_call,
       last_callback.disposition || ' ' || last_callback.external_id || coalesce(' ' || last_callback.receipt, '')
         || ' at ' || last_callback.received_at as last_callback
from payment_order_reviews r
join payment_orders o on o.id = r.order_id
left join lateral (
  select kind, outcome, http_status, started_at from provider_attempts a
  where a.order_id = r.order_id and a.kind <> 'token' order by attempt_number desc limit 1
) last_call on true
left join lateral (
  select disposition, external_id, receipt, received_at from provider_callbacks c
  where c.order_id = r.order_id order by id desc limit 1
) last_callback on true
where r.resolved_at is null
order by r.opened_at;

-- How reviews were settled lately (who, how, how long they waited).
select r.resolved_at, r.order_id, r.reason, r.resolution, r.resolved_by, r.resolved_at - r.opened_at as waited, r.note
from payment_order_reviews r
where r.resolved_at > now() - interval '7 days'
order by r.resolved_at desc
limit 50;
