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

/** A create ready to be stored: the key and its fingerprint, the new order, the answer to save. */
export type OrderToStore = Readonly<{
  merchantId: string;
  idempotencyKey: string;
  fingerprint: string;
  ttlHours: number;
  order: PaymentOrder;
  response: SavedResponse;
}>;

/** Where the create step writes. */
export interface CreateOrderStore {
  /**
   * In ONE transaction: takes the key for this request or reports who has it; if taken for this
   * request, writes the key with its saved response, the order (PENDING), its first transition and
   * the job that will send it to the provider. Either all of it commits or none. Waits while
   * another transaction holds the same key uncommitted, so concurrent requests see either nothing
   * or a finished result.
   */
  create(request: OrderToStore): Promise<IdempotencyClaim>;
}

export type CreatePaymentOrderCommand = Readonly<{
  merchantId: string;
  idempotencyKey: string;
  /** The request's route, part of the fingerprint: one key is one request to one endpoint. */
  operation: string;
  order: NewPaymentOrder;
}>;

export type CreatePaymentOrderDeps = Readonly<{
  store: CreateOrderStore;
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
  // The order and its answer are made before the key is claimed, so that the claim, the order and
  // the saved answer are one write; on a replay they are simply not used.
  const order = newOrder(merchantId, provider, command.order, deps.now?.() ?? new Date());
  const response = respond(order);
  const claim = await deps.store.create({
    merchantId,
    idempotencyKey,
    fingerprint,
    ttlHours: deps.idempotencyKeyTtlHours,
    order,
    response,
  });
  if (claim.kind === 'taken') {
    if (claim.fingerprint !== fingerprint) throw new IdempotencyKeyReusedError(idempotencyKey);
    return { response: claim.response, replayed: true };
  }
  return { response, replayed: false };
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
