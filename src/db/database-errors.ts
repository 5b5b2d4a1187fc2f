/**
 * Which errors mean "the database cannot be reached right now" (an outage, a restart, a failover,
 * a full server) rather than "this statement is wrong". The HTTP layer answers the first kind
 * 503 database_unavailable with Retry-After, and start-up waits them out; everything else stays a
 * bug (500) or fails the start at once.
 *
 * The shapes, as seen by experiment against a PostgreSQL that was stopped, killed and restarted
 * under load (pg 8.23, pg-pool 3.14, kysely 0.29, pg-boss 12 — test/database-outage.test.ts):
 * - down: node's `ECONNREFUSED` from connect (an `AggregateError` with the same code when a host
 *   name resolves to several addresses); killed mid-session: `ECONNRESET`, pg's
 *   "Connection terminated unexpectedly", or 57P01 from a backend that saw its postmaster die;
 * - `pg_ctl stop -m fast`: sessions end with 57P01 (admin_shutdown); new ones meet 57P03
 *   (cannot_connect_now: "shutting down", then "starting up", "not yet accepting connections");
 * - a kysely transaction whose connection died: its ROLLBACK fails with pg's "Client has
 *   encountered a connection error and is not queryable", and that is the error kysely throws;
 * - pg-boss passes the driver's errors through (`send(..., { db })` runs on our transaction), or
 *   wraps them with `cause`.
 * Authentication failures (28xxx) and a missing database (3D000) are left out on purpose: they
 * are configuration faults that waiting does not fix, and a start-up should fail on them at once.
 */

/** Node socket and DNS errors: nothing answered, or the connection broke. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** SQLSTATEs outside class 08 (connection_exception, taken whole) that mean the same. */
const SQLSTATES = new Set([
  '57P01', // admin_shutdown: a fast shutdown, pg_terminate_backend, or a backend whose postmaster died
  '57P02', // crash_shutdown: another backend crashed and the server is resetting
  '57P03', // cannot_connect_now: starting up, shutting down, in recovery
  '57P05', // idle_session_timeout: the server closed an idle session
  // too_many_connections: the server refuses new sessions until others end. Overload, not a
  // fault of the request, and clears on its own: 503 and "retry later" is the right answer.
  '53300',
]);

/**
 * Errors pg and pg-pool raise without a code (their messages, pg 8.23 / pg-pool 3.14), matched at
 * the start: pg-boss's workers append " (Queue: ..., Worker: ...)" to the errors they report.
 */
const DRIVER_MESSAGES = [
  // "Connection terminated unexpectedly": the server closed the socket under a session; plain
  // "Connection terminated": the same while the client was ending; "... due to connection
  // timeout": pg-pool's connect took longer than connectionTimeoutMillis.
  'Connection terminated',
  'timeout exceeded when trying to connect', // pg-pool: no free connection within connectionTimeoutMillis
  'Client has encountered a connection error and is not queryable', // a query on a client whose connection died
] as const;

/** How deep to follow `cause` and `errors`: real chains are 1-3 deep; this only stops a cycle. */
const MAX_DEPTH = 8;

/** True when the error, or any error in its `cause` chain or AggregateError list, is connection-level. */
export function isDatabaseUnavailable(error: unknown): boolean {
  return unavailableCode(error) !== null;
}

/**
 * The code that made it connection-level (`ECONNREFUSED`, `57P03`, or the driver's message), for
 * logs; null when it is not.
 */
export function unavailableCode(error: unknown, depth = 0): string | null {
  if (depth > MAX_DEPTH || typeof error !== 'object' || error === null) return null;
  const { code, message, cause, errors } = error as {
    code?: unknown;
    message?: unknown;
    cause?: unknown;
    errors?: unknown;
  };
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) {
    return code;
  }
  if (typeof message === 'string') {
    const known = DRIVER_MESSAGES.find((start) => message.startsWith(start));
    if (known) return known;
  }
  const fromCause = unavailableCode(cause, depth + 1);
  if (fromCause !== null) return fromCause;
  if (Array.isArray(errors)) {
    for (const inner of errors) {
      const fromInner = unavailableCode(inner, depth + 1);
      if (fromInner !== null) return fromInner;
    }
  }
  return null;
}
