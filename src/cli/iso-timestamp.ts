/**
 * An ISO 8601 date (`2025-01-31`, midnight UTC) or date and time with its zone
 * (`2025-01-31T12:00:00Z`, `2025-01-31T14:00:00.123456+02:00`), to PostgreSQL's microsecond. A
 * time without a zone is refused: it would mean the operator's local time to some readers and the
 * database's to others.
 */
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(?:Z|([+-])(\d{2}):(\d{2})))?$/;

export type Instant = Readonly<{
  /** What PostgreSQL is given: the text as written (a date alone gets T00:00:00Z). */
  text: string;
  /** Microseconds since the epoch, to compare two instants (exact: below 2^53 until year 2255). */
  micros: number;
}>;

/**
 * The instant, or null when the text is not one of the shapes above or not a real calendar
 * instant (2025-02-30, 24:00, an offset beyond ±23:59).
 */
export function parseIsoTimestamp(text: string): Instant | null {
  const m = ISO.exec(text);
  if (!m) return null;
  const field = (i: number) => Number(m[i] ?? 0);
  const [year, month, day, hour, minute, second] = [field(1), field(2), field(3), field(4), field(5), field(6)];
  const fraction = Number((m[7] ?? '').padEnd(6, '0'));
  const [offsetHours, offsetMinutes] = [Number(m[9] ?? 0), Number(m[10] ?? 0)];
  if (hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) return null;
  const midnight = Date.UTC(year, month - 1, day);
  const date = new Date(midnight);
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  const offsetMs = (m[8] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  const ms = midnight + ((hour * 60 + minute) * 60 + second) * 1000 - offsetMs;
  return { text: m[4] === undefined ? `${text}T00:00:00Z` : text, micros: ms * 1000 + fraction };
}
