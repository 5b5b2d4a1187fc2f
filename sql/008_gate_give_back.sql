-- The gate is judged where the provider counts: when each request arrives. The adapters now send a
-- call in a short window after its grant (src/db/rate-gate.ts sendTiming), and give a grant back
-- when they cannot (src/providers/provider-http.ts). Measured before (bench:gate, 3 instances, 60
-- calls per phase): a call reached the sandbox up to 135 ms after its grant on an instance's first
-- call, 178 ms on new connections to a provider slow to take them, 172 ms with every core busy, and
-- the sandbox saw 3 calls in one second 1 to 12 times per phase.

-- How many grants the call took: 1, plus one per grant given back unused (for psql and bench:gate).
alter table provider_attempts add column gate_grants integer not null default 1;

-- rate_gate_try_start (004), except that a start may be granted up to p_ahead before it is due:
-- the caller asks a little early and is given the exact moment its place frees up (possibly a few
-- milliseconds ahead), instead of asking late and starting late. Calls leave a fixed lead after
-- their grant, so the gate's spacing is what the provider sees; asking ahead keeps the wake-up and
-- the query's own time (2-5 ms a call) out of that spacing. The start is never sooner than
-- p_advance from now (0 but for a call whose grants keep going stale: it gets time to be ready).
-- Returns the clock reading too, which the caller uses to place the grant on its own clock.
create function rate_gate_try_start_ahead(
  p_scopes text[], p_limits integer[], p_window interval, p_ahead interval, p_advance interval
)
returns table (started boolean, at timestamptz, read_at timestamptz) language plpgsql as $$
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
  if v_earliest > v_now + p_ahead then
    return query select false, v_earliest, v_now;
    return;
  end if;
  v_earliest := greatest(v_earliest, v_now + p_advance);
  for i in 1 .. cardinality(p_scopes) loop
    update provider_rate_gate
       set starts = (starts || v_earliest)[greatest(1, cardinality(starts) + 2 - p_limits[i]):]
     where scope = p_scopes[i];
  end loop;
  return query select true, v_earliest, v_now;
end;
$$;

-- Gives back a start the gate granted but nobody used (the call never left: nothing reached the
-- provider), then asks as rate_gate_try_start_ahead does. Giving it back is safe: the gate's starts
-- are then those of calls that may have been sent, and every grant made meanwhile was computed
-- against more starts than that, so none becomes too early. The rows are locked in scope order
-- first, as rate_gate_try_start_ahead locks them (it locks them again, already held).
create function rate_gate_give_back_and_try(
  p_scopes text[], p_limits integer[], p_window interval, p_ahead interval, p_advance interval, p_unused timestamptz
)
returns table (started boolean, at timestamptz, read_at timestamptz) language plpgsql as $$
begin
  insert into provider_rate_gate (scope) select unnest(p_scopes) on conflict (scope) do nothing;
  perform 1 from provider_rate_gate where scope = any (p_scopes) order by scope for update;
  update provider_rate_gate set starts = array_remove(starts, p_unused) where scope = any (p_scopes);
  return query select * from rate_gate_try_start_ahead(p_scopes, p_limits, p_window, p_ahead, p_advance);
end;
$$;
