import type { CallResult, CallTicket, ProviderAnswer, ProviderOutcome } from '../domain/provider.ts';

/** A provider call's outcome with what its attempt row records (a retry that may have charged is 'unknown'). */
export function toAnswer(
  ticket: CallTicket,
  startedAt: number,
  outcome: ProviderOutcome,
  httpStatus: number | null,
  error: string | null = null,
): ProviderAnswer {
  const call: CallResult = {
    outcome: outcome.kind === 'retry' && outcome.charged === 'unknown' ? 'unknown' : outcome.kind,
    httpStatus,
    latencyMs: performance.now() - startedAt,
    error,
  };
  return { outcome, ticket, call };
}
