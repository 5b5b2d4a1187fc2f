export type LedgerStatus = 'charged' | 'declined' | 'pending';

/** One delivery attempt of an M-Pesa STK callback: the HTTP status it got, or why it failed. */
export type CallbackDelivery = { at: string; status: number | null; error: string | null };

/** A payment the sandbox took (or refused): what the tests check money against. */
export type LedgerEntry = {
  provider: 'stripe' | 'mpesa';
  /** Stripe: the PaymentIntent id (pi_...); M-Pesa: the CheckoutRequestID (ws_CO_...). */
  id: string;
  /** Stripe: metadata[order_id]; M-Pesa: AccountReference. */
  orderId: string | null;
  /** Stripe: minor units; M-Pesa: whole shillings, as Daraja's Amount. */
  amount: number;
  /** Stripe: lower case (usd); M-Pesa: KES. */
  currency: string;
  status: LedgerStatus;
  idempotencyKey: string | null;
  createdAt: string;
  settledAt: string | null;
  /** M-Pesa: the ResultCode ('0', '1032', ...); Stripe: the decline_code of a decline. */
  resultCode?: string;
  /** M-Pesa: every callback delivery attempt, in order. */
  callbacks?: CallbackDelivery[];
};

export type LedgerFilter = Readonly<{ orderId?: string; id?: string; provider?: string }>;

export class Ledger {
  #entries: LedgerEntry[] = [];

  add(entry: LedgerEntry): void {
    this.#entries.push(entry);
  }

  /** Settles a pending entry; does nothing if it is gone (the sandbox was reset). */
  settle(id: string, status: 'charged' | 'declined', resultCode: string): void {
    const entry = this.#find(id);
    if (!entry) return;
    entry.status = status;
    entry.resultCode = resultCode;
    entry.settledAt = new Date().toISOString();
  }

  recordCallback(id: string, delivery: CallbackDelivery): void {
    const entry = this.#find(id);
    if (entry) entry.callbacks = [...(entry.callbacks ?? []), delivery];
  }

  /** Copies of the entries that match every given field, oldest first. */
  list(filter: LedgerFilter = {}): LedgerEntry[] {
    return this.#entries
      .filter(
        (entry) =>
          (filter.orderId === undefined || entry.orderId === filter.orderId) &&
          (filter.id === undefined || entry.id === filter.id) &&
          (filter.provider === undefined || entry.provider === filter.provider),
      )
      .map((entry) => structuredClone(entry));
  }

  clear(): void {
    this.#entries = [];
  }

  #find(id: string): LedgerEntry | undefined {
    return this.#entries.find((entry) => entry.id === id);
  }
}
