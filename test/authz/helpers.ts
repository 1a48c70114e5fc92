// Shared steps for the authorization server's tests: a complete user flow
// from registration to tokens, and a private_key_jwt assertion for the agent.
import { SignJWT, decodeJwt, importJWK, type CryptoKey, type JWK } from 'jose';
import { expect } from 'vitest';
import type { TestAuthz } from '../support/authz.js';
import { postForm, registerPublicClient } from '../support/oauth-flow.js';
import { ownerApproves, redeemCode } from '../support/owner-flow.js';

export const REDIRECT = 'http://127.0.0.1:43123/callback';

export interface UserTokens {
  clientId: string;
  accessToken: string;
  refreshToken: string;
  body: Record<string, unknown>;
}

/** Registration, owner sign-in, consent, code: returns the code and what is needed to redeem it. */
export async function obtainCode(authz: TestAuthz, clientId?: string) {
  const approved = await ownerApproves(authz, { clientId: clientId ?? (await registerPublicClient(authz.issuer)), redirectUri: REDIRECT, state: 'st-123' });
  expect(approved.params.get('state')).toBe('st-123');
  expect(approved.params.get('iss')).toBe(authz.issuer);
  return { clientId: approved.clientId, code: approved.code, verifier: approved.verifier, browser: approved.browser };
}

export async function redeem(authz: TestAuthz, code: { clientId: string; code: string; verifier: string }, extra: Record<string, string | string[]> = {}) {
  return redeemCode(authz, code, extra, REDIRECT);
}

export async function obtainTokens(authz: TestAuthz): Promise<UserTokens> {
  const code = await obtainCode(authz);
  const res = await redeem(authz, code);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { clientId: code.clientId, accessToken: String(res.body.access_token), refreshToken: String(res.body.refresh_token), body: res.body };
}

export async function clientAssertion(
  jwk: JWK,
  clientId: string,
  audience: string,
  overrides: { jti?: string; expSec?: number } = {},
): Promise<string> {
  const key = (await importJWK(jwk, 'ES256')) as CryptoKey;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(audience)
    .setJti(overrides.jti ?? crypto.randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + (overrides.expSec ?? 60))
    .sign(key);
}

export async function exchange(authz: TestAuthz, subjectToken: string, params: Record<string, string | string[] | undefined> = {}, as = authz.agent) {
  return postForm(`${authz.issuer}/token`, {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: subjectToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    resource: authz.calendarUrl,
    scope: 'freebusy:read',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion(as.privateJwk, as.clientId, authz.issuer),
    ...params,
  });
}

/** A user's tokens and the calendar token the agent exchanged from them (checked to be issued). */
export async function exchangedFromNewGrant(authz: TestAuthz): Promise<{ tokens: UserTokens; grantId: string; calendarToken: string }> {
  const tokens = await obtainTokens(authz);
  const exchanged = await exchange(authz, tokens.accessToken);
  expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
  return { tokens, grantId: String(decodeJwt(tokens.accessToken).grant_id), calendarToken: String(exchanged.body.access_token) };
}

/** RFC 7009 at /revoke as the agent (private_key_jwt), giving up `token`. */
export async function revokeAsAgent(authz: TestAuthz, token: string) {
  return postForm(`${authz.issuer}/revoke`, {
    token,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion(authz.agent.privateJwk, authz.agent.clientId, authz.issuer),
  });
}

export { decodeJwt };
