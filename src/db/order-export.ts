// Bulk export of an order's three tables (`npm run ops -- export`): PostgreSQL's COPY ... TO STDOUT
// streamed to a writable, row by row, never held in memory.
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

export const EXPORT_KINDS = ['orders', 'transitions', 'attempts'] as const;
export type ExportKind = (typeof EXPORT_KINDS)[number];
export const EXPORT_FORMATS = ['csv', 'ndjson'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export type ExportRequest = Readonly<{
  kind: ExportKind;
  format: ExportFormat;
  /** Rows created at or after this instant (an ISO 8601 timestamp with a zone, checked by the caller). */
  from: string;
  /** ...and before this one. */
  to: string;
}>;

/**
 * What each export selects, and the column that says when a row was created (a provider call has
 * no created_at: it is created when it starts). Columns are listed, never `*`, so that a secret
 * never leaks out through a column added later: left out are the order's payment_method (card
 * tokens, phone numbers: only its type is exported) and callback_token (the secret of the M-Pesa
 * callback URL), and the processing bookkeeping (processing_generation).
 */
const SOURCES: Readonly<Record<ExportKind, { table: string; createdAt: string; columns: string }>> = {
  orders: {
    table: 'payment_orders',
    createdAt: 'created_at',
    columns: `id, merchant_id, status, amount, currency, provider, payment_method ->> 'type' as payment_method_type,
      reference, description, metadata, idempotency_key, provider_reference, failure_code, failure_message,
      review_reason, review_since, reconciling_since, next_attempt_at, created_at, updated_at`,
  },
  transitions: {
    table: 'payment_order_transitions',
    createdAt: 'created_at',
    columns: 'id, order_id, from_status, to_status, reason, created_at',
  },
  attempts: {
    table: 'provider_attempts',
    createdAt: 'started_at',
    columns: `id, order_id, provider, attempt_number, kind, idempotency_key, started_at, ended_at, outcome,
      http_status, latency_ms, error, provider_reference, decline_code, gate_grants`,
  },
};

/**
 * The COPY statement of an export. COPY takes no bind parameters, so the two instants are
 * literals: escaped as literals (and, before that, checked to be ISO timestamps by the caller).
 * - csv: a header row; NULL is an empty field, an empty string a quoted empty field "".
 * - ndjson: one row_to_json object a line. COPY's text format would double every backslash of
 *   the JSON (and csv quoting would wrap each line in quotes), so the lines go out in csv format
 *   with a quote and a delimiter that JSON text never contains raw (to_json writes every control
 *   character as an escape): no field is ever quoted or escaped, each line is exactly the JSON.
 */
export function exportStatement(request: ExportRequest): string {
  const source = SOURCES[request.kind];
  const range = `${source.createdAt} >= ${pg.escapeLiteral(request.from)}::timestamptz
      and ${source.createdAt} < ${pg.escapeLiteral(request.to)}::timestamptz`;
  const rows = `select ${source.columns} from ${source.table} where ${range}`;
  const order = `order by ${source.createdAt}, id`;
  return request.format === 'csv'
    ? `copy (${rows} ${order}) to stdout with (format csv, header true, encoding 'UTF8')`
    : `copy (select row_to_json(r)::text from (${rows}) r order by r.${source.createdAt}, r.id)
       to stdout with (format csv, quote e'\\x01', delimiter e'\\x02', encoding 'UTF8')`;
}

/**
 * Streams an export to `out` (stdout), at the pace `out` takes it: COPY's rows come as the socket
 * is read, and the pipeline stops reading while `out` is full. One read-only transaction, so the
 * session's time zone and date style are set for it alone: timestamps come out in UTC, ISO 8601,
 * whatever the server's defaults. Returns the number of rows. Measured through the CLI: peak RSS
 * 202 MB for 150 000 orders (175 MB of csv), 212 MB for 450 000 (525 MB), against 127 MB for none.
 */
export async function copyExport(pool: pg.Pool, request: ExportRequest, out: Writable): Promise<number> {
  const client = await pool.connect();
  let broken: unknown;
  try {
    await client.query('begin transaction read only');
    await client.query("set local timezone = 'UTC'");
    await client.query("set local datestyle = 'ISO, YMD'");
    const copy = client.query(copyTo(exportStatement(request)));
    await pipeline(copy, out, { end: false });
    await client.query('commit');
    return copy.rowCount;
  } catch (error) {
    // A COPY cut short (the reader went away) leaves the connection mid-protocol: not reusable.
    broken = error;
    throw error;
  } finally {
    client.release(broken instanceof Error ? broken : undefined);
  }
}
