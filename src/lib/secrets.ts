import { createHash, randomBytes } from 'node:crypto';

/** `bytes` random bytes, base64url (32 bytes: 43 characters). */
export function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
