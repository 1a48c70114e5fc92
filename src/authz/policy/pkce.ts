// PKCE (RFC 7636) as OAuth 2.1 requires it: S256 only, never plain; a
// verifier of 43–128 unreserved characters whose SHA-256 matches the challenge.
import { createHash } from 'node:crypto';
import { constantTimeEqual } from '../crypto.js';

export type PkceCheck = { ok: true } | { ok: false; reason: string };

const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
/** A base64url SHA-256 digest: 43 characters, no padding. */
const S256_CHALLENGE = /^[A-Za-z0-9\-_]{43}$/;

/** Checks the PKCE parameters of an authorization request. */
export function checkChallenge(challenge: string | undefined, method: string | undefined): PkceCheck {
  if (challenge === undefined) return { ok: false, reason: 'code_challenge is required (PKCE)' };
  // RFC 7636 §4.3: an absent method means "plain", which is refused like an explicit one.
  if (method !== 'S256') return { ok: false, reason: 'code_challenge_method must be S256' };
  if (!S256_CHALLENGE.test(challenge)) return { ok: false, reason: 'code_challenge is not a base64url SHA-256 digest' };
  return { ok: true };
}

/** Checks a token request's code_verifier against the stored S256 challenge. */
export function checkVerifier(verifier: string | undefined, challenge: string): PkceCheck {
  if (verifier === undefined) return { ok: false, reason: 'code_verifier is required' };
  if (!VERIFIER.test(verifier)) return { ok: false, reason: 'code_verifier is malformed' };
  const computed = createHash('sha256').update(verifier, 'ascii').digest('base64url');
  return constantTimeEqual(computed, challenge) ? { ok: true } : { ok: false, reason: 'code_verifier does not match the code_challenge' };
}
