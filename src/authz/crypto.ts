// Random identifiers, secret hashing and constant-time comparison for the
// authorization server. Secrets are 256 random bits; only their SHA-256
// hashes are stored.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A random URL-safe secret with `bytes` bytes of entropy (32 by default: 256 bits). */
export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** A random identifier with a readable prefix, e.g. `grt_…` for a grant. */
export function randomId(prefix: string, bytes = 16): string {
  return `${prefix}_${randomBytes(bytes).toString('base64url')}`;
}

/** SHA-256 of a secret, base64url: the only form in which secrets are stored. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

/** Compares two strings in time independent of where they differ (hashing first evens out the lengths). */
export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a, 'utf8').digest();
  const hb = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}
