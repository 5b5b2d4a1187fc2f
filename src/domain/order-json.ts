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
  /** The charge the call asked about, or that its answer named. */
  providerReference: string | null;
}>;

/** A review of the order, open or settled, as the API shows it. */
export type ReviewView = Readonly<{
  reason: string;
  detail: string;
  openedAt: Date;
  resolvedAt: Date | null;
  resolvedBy: string | null;
  resolution: string | null;
  note: string | null;
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
    // Set while people must look at it: an outcome no machine can settle (see payment_order_reviews).
    review: order.review ? { reason: order.review.reason, since: order.review.since.toISOString() } : null,
    createdAt: order.createdAt.toISOString(),
    updatedAt: order.updatedAt.toISOString(),
  };
}

export function orderDetailJson(
  order: PaymentOrder,
  history: readonly Transition[],
  attempts: readonly AttemptView[],
  reviews: readonly ReviewView[] = [],
) {
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
      providerReference: a.providerReference,
    })),
    history: history.map((t) => ({ from: t.from, to: t.to, reason: t.reason, at: t.at.toISOString() })),
    reviews: reviews.map((r) => ({
      reason: r.reason,
      detail: r.detail,
      openedAt: r.openedAt.toISOString(),
      resolvedAt: r.resolvedAt?.toISOString() ?? null,
      resolvedBy: r.resolvedBy,
      resolution: r.resolution,
      note: r.note,
    })),
  };
}
