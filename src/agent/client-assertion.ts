// private_key_jwt client authentication (RFC 7523 §2.2, OpenID Connect Core
// §9): a short-lived JWT the agent signs with its own key to prove to the
// authorization server that it is the client it claims to be.
import { randomBytes } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';
import { SIGNING_ALG } from '../delegation/index.js';

/** Lifetime of an assertion; the AS accepts at most 5 minutes, a minute is plenty for one request. */
export const CLIENT_ASSERTION_LIFETIME_SEC = 60;

export interface ClientAssertionSigner {
  /** A fresh assertion for one token request, made at `nowMs`. */
  (nowMs: number): Promise<string>;
}

/**
 * Signs assertions as `clientId` for `issuer`: `iss` = `sub` = the client id,
 * `aud` = the issuer identifier (as docs/internals.md fixes it), a random
 * `jti` so the AS can refuse a replay, `iat` and a short `exp`.
 */
export function createClientAssertionSigner(clientId: string, privateJwk: JWK, issuer: string): ClientAssertionSigner {
  if (typeof privateJwk.kid !== 'string' || privateJwk.kid === '') throw new Error('The agent key has no kid.');
  const kid = privateJwk.kid;
  const key = importJWK(privateJwk, SIGNING_ALG);
  key.catch(() => undefined); // a bad key is reported when an assertion is signed, not as an unhandled rejection
  return async (nowMs) => {
    const iat = Math.floor(nowMs / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: SIGNING_ALG, kid })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(issuer)
      .setJti(randomBytes(16).toString('base64url'))
      .setIssuedAt(iat)
      .setExpirationTime(iat + CLIENT_ASSERTION_LIFETIME_SEC)
      .sign(await key);
  };
}
