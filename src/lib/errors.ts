import type { ErrorCode } from './error-codes.ts';

/**
 * The base of every coded error. A code is stable and documented; it says what went wrong in terms
 * a client can act on. Errors carry no HTTP status: http/problem.ts maps codes to statuses.
 */
export class CodedError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options?.details;
  }
}
