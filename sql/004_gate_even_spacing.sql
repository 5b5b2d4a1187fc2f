-- The gate also spreads calls evenly: a call starts no sooner than window / limit after the
-- previous start in each of its scopes (500 ms + half the margin at 2 per second), instead of
-- letting `limit` calls go at the same instant and then none for a window. The long-run rate is the
-- same, and `limit` consecutive spacings already make a window, so the sliding-window rule holds a
-- fortiori (it is kept as it was). Why: calls granted at the same instant compete for the same CPUs
-- on their way out, and the slower one reaches the provider later than its recorded start; evenly
-- spaced calls do not, so the provider's view of the rate stays within the margin.
create or replace function rate_gate_try_start(p_scopes text[], p_limits integer[], p_window interval)
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
    -- starts is sorted; its `limit`-th latest entry must be a full window old,
    if v_n >= p_limits[i] then
      v_earliest := greatest(v_earliest, v_starts[v_n - p_limits[i] + 1] + p_window);
    end if;
    -- and its latest a window / limit old.
    if v_n >= 1 then
      v_earliest := greatest(v_earliest, v_starts[v_n] + p_window / p_limits[i]);
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
