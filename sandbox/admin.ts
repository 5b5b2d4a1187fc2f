import type { Reply } from './http.ts';
import type { Ledger } from './ledger.ts';
import type { RequestRecord } from './request-log.ts';
import { SCRIPTED_OUTCOMES, type Scripts } from './scripts.ts';
import { type Switches, SwitchesError } from './switches.ts';

export type AdminDependencies = Readonly<{
  switches(): Readonly<Switches>;
  /** Merges a partial set of switches; throws SwitchesError if it is invalid. */
  setSwitches(patch: unknown): void;
  reset(): void;
  ledger: Ledger;
  requests(): RequestRecord[];
  scripts: Scripts;
}>;

/**
 * The admin API, for tests and humans; never subject to faults or latency:
 * GET|POST /__admin/switches, POST /__admin/reset, GET /__admin/ledger[?orderId=&id=&provider=],
 * GET /__admin/requests, POST /__admin/scripts { key, outcomes } (scripts.ts), GET /__admin/scripts.
 */
export function handleAdmin(method: string, url: URL, body: string, deps: AdminDependencies): Reply {
  const route = `${method} ${url.pathname}`;
  switch (route) {
    case 'GET /__admin/switches':
      return { status: 200, body: deps.switches() };
    case 'POST /__admin/switches':
      return updateSwitches(body, deps);
    case 'POST /__admin/reset':
      deps.reset();
      return { status: 200, body: deps.switches() };
    case 'GET /__admin/ledger':
      return { status: 200, body: { entries: deps.ledger.list(ledgerFilter(url.searchParams)) } };
    case 'GET /__admin/requests':
      return { status: 200, body: { requests: deps.requests() } };
    case 'POST /__admin/scripts':
      return setScript(body, deps);
    case 'GET /__admin/scripts':
      return { status: 200, body: { used: deps.scripts.used() } };
    default:
      return { status: 404, body: { error: `no admin route ${route}` } };
  }
}

function updateSwitches(body: string, deps: AdminDependencies): Reply {
  try {
    deps.setSwitches(JSON.parse(body || '{}'));
    return { status: 200, body: deps.switches() };
  } catch (error) {
    if (error instanceof SyntaxError || error instanceof SwitchesError) {
      return { status: 400, body: { error: error.message } };
    }
    throw error;
  }
}

function setScript(body: string, deps: AdminDependencies): Reply {
  let parsed: { key?: unknown; outcomes?: unknown };
  try {
    parsed = JSON.parse(body || '{}');
  } catch (error) {
    return { status: 400, body: { error: (error as Error).message } };
  }
  const outcomes = parsed.outcomes;
  const valid =
    typeof parsed.key === 'string' &&
    parsed.key !== '' &&
    Array.isArray(outcomes) &&
    outcomes.every((o) => (SCRIPTED_OUTCOMES as readonly unknown[]).includes(o));
  if (!valid) {
    return { status: 400, body: { error: `expected { key, outcomes: [${SCRIPTED_OUTCOMES.join(' | ')}] }` } };
  }
  deps.scripts.set(parsed.key as string, outcomes as never);
  return { status: 200, body: { key: parsed.key, outcomes } };
}

function ledgerFilter(query: URLSearchParams): { orderId?: string; id?: string; provider?: string } {
  const filter: { orderId?: string; id?: string; provider?: string } = {};
  for (const name of ['orderId', 'id', 'provider'] as const) {
    const value = query.get(name);
    if (value !== null) filter[name] = value;
  }
  return filter;
}
