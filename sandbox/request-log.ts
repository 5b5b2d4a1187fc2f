import type { ConnectionInfo } from './connections.ts';
import type { Provider, RequestKind } from './http.ts';
import type { ScriptedOutcome } from './scripts.ts';
import type { Fault } from './switches.ts';

/** A provider request as the sandbox received it: tests check call rates against `atMs`. */
export type RequestRecord = {
  /** When the request arrived (ISO 8601 with milliseconds). */
  at: string;
  atMs: number;
  method: string;
  /** The path, without the query string. */
  path: string;
  provider: Provider;
  kind: RequestKind;
  fault: Fault | null;
  /** The outcome a script gave it (scripts.ts), if any. */
  scripted?: ScriptedOutcome | null;
  /** The status answered; null while unanswered, and for ever after a timeout or lost fault. */
  status: number | null;
  /** The connection it came on (a first request on a new connection is a cold one). */
  connection: ConnectionInfo;
  /** Its Idempotency-Key header (Stripe), to pair an arrival with the call that sent it; else null. */
  idempotencyKey: string | null;
};

export class RequestLog {
  #records: RequestRecord[] = [];

  /** Appends a record and returns it, for the sandbox to fill in the fault and status. */
  add(record: RequestRecord): RequestRecord {
    this.#records.push(record);
    return record;
  }

  list(): RequestRecord[] {
    return this.#records.map((record) => ({ ...record }));
  }

  clear(): void {
    this.#records = [];
  }
}
