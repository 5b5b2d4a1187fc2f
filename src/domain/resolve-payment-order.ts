import { DomainError, NotFoundError } from './errors.ts';
import type { Failure, PaymentOrder } from './payment-order.ts';

/**
 * An operator settles what no machine could: an order under review. A PROCESSING order becomes
 * COMPLETED or FAILED with a transition naming who and why, its terminal event, and its review
 * closed — in one transaction. A terminal order's review (money taken after FAILED, a second
 * payment) is closed with the note; its status never changes (a refund happens at the provider).
 */
export type ResolveCommand = Readonly<{
  orderId: string;
  status: 'COMPLETED' | 'FAILED';
  providerReference?: string | undefined;
  note: string;
  /** The operator key's name. */
  operator: string;
}>;

export type Resolution =
  | Readonly<{
      type: 'settle';
      status: 'COMPLETED' | 'FAILED';
      reference: string | null;
      failure: Failure | null;
      reason: string;
    }>
  | Readonly<{ type: 'close_review'; reason: string }>;

export interface ResolutionStore {
  /**
   * In ONE transaction holding the order's row: `plan` decides from the order as it is, then the
   * resolution is applied and the review closed. Returns the order afterwards.
   */
  resolve(command: ResolveCommand, plan: (order: PaymentOrder | null) => Resolution): Promise<PaymentOrder>;
}

export function planResolution(order: PaymentOrder | null, command: ResolveCommand): Resolution {
  if (!order) throw new NotFoundError('payment order', command.orderId);
  if (!order.review) {
    throw new DomainError('order_not_under_review', `Payment order '${order.id}' is not under review.`);
  }
  const reason = `resolved by operator ${command.operator}: ${command.note}`;
  if (order.status === 'PROCESSING') {
    return {
      type: 'settle',
      status: command.status,
      reference:
        command.status === 'COMPLETED'
          ? (command.providerReference ?? order.providerReference)
          : order.providerReference,
      failure: command.status === 'FAILED' ? { code: 'resolved_by_operator', message: command.note } : null,
      reason,
    };
  }
  if (order.status !== command.status) {
    throw new DomainError(
      'order_terminal',
      `Payment order '${order.id}' is ${order.status}, which is final: resolve its review with status ${order.status} once the money is put right at the provider.`,
    );
  }
  return { type: 'close_review', reason };
}

export function resolvePaymentOrder(store: ResolutionStore, command: ResolveCommand): Promise<PaymentOrder> {
  return store.resolve(command, (order) => planResolution(order, command));
}
