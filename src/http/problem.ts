import type { Response } from 'express';
import type { z } from 'zod';
import type { ErrorCode } from '../lib/error-codes.ts';
import { CodedError } from '../lib/errors.ts';

export type FieldError = Readonly<{ path: string; code: string; message: string }>;

export type Problem = Readonly<{
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  errors?: readonly FieldError[];
  [extension: string]: unknown;
}>;

/** Each stable error code with its HTTP status and title. The one place codes become statuses. */
export const PROBLEMS: Readonly<Record<ErrorCode, { status: number; title: string }>> = {
  validation_failed: { status: 400, title: 'The request is not valid' },
  malformed_json: { status: 400, title: 'The body is not valid JSON' },
  malformed_path: { status: 400, title: 'The URL path is not valid' },
  idempotency_key_missing: { status: 400, title: 'Idempotency-Key header required' },
  idempotency_key_invalid: { status: 400, title: 'Idempotency-Key header is not valid' },
  unknown_provider: { status: 400, title: 'Unknown provider' },
  payment_method_unsupported: { status: 400, title: 'Payment method not supported by the provider' },
  currency_unsupported: { status: 400, title: 'Currency not supported by the provider' },
  amount_invalid: { status: 400, title: 'Amount not accepted by the provider' },
  url_not_allowed: { status: 400, title: 'Webhook URL not allowed' },
  authentication_required: { status: 401, title: 'Authentication required' },
  invalid_api_key: { status: 401, title: 'Invalid API key' },
  operator_key_required: { status: 403, title: 'An operator key is required' },
  resource_missing: { status: 404, title: 'Not found' },
  route_not_found: { status: 404, title: 'Not found' },
  payload_too_large: { status: 413, title: 'Request body too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  order_not_under_review: { status: 409, title: 'The order is not under review' },
  order_terminal: { status: 409, title: 'The order is final' },
  order_busy: { status: 409, title: 'The order is being processed' },
  subscription_disabled: { status: 409, title: 'The webhook subscription is disabled' },
  idempotency_key_reused: { status: 422, title: 'Idempotency key reused with different parameters' },
  database_unavailable: { status: 503, title: 'Database unavailable' },
  internal_error: { status: 500, title: 'Internal server error' },
};

export function problemFor(code: ErrorCode, detail: string, extensions: Record<string, unknown> = {}): Problem {
  const known = PROBLEMS[code];
  return {
    // Relative URI reference (RFC 9457 §3.1.1): resolves against the API's own base URL.
    type: `/problems/${code}`,
    title: known.title,
    status: known.status,
    code,
    detail,
    ...extensions,
  };
}

export function sendProblem(res: Response, problem: Problem): void {
  res.status(problem.status).type('application/problem+json').send(JSON.stringify(problem));
}

/** A coded error raised in the domain or the HTTP layer, as a problem. */
export function problemFromCodedError(error: CodedError): Problem {
  return problemFor(error.code, error.message, error.details ? { ...error.details } : {});
}

export class HttpError extends CodedError {}

export function validationProblem(error: z.ZodError, where: 'body' | 'query'): Problem {
  const errors: FieldError[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        errors.push({ path: joinPath([...issue.path, key]), code: 'unknown_field', message: 'is not a known field' });
      }
    } else {
      errors.push({ path: joinPath(issue.path), code: issue.code, message: issue.message });
    }
  }
  const first = errors[0];
  const detail = first
    ? `${first.path === '' ? `The ${where}` : first.path} ${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`
    : `The ${where} is not valid`;
  return problemFor('validation_failed', detail, { errors });
}

function joinPath(path: readonly PropertyKey[]): string {
  return path.map((part) => String(part)).join('.');
}
