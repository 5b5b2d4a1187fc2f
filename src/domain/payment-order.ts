import type { CurrencyCode } from './currencies.ts';

export const ORDER_STATUSES = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

export const TERMINAL_STATUSES: readonly OrderStatus[] = ['COMPLETED', 'FAILED'];

export type PaymentMethod =
  | { readonly type: 'card'; readonly token: string }
  | { readonly type: 'mpesa'; readonly phone: string };

/** What a merchant asks for, already validated and canonicalised (currency upper-cased). */
export type NewPaymentOrder = Readonly<{
  amount: number;
  currency: CurrencyCode;
  provider?: string | undefined;
  paymentMethod?: PaymentMethod | undefined;
  reference?: string | undefined;
  description?: string | undefined;
  metadata?: Readonly<Record<string, string>> | undefined;
}>;

export type Failure = Readonly<{ code: string; message: string }>;

/** Why an order is under review (a stable code, see decide.ts ReviewReason), and since when. */
export type OrderReview = Readonly<{ reason: string; since: Date }>;

export type Transition = Readonly<{
  from: OrderStatus | null;
  to: OrderStatus;
  reason: string;
  at: Date;
}>;

export type PaymentOrder = Readonly<{
  id: string;
  merchantId: string;
  status: OrderStatus;
  amount: number;
  currency: string;
  provider: string;
  paymentMethod: PaymentMethod | null;
  reference: string | null;
  description: string | null;
  metadata: Readonly<Record<string, string>>;
  providerReference: string | null;
  failure: Failure | null;
  /** While PROCESSING: when the next provider call is scheduled. */
  nextAttemptAt: Date | null;
  /** Set when retries ran out while the provider may have charged: reconciling on a slow schedule. */
  reconcilingSince: Date | null;
  /** Set while people must look at the order (an outcome no machine can settle). */
  review: OrderReview | null;
  createdAt: Date;
  updatedAt: Date;
}>;

export const ORDER_ID_PREFIX = 'po';
