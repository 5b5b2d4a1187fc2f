import type { Provider, RequestKind } from './http.ts';
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
  /** The status answered; null while unanswered, and for ever after a timeout or lost fault. */
  status: number | null;
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
