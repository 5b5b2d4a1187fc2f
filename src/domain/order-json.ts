import type { PaymentOrder, Transition } from './payment-order.ts';

/** One provider call as the API shows it. */
export type AttemptView = Readonly<{
  number: number;
  kind: string;
  provider: string;
  startedAt: Date;
  endedAt: Date | null;
  outcome: string | null;
  httpStatus: number | null;
  latencyMs: number | null;
  error: string | null;
}>;

/**
 * The public JSON of an order: what the API answers and what events carry as `data`. The merchant
 * id stays internal (the reader is the merchant), and so does processing bookkeeping.
 */
export function orderJson(order: PaymentOrder) {
  return {
    id: order.id,
    object: 'payment_order',
    status: order.status,
    amount: order.amount,
    currency: order.currency,
    provider: order.provider,
    paymentMethod: order.paymentMethod,
    reference: order.reference,
    description: order.description,
    metadata: order.metadata,
    providerReference: order.providerReference,
    failure: order.failure,
    // While PROCESSING: when the next provider call is due, and since when the outcome is being
    // reconciled (retries ran out while the provider may have charged).
    nextAttemptAt: order.nextAttemptAt?.toISOString() ?? null,
    reconcilingSince: order.reconcilingSince?.toISOString() ?? null,
    createdAt: order.createdAt.toISOString(),
    updatedAt: order.updatedAt.toISOString(),
  };
}

export function orderDetailJson(order: PaymentOrder, history: readonly Transition[], attempts: readonly AttemptView[]) {
  return {
    ...orderJson(order),
    attempts: attempts.map((a) => ({
      number: a.number,
      kind: a.kind,
      provider: a.provider,
      startedAt: a.startedAt.toISOString(),
      endedAt: a.endedAt?.toISOString() ?? null,
      outcome: a.outcome,
      httpStatus: a.httpStatus,
      latencyMs: a.latencyMs,
      error: a.error,
    })),
    history: history.map((t) => ({ from: t.from, to: t.to, reason: t.reason, at: t.at.toISOString() })),
  };
}
