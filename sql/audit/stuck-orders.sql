-- Orders not terminal after N minutes, with their last provider call.
--   psql "$DATABASE_URL" -v minutes=5 -f sql/audit/stuck-orders.sql
select o.id, o.status, o.provider, o.created_at, now() - o.created_at as age,
       o.reconciling_since, o.next_attempt_at,
       last.kind as last_call, last.outcome as last_outcome, last.started_at as last_call_at, last.error
from payment_orders o
left join lateral (
  select kind, outcome, started_at, error from provider_attempts a
  where a.order_id = o.id order by attempt_number desc limit 1
) last on true
where o.status in ('PENDING', 'PROCESSING')
  and o.created_at < now() - make_interval(mins => :minutes)
order by o.created_at;
