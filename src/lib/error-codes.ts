/**
 * Every stable error code a client can receive (problem+json `code`). http/problem.ts maps each to
 * its HTTP status and title: the map is typed by this list, so a code without a status, or a
 * coded error with a code not listed here, does not compile.
 */
export const ERROR_CODES = [
  'validation_failed',
  'malformed_json',
  'malformed_path',
  'idempotency_key_missing',
  'idempotency_key_invalid',
  'unknown_provider',
  'payment_method_unsupported',
  'currency_unsupported',
  'amount_invalid',
  'url_not_allowed',
  'authentication_required',
  'invalid_api_key',
  'operator_key_required',
  'resource_missing',
  'route_not_found',
  'payload_too_large',
  'unsupported_media_type',
  'order_not_under_review',
  'order_terminal',
  'order_busy',
  'subscription_disabled',
  'idempotency_key_reused',
  'database_unavailable',
  'internal_error',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];
