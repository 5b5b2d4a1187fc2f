-- Orders by status, with the oldest and newest of each.
--   psql "$DATABASE_URL" -f sql/audit/orders-by-status.sql
select status,
       count(*)                         as orders,
       min(created_at)                  as oldest,
       max(created_at)                  as newest,
       count(*) filter (where reconciling_since is not null) as reconciling
from payment_orders
group by status
order by array_position(array['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED'], status);
