import type { Review } from './decide.ts';
import { type CallFact, knowledgeOf, type ProviderTraits } from './money-rule.ts';
import type { PaymentOrder } from './payment-order.ts';

/**
 * A provider's asynchronous result (the M-Pesa STK callback) is evidence, not authority: anyone who
 * learns an order's callback URL can post to it. A success counts only for a push we made for that
 * order, and only once it is confirmed — by the amount and phone it reports matching what we pushed,
 * or by asking the provider (an STK query). Anything that contradicts what we know is recorded and
 * flagged for people, never only logged.
 */

/** A callback as the adapter parsed it, amounts already in the order's minor units. */
export type ProviderCallback = Readonly<{
  provider: string;
  /** The charge it is about (M-Pesa: the CheckoutRequestID). */
  externalId: string;
  resultCode: string;
  outcome: 'succeeded' | 'declined' | 'pending';
  /** What it says was paid, in the order's minor units; null when the callback does not say. */
  amount: number | null;
  phone: string | null;
  /** The provider's receipt for a payment (M-Pesa: MpesaReceiptNumber). */
  receipt: string | null;
  /** For a decline: the code and message the order's failure would carry. */
  declineCode: string | null;
  declineMessage: string | null;
}>;

export type CallbackDisposition =
  /** Confirmed (amount and phone match our push): the order is completed by it. */
  | 'applied'
  /** A result for a push of ours that is still open: the provider is asked at once to confirm it. */
  | 'confirming'
  /** The success the order already completed with, again. */
  | 'duplicate'
  /** Changes nothing (a non-final result, a decline of a settled push, a decline after the end). */
  | 'ignored'
  /** Names a charge we never saw. */
  | 'unmatched'
  | 'paid_after_failure'
  | 'second_payment'
  | 'contradiction';

export type CallbackContext = Readonly<{
  order: PaymentOrder;
  traits: ProviderTraits;
  calls: readonly CallFact[];
  /** The charge a COMPLETED order was paid by (its CheckoutRequestID), if known. */
  paidExternalId: string | null;
  /** Whether another order's calls or callbacks already name the callback's charge. */
  claimedElsewhere: boolean;
}>;

export type CallbackJudgement = Readonly<{
  disposition: CallbackDisposition;
  /** Complete the order now, with this reference. */
  complete?: { reference: string; reason: string } | undefined;
  /** Run the order's next step now: it will ask the provider about the push. */
  confirm?: boolean | undefined;
  review?: Review | undefined;
}>;

/** What one callback means for its order. Pure: the store applies it in one transaction. */
export function judgeCallback(context: CallbackContext, callback: ProviderCallback): CallbackJudgement {
  const { order } = context;
  const paid = callback.outcome === 'succeeded';
  const receipt = callback.receipt ? ` (receipt ${callback.receipt})` : '';
  switch (order.status) {
    case 'COMPLETED': {
      if (!paid) return { disposition: 'ignored' };
      const same =
        callback.externalId === context.paidExternalId ||
        (callback.receipt !== null && callback.receipt === order.providerReference);
      if (same) return { disposition: 'duplicate' };
      return {
        disposition: 'second_payment',
        review: {
          reason: 'second_payment',
          detail: `${callback.provider} reports a payment for ${callback.externalId}${receipt} although the order was already paid by ${context.paidExternalId ?? order.providerReference}: refund one of them.`,
        },
      };
    }
    case 'FAILED':
      if (!paid) return { disposition: 'ignored' };
      return {
        disposition: 'paid_after_failure',
        review: {
          reason: 'paid_after_failure',
          detail: `${callback.provider} reports a payment for ${callback.externalId}${receipt} although the order FAILED: refund it, or settle it by hand.`,
        },
      };
    case 'PENDING':
      return { disposition: 'unmatched' };
    case 'PROCESSING':
      return whileProcessing(context, callback, receipt);
  }
}

function whileProcessing(context: CallbackContext, callback: ProviderCallback, receipt: string): CallbackJudgement {
  if (callback.outcome === 'pending') return { disposition: 'ignored' };
  const paid = callback.outcome === 'succeeded';
  // A push is ours when a push answer named it, or the provider answered a query about it.
  const ours = context.calls.some(
    (call) =>
      call.reference === callback.externalId &&
      (call.kind === 'charge' || (call.outcome !== null && ANSWERS.has(call.outcome))),
  );
  const knowledge = knowledgeOf(context.traits, context.calls);
  if (!ours) {
    // Not a push we know. If one of ours is unaccounted for (its answer was lost), this may be its
    // result: when it reports our amount and phone and no other order has that charge, the
    // provider is asked about it (a lead: knowledgeOf); only its answer completes the order.
    const unaccounted = knowledge.state === 'in_doubt' && knowledge.open.includes(null);
    if (paid && unaccounted && matchesOrder(context.order, callback) && !context.claimedElsewhere) {
      return { disposition: 'confirming', confirm: true };
    }
    if (paid && unaccounted) {
      return {
        disposition: 'unmatched',
        review: {
          reason: 'unmatched_callback',
          detail: `${callback.provider} reports a payment for ${callback.externalId}${receipt}, a charge we have no record of and that does not match this order${context.claimedElsewhere ? ' (another order has it)' : ''}, while a push of this order got no answer: check it with the provider before settling.`,
        },
      };
    }
    return { disposition: 'unmatched' };
  }
  const open = knowledge.state === 'in_doubt' && knowledge.open.includes(callback.externalId);
  if (!open) {
    // Our push, already settled by the provider's own answer.
    if (!paid) return { disposition: 'ignored' };
    return {
      disposition: 'contradiction',
      review: {
        reason: 'contradiction',
        detail: `${callback.provider} reports a payment for ${callback.externalId}${receipt}, a push it had already answered as not paid.`,
      },
    };
  }
  if (paid && matchesOrder(context.order, callback)) {
    return {
      disposition: 'applied',
      complete: {
        reference: callback.receipt ?? callback.externalId,
        reason: 'callback: succeeded (amount and phone match)',
      },
    };
  }
  // A decline, or a success whose amount or phone we cannot match: ask the provider.
  return { disposition: 'confirming', confirm: true };
}

const ANSWERS: ReadonlySet<string> = new Set(['succeeded', 'declined', 'pending', 'not_found']);

function matchesOrder(order: PaymentOrder, callback: ProviderCallback): boolean {
  const phone = order.paymentMethod?.type === 'mpesa' ? order.paymentMethod.phone : null;
  return callback.amount === order.amount && phone !== null && callback.phone === phone;
}
