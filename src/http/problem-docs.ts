import type { ErrorCode } from '../lib/error-codes.ts';

/**
 * What each problem code means and what the client should do: the page a problem's `type`
 * (/problems/{code}) points to. Typed by the code list, so a new code without its page does not
 * compile.
 */
export const PROBLEM_DOCS: Readonly<Record<ErrorCode, { meaning: string; action: string; retry: boolean }>> = {
  validation_failed: {
    meaning:
      'A field of the body or the query string is missing, has the wrong type, is out of bounds, or is not a known field. `errors` lists each field: its dotted `path`, a `code` and a `message`.',
    action: 'Fix the fields listed in `errors` and send the request again. Nothing was stored.',
    retry: false,
  },
  malformed_json: {
    meaning: 'The body is not valid JSON (or could not be read, e.g. a wrong Content-Encoding).',
    action: 'Send a JSON document with `Content-Type: application/json`. Nothing was stored.',
    retry: false,
  },
  malformed_path: {
    meaning: 'The URL path has invalid percent-encoding.',
    action: 'Percent-encode the path correctly.',
    retry: false,
  },
  idempotency_key_missing: {
    meaning: 'POST /payment-orders needs an `Idempotency-Key` header, so that a retry can never create a second order.',
    action:
      'Choose a key per order (a UUID, or your own order id), send it, and send the same key on every retry of that order.',
    retry: false,
  },
  idempotency_key_invalid: {
    meaning: 'The `Idempotency-Key` header must be 1 to 255 printable ASCII characters.',
    action: 'Use a shorter key of printable ASCII (a UUID works).',
    retry: false,
  },
  unknown_provider: {
    meaning: '`provider` names a provider this gateway does not route to. `providers` lists the ones it does.',
    action: 'Leave `provider` out (the gateway routes by payment method and currency) or use one of `providers`.',
    retry: false,
  },
  payment_method_unsupported: {
    meaning: 'The provider does not take this kind of payment method (a card for M-Pesa, a phone for Stripe).',
    action: 'Use a payment method the provider takes, or another provider.',
    retry: false,
  },
  currency_unsupported: {
    meaning: 'The provider does not take this currency (M-Pesa takes KES only).',
    action: 'Use a currency the provider supports, or another provider.',
    retry: false,
  },
  amount_invalid: {
    meaning:
      'The amount cannot be charged by the provider in this currency: M-Pesa charges whole shillings (a multiple of 100 KES minor units); Stripe charges some currencies only in steps (e.g. whole units) and each up to a maximum. `detail` says which rule.',
    action: 'Send an amount in minor units that the provider accepts.',
    retry: false,
  },
  url_not_allowed: {
    meaning:
      'The webhook URL is refused: it must be https (unless configured otherwise) and must not point at loopback, private, link-local or metadata addresses.',
    action: 'Use a public https URL for your endpoint.',
    retry: false,
  },
  authentication_required: {
    meaning: 'No key was sent.',
    action: 'Send `Authorization: Bearer sk_...` (an operator route: `Bearer op_...`).',
    retry: false,
  },
  invalid_api_key: {
    meaning: 'The key is not valid, or has been revoked.',
    action: 'Check the key; create a new one with `npm run keys -- create <merchant>`.',
    retry: false,
  },
  operator_key_required: {
    meaning: "This route is for operators: a merchant's key is valid, but not here.",
    action: 'Use an operator key (`npm run keys -- create-operator <name>`).',
    retry: false,
  },
  resource_missing: {
    meaning: 'No such object, or it belongs to another merchant (the answer is the same, so ids reveal nothing).',
    action: 'Check the id.',
    retry: false,
  },
  route_not_found: {
    meaning: 'No route has this method and path.',
    action: 'See the API reference at /docs.',
    retry: false,
  },
  payload_too_large: {
    meaning: 'The body is larger than 64 KiB.',
    action: 'Send a smaller body (metadata is at most 50 keys of 500 characters).',
    retry: false,
  },
  unsupported_media_type: {
    meaning: 'The body is not JSON.',
    action: 'Send `Content-Type: application/json`.',
    retry: false,
  },
  order_not_under_review: {
    meaning: 'Only an order under review can be resolved by an operator.',
    action: 'Check the order: GET /payment-orders/{id} shows its `review`.',
    retry: false,
  },
  order_terminal: {
    meaning: 'The order is already COMPLETED or FAILED; a final order never changes.',
    action: 'Nothing to do: read the order for its outcome.',
    retry: false,
  },
  order_busy: {
    meaning: 'A worker is processing the order right now.',
    action: 'Retry in a few seconds.',
    retry: true,
  },
  subscription_disabled: {
    meaning:
      'The webhook subscription is switched off (by the merchant, by a 410 answer, or after failing every delivery attempt for WEBHOOK_DISABLE_AFTER_DAYS): replayed deliveries would only be cancelled again.',
    action: 'Fix the endpoint, turn the subscription back on (PATCH it with "enabled": true), then replay.',
    retry: false,
  },
  idempotency_key_reused: {
    meaning:
      'This Idempotency-Key was used with a different body (or another operation). The first request stands; this one was not applied.',
    action: 'Use a new key for a new order; resend the original body to get the original answer.',
    retry: false,
  },
  database_unavailable: {
    meaning:
      'The database is unreachable for now. Nothing was lost: an order is only accepted once it is stored, and a request that got this answer was not.',
    action: 'Retry after `Retry-After` seconds, with the same Idempotency-Key.',
    retry: true,
  },
  internal_error: {
    meaning: 'Something went wrong on our side; it has been logged.',
    action: 'Retry with the same Idempotency-Key (it is safe); if it persists, tell the operators.',
    retry: true,
  },
};
