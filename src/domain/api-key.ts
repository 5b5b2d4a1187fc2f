import { randomToken, sha256 } from '../lib/secrets.ts';

const KEY_PREFIX = 'sk_';
/** 32 random bytes, base64url: 43 characters. */
const KEY_PATTERN = /^sk_[A-Za-z0-9_-]{43}$/;

export type NewApiKey = Readonly<{ key: string; hash: Buffer; prefix: string }>;

/** A new secret key. Only its hash and a short prefix (to tell keys apart in lists) are stored. */
export function newApiKey(): NewApiKey {
  const key = KEY_PREFIX + randomToken(32);
  return { key, hash: hashApiKey(key), prefix: key.slice(0, 11) };
}

export function hashApiKey(key: string): Buffer {
  return sha256(key);
}

export function looksLikeApiKey(value: string): boolean {
  return KEY_PATTERN.test(value);
}

const OPERATOR_KEY_PREFIX = 'op_';
const OPERATOR_KEY_PATTERN = /^op_[A-Za-z0-9_-]{43}$/;

/**
 * A new operator key: for people on call, not merchants. A different prefix (op_) so that neither
 * kind of key can be mistaken for the other, in a header or in a leaked log.
 */
export function newOperatorKey(): NewApiKey {
  const key = OPERATOR_KEY_PREFIX + randomToken(32);
  return { key, hash: hashApiKey(key), prefix: key.slice(0, 11) };
}

export function looksLikeOperatorKey(value: string): boolean {
  return OPERATOR_KEY_PATTERN.test(value);
}
