import { canonicalJson, sha256Hex } from '../lib/canonical-json.ts';
import { newId } from '../lib/ids.ts';
import { IdempotencyKeyReusedError } from './errors.ts';
import { type NewPaymentOrder, ORDER_ID_PREFIX, type PaymentOrder } from './payment-order.ts';
import { type AmountRules, chooseProvider, type RoutingRules } from './routing.ts';

/** The answer saved with an idempotency key and given again, byte for byte, on a replay. */
export type SavedResponse = Readonly<{ status: number; body: string }>;

export type IdempotencyClaim =
  | { readonly kind: 'claimed' }
  | { readonly kind: 'taken'; readonly fingerprint: string; readonly response: SavedResponse };

/** Everything the create step does, inside one database transaction. */
export interface CreateOrderUnitOfWork {
  /**
   * Takes the key for this request, or reports who has it. Waits while another transaction holds
   * the same key uncommitted, so concurrent requests see either nothing or a finished result.
   */
  claimIdempotencyKey(
    merchantId: string,
    key: string,
    fingerprint: string,
    ttlHours: number,
  ): Promise<IdempotencyClaim>;
  insertOrder(order: PaymentOrder, idempotencyKey: string): Promise<void>;
  appendTransition(
    orderId: string,
    from: PaymentOrder['status'] | null,
    to: PaymentOrder['status'],
    reason: string,
  ): Promise<void>;
  enqueueProcessing(orderId: string): Promise<void>;
  saveResponse(merchantId: string, key: string, orderId: string, response: SavedResponse): Promise<void>;
}

export interface TransactionRunner<U> {
  inTransaction<T>(work: (unit: U) => Promise<T>): Promise<T>;
}

export type CreatePaymentOrderCommand = Readonly<{
  merchantId: string;
  idempotencyKey: string;
  /** The request's route, part of the fingerprint: one key is one request to one endpoint. */
  operation: string;
  order: NewPaymentOrder;
}>;

export type CreatePaymentOrderDeps = Readonly<{
  store: TransactionRunner<CreateOrderUnitOfWork>;
  routing: RoutingRules;
  /** Each provider's money rules: create refuses (400) what the chosen provider cannot charge exactly. */
  amountRules: AmountRules;
  idempotencyKeyTtlHours: number;
  now?: () => Date;
}>;

/** The fingerprint of a request: the canonical JSON of its validated body, hashed. */
export function requestFingerprint(operation: string, order: NewPaymentOrder): string {
  return sha256Hex(canonicalJson({ operation, order }));
}

/**
 * Accepts a payment order: in ONE transaction the idempotency key, the order (PENDING), its first
 * transition and the job that will send it to the provider. Either all of it commits or none.
 * A request that repeats a finished one gets that one's saved response back.
 */
export async function createPaymentOrder(
  deps: CreatePaymentOrderDeps,
  command: CreatePaymentOrderCommand,
  respond: (order: PaymentOrder) => SavedResponse,
): Promise<{ response: SavedResponse; replayed: boolean }> {
  const provider = chooseProvider(command.order, deps.routing, deps.amountRules);
  const fingerprint = requestFingerprint(command.operation, command.order);
  const { merchantId, idempotencyKey } = command;
  return deps.store.inTransaction(async (unit) => {
    const claim = await unit.claimIdempotencyKey(merchantId, idempotencyKey, fingerprint, deps.idempotencyKeyTtlHours);
    if (claim.kind === 'taken') {
      if (claim.fingerprint !== fingerprint) throw new IdempotencyKeyReusedError(idempotencyKey);
      return { response: claim.response, replayed: true };
    }
    const order = newOrder(merchantId, provider, command.order, deps.now?.() ?? new Date());
    await unit.insertOrder(order, idempotencyKey);
    await unit.appendTransition(order.id, null, 'PENDING', 'accepted');
    await unit.enqueueProcessing(order.id);
    const response = respond(order);
    await unit.saveResponse(merchantId, idempotencyKey, order.id, response);
    return { response, replayed: false };
  });
}

/** A new PENDING order as the create step stores it. */
export function newOrder(merchantId: string, provider: string, input: NewPaymentOrder, now: Date): PaymentOrder {
  return {
    id: newId(ORDER_ID_PREFIX, now.getTime()),
    merchantId,
    status: 'PENDING',
    amount: input.amount,
    currency: input.currency,
    provider,
    paymentMethod: input.paymentMethod ?? null,
    reference: input.reference ?? null,
    description: input.description ?? null,
    metadata: input.metadata ?? {},
    providerReference: null,
    failure: null,
    nextAttemptAt: null,
    reconcilingSince: null,
    review: null,
    createdAt: now,
    updatedAt: now,
  };
}
