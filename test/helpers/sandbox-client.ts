import type { LedgerEntry, RequestRecord } from '../../sandbox/sandbox.ts';

/** The provider sandbox's admin API, over real HTTP (see sandbox/). */
export class SandboxClient {
  readonly url: string;

  constructor(url: string) {
    this.url = url;
  }

  async switches(patch: Record<string, unknown>): Promise<void> {
    const res = await fetch(`${this.url}/__admin/switches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(patch),
    });
    if (!res.ok) throw new Error(`sandbox switches: ${res.status} ${await res.text()}`);
  }

  /** The outcomes of a payment's next provider requests, by a key they carry (sandbox/scripts.ts). */
  async script(key: string, outcomes: readonly string[]): Promise<void> {
    const res = await fetch(`${this.url}/__admin/scripts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key, outcomes }),
    });
    if (!res.ok) throw new Error(`sandbox script: ${res.status} ${await res.text()}`);
  }

  async reset(): Promise<void> {
    const res = await fetch(`${this.url}/__admin/reset`, { method: 'POST' });
    if (!res.ok) throw new Error(`sandbox reset: ${res.status}`);
  }

  async ledger(): Promise<LedgerEntry[]> {
    return ((await (await fetch(`${this.url}/__admin/ledger`)).json()) as { entries: LedgerEntry[] }).entries;
  }

  async requests(): Promise<RequestRecord[]> {
    return ((await (await fetch(`${this.url}/__admin/requests`)).json()) as { requests: RequestRecord[] }).requests;
  }

  /** Every M-Pesa callback delivery the sandbox made. */
  async callbackDeliveries(): Promise<Array<{ at: string; status: number | null }>> {
    return (await this.ledger()).flatMap((e) => e.callbacks ?? []);
  }

  /** Ledger entries for one order (M-Pesa entries carry the order id's last 12 characters). */
  async chargesFor(orderId: string): Promise<LedgerEntry[]> {
    return (await this.ledger()).filter((e) => e.orderId === orderId || e.orderId === orderId.slice(-12));
  }
}
