// Issuing and checking delegate's access tokens: RFC 9068 JWTs (typ at+jwt,
// ES256) with the delegation claims of src/delegation/tokens.ts. The AS checks
// its own tokens here when they come back as subject tokens or for revocation.
import { sign } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify, errors as joseErrors } from 'jose';
import { ACCESS_TOKEN_TYP, SIGNING_ALG, nonStringClaim, type AccessTokenClaims, type ActorClaim, type AuthorizationDetail } from '../delegation/index.js';
import { randomId } from './crypto.js';
import type { KeyRing } from './keys.js';

export interface AccessTokenInput {
  sub: string;
  aud: string;
  clientId: string;
  scope: string;
  grantId: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
  act?: ActorClaim;
  mayAct?: string;
  authorizationDetails?: AuthorizationDetail[];
}

export interface SignedAccessToken {
  token: string;
  claims: AccessTokenClaims;
}

export async function signAccessToken(issuer: string, keys: KeyRing, input: AccessTokenInput): Promise<SignedAccessToken> {
  const claims: AccessTokenClaims = {
    iss: issuer,
    sub: input.sub,
    aud: input.aud,
    client_id: input.clientId,
    scope: input.scope,
    exp: input.exp,
    iat: input.iat,
    jti: randomId('at'),
    grant_id: input.grantId,
    ...(input.act ? { act: input.act } : {}),
    ...(input.mayAct ? { may_act: { sub: input.mayAct } } : {}),
    ...(input.authorizationDetails && input.authorizationDetails.length > 0 ? { authorization_details: input.authorizationDetails } : {}),
  };
  const { kid, keyObject } = await keys.current();
  // RFC 7515 §7.1 compact serialization, as jose's SignJWT writes it, signed by node:crypto on this thread: ECDSA
  // P-256 with SHA-256, the signature as R || S (RFC 7518 §3.4). Through WebCrypto (jose) the same signature cost
  // about twice the CPU, most of it handing the job to libuv's thread pool and back (measured: bench/token-refresh).
  const signingInput = `${base64url(JSON.stringify({ alg: SIGNING_ALG, typ: ACCESS_TOKEN_TYP, kid }))}.${base64url(JSON.stringify(claims))}`;
  const signature = sign('sha256', Buffer.from(signingInput, 'ascii'), { key: keyObject, dsaEncoding: 'ieee-p1363' });
  return { token: `${signingInput}.${signature.toString('base64url')}`, claims };
}

const base64url = (json: string) => Buffer.from(json, 'utf8').toString('base64url');

export type OwnTokenCheck = { ok: true; claims: AccessTokenClaims } | { ok: false; reason: string };

/**
 * Verifies a token this server issued: signature with one of its own keys,
 * ES256 only, typ at+jwt, iss, exp. Audience is left to the caller.
 */
export async function verifyOwnAccessToken(issuer: string, keys: KeyRing, token: string, nowSec: number): Promise<OwnTokenCheck> {
  let kid: string | undefined;
  try {
    kid = decodeProtectedHeader(token).kid;
  } catch {
    return { ok: false, reason: 'the token is not a JWT' };
  }
  if (typeof kid !== 'string') return { ok: false, reason: 'the token names no signing key' };
  const key = await keys.publicKey(kid);
  if (!key) return { ok: false, reason: 'the token was not signed by this server' };
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: [SIGNING_ALG],
      typ: ACCESS_TOKEN_TYP,
      issuer,
      currentDate: new Date(nowSec * 1000),
      requiredClaims: ['sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'scope', 'grant_id'],
    });
    // Present is not enough: as the resource servers check (src/resource/bearer.ts).
    const notString = nonStringClaim(payload);
    if (notString !== undefined) return { ok: false, reason: `the token's ${notString} claim is not a string` };
    return { ok: true, claims: payload as unknown as AccessTokenClaims };
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) return { ok: false, reason: 'the token has expired' };
    return { ok: false, reason: 'the token is invalid' };
  }
}
