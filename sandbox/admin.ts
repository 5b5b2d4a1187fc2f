import type { Reply } from './http.ts';
import type { Ledger } from './ledger.ts';
import type { RequestRecord } from './request-log.ts';
import { type Switches, SwitchesError } from './switches.ts';

export type AdminDependencies = Readonly<{
  switches(): Readonly<Switches>;
  /** Merges a partial set of switches; throws SwitchesError if it is invalid. */
  setSwitches(patch: unknown): void;
  reset(): void;
  ledger: Ledger;
  requests(): RequestRecord[];
}>;

/**
 * The admin API, for tests and humans; never subject to faults or latency:
 * GET|POST /__admin/switches, POST /__admin/reset, GET /__admin/ledger[?orderId=&id=&provider=],
 * GET /__admin/requests.
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

function ledgerFilter(query: URLSearchParams): { orderId?: string; id?: string; provider?: string } {
  const filter: { orderId?: string; id?: string; provider?: string } = {};
  for (const name of ['orderId', 'id', 'provider'] as const) {
    const value = query.get(name);
    if (value !== null) filter[name] = value;
  }
  return filter;
}
