import { createHash, randomBytes } from 'node:crypto';

const KEY_PREFIX = 'sk_';
/** 32 random bytes, base64url: 43 characters. */
const KEY_PATTERN = /^sk_[A-Za-z0-9_-]{43}$/;

export type NewApiKey = Readonly<{ key: string; hash: Buffer; prefix: string }>;

/** A new secret key. Only its hash and a short prefix (to tell keys apart in lists) are stored. */
export function newApiKey(): NewApiKey {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, hash: hashApiKey(key), prefix: key.slice(0, 11) };
}

export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

export function looksLikeApiKey(value: string): boolean {
  return KEY_PATTERN.test(value);
}
