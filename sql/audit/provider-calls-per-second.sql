-- Provider calls started per second over a period, and the most that started in any sliding
-- 1-second window: the proof that the global rate gate held (at most PROVIDER_CALLS_PER_SECOND).
--   psql "$DATABASE_URL" -v from="'2026-01-01 00:00'" -v to="'2026-12-31'" -f sql/audit/provider-calls-per-second.sql
select date_trunc('second', started_at) as second, count(*) as calls,
       string_agg(provider || ':' || kind, ' ' order by started_at) as which
from provider_attempts
where started_at >= :from::timestamptz and started_at < :to::timestamptz
group by 1
order by 1;

-- For each call, how many calls started in the 1-second window that begins with it.
select max(in_window) as max_starts_in_any_1s_window,
       count(*) as calls,
       round(count(*) / greatest(extract(epoch from max(started_at) - min(started_at)), 1)::numeric, 3) as calls_per_second
from (
  select a.started_at,
         (select count(*) from provider_attempts b
           where b.started_at >= a.started_at and b.started_at < a.started_at + interval '1 second') as in_window
  from provider_attempts a
  where a.started_at >= :from::timestamptz and a.started_at < :to::timestamptz
) windows;
