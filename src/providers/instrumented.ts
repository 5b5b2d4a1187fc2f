import type {
  CallKind,
  CallResult,
  CallTicket,
  ChargeRequest,
  PaymentProvider,
  ProviderAnswer,
  ProviderCalls,
} from '../domain/provider.ts';
import type { Metrics } from '../metrics/metrics.ts';

/**
 * The same provider, with every call it makes counted and timed for GET /metrics: how long each
 * call waited at the rate gate, and each call's kind, outcome and latency (charges and status
 * queries through their answers, token requests through `finish`).
 */
export function instrumentProvider(provider: PaymentProvider, metrics: Metrics): PaymentProvider {
  const observe = (kind: CallKind, call: CallResult) => {
    metrics.providerCalls.inc({ provider: provider.name, kind, outcome: call.outcome });
    metrics.providerCallDuration.observe({ provider: provider.name, kind }, call.latencyMs / 1000);
  };
  const wrap = (calls: ProviderCalls) => {
    const kinds = new Map<CallTicket, CallKind>();
    const wrapped: ProviderCalls = {
      async start(kind, idempotencyKey) {
        const asked = performance.now();
        const ticket = await calls.start(kind, idempotencyKey);
        metrics.gateWait.observe({ provider: provider.name }, (performance.now() - asked) / 1000);
        kinds.set(ticket, kind);
        return ticket;
      },
      async restart(ticket) {
        // A grant given back and asked again, for the same call: one observation per call stays
        // one (the new grant usually comes at once: the place given back is free).
        const again = await calls.restart(ticket);
        kinds.set(again, kinds.get(ticket) ?? 'token');
        return again;
      },
      async finish(ticket, result) {
        await calls.finish(ticket, result);
        observe(kinds.get(ticket) ?? 'token', result);
      },
    };
    const answered = (answer: ProviderAnswer | null, fallback: CallKind) => {
      if (answer) observe(kinds.get(answer.ticket) ?? fallback, answer.call);
      return answer;
    };
    return { wrapped, answered };
  };
  return {
    name: provider.name,
    usesCallback: provider.usesCallback,
    traits: provider.traits,
    async charge(request: ChargeRequest, calls: ProviderCalls) {
      const { wrapped, answered } = wrap(calls);
      return answered(await provider.charge(request, wrapped), 'charge') as ProviderAnswer;
    },
    async status(request: ChargeRequest, calls: ProviderCalls) {
      const { wrapped, answered } = wrap(calls);
      return answered(await provider.status(request, wrapped), 'status');
    },
  };
}
