// What CalendarAgent's 401 for an expired token asks a client to authorize
// again for. Found in review (s31mcp), with the MCP SDK's client against
// `delegate serve`: after a step-up to busy:read, the token's expiry was
// answered with scope="slots:find" alone, the SDK authorized for that, and
// list_busy's 403 asked for busy:read again: two consents at every expiry. Now
// a token that is good but for its exp (signed by the AS's key, with the typ,
// iss, claims and audience a valid token has, not revoked) gets the 403's
// challengeScope: what it held, with the initial scope. Any other token keeps
// the initial scope alone: each case below differs from the good expired token
// in one property, signed with the AS's real key (read from the store) unless
// the property is the key, so that the property is the only reason.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, base64url, decodeJwt, importJWK, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { buildAgentServer } from '../../src/agent/server.js';
import { initializeBody, mcpHeaders } from '../agent/http.js';
import { es256Key, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postForm } from '../support/oauth-flow.js';
import { atAgent, claims, issuerSigningKey, refusedSoon, startStack, stateChangedBy, userTokens, type Stack, type UserTokens } from './stack.js';

let stack: Stack;
let issuerKey: { kid: string; privateJwk: JWK };
let attacker: { privateJwk: JWK; publicJwk: JWK };
let otherAs: TestAuthz;
let otherAsKey: { kid: string; privateJwk: JWK };
/** A delegation of both of the agent's scopes (a step-up done), and its access token's claims. */
let both: UserTokens;
let bothClaims: JWTPayload;

beforeAll(async () => {
  stack = await startStack();
  issuerKey = await issuerSigningKey(stack);
  attacker = await es256Key();
  both = await userTokens(stack, { scope: 'slots:find busy:read' });
  bothClaims = decodeJwt(both.accessToken);
  expect(String(bothClaims.scope).split(' ').sort()).toEqual(['busy:read', 'slots:find']);
  otherAs = await startTestAuthz();
  const otherKey = (await otherAs.store.signingKeys()).find((k) => k.retiredAt === null)!;
  otherAsKey = { kid: otherKey.kid, privateJwk: otherKey.privateJwk as JWK };
});

afterAll(async () => {
  await stack?.close();
  await otherAs?.close();
});

const nowSec = () => Math.floor(Date.now() / 1000);
/** Expired two minutes ago, issued ten minutes before (an access token's life). */
const EXPIRED = () => ({ iat: nowSec() - 720, exp: nowSec() - 120 });

async function sign(payload: JWTPayload, header: Record<string, unknown>, jwk: JWK): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', ...header } as { alg: string }).sign((await importJWK(jwk, 'ES256')) as CryptoKey);
}


/** `base` expired, with `changes`, signed by the AS's key with its kid unless `header` says otherwise. */
const expiredAsSigned = (base: JWTPayload, changes: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
  sign(claims(base, { ...EXPIRED(), ...changes }), { typ: 'at+jwt', kid: issuerKey.kid, ...header }, issuerKey.privateJwk);

/** The token with one byte of its signature changed. */
function tampered(token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const bytes = base64url.decode(signature);
  bytes[10] = bytes[10]! ^ 0x01;
  return `${header}.${payload}.${base64url.encode(bytes)}`;
}

/** The `scope` a Bearer challenge names. */
function challengedScope(res: { headers: Record<string, unknown> }): string | undefined {
  return /\bscope="([^"]*)"/.exec(String(res.headers['www-authenticate']))?.[1];
}

async function expectExpiredChallenge(token: string, scope: string, description?: string): Promise<void> {
  const { result: res, changed } = await stateChangedBy(stack, () => atAgent(stack, token));
  expect(res.status, res.text).toBe(401);
  expect(String(res.headers['www-authenticate'])).toContain('error="invalid_token"');
  if (description) expect(String(res.headers['www-authenticate'])).toContain(`error_description="${description}"`);
  expect(challengedScope(res)).toBe(scope);
  expect(changed).toEqual([]);
}

describe('a 401 for an expired token at CalendarAgent', () => {
  it('accepts the good token re-signed with the AS key, unexpired (the control)', async () => {
    expect((await atAgent(stack, await sign(claims(bothClaims), { typ: 'at+jwt', kid: issuerKey.kid }, issuerKey.privateJwk))).status).toBe(200);
  });

  it('names the scopes the token held: signed by the AS, slots:find busy:read, exp in the past → scope="slots:find busy:read"', async () => {
    await expectExpiredChallenge(await expiredAsSigned(bothClaims), 'slots:find busy:read', 'The token has expired.');
  });

  it('names them in the agent’s order, and only the agent’s: busy:read alone, or with a scope of another resource, adds slots:find and drops the rest', async () => {
    await expectExpiredChallenge(await expiredAsSigned(bothClaims, { scope: 'busy:read' }), 'slots:find busy:read');
    await expectExpiredChallenge(await expiredAsSigned(bothClaims, { scope: 'freebusy:read busy:read' }), 'slots:find busy:read');
    await expectExpiredChallenge(await expiredAsSigned(bothClaims, { scope: 'slots:find' }), 'slots:find');
  });

  it('the real token, as the AS issued it, once expired: the same (the verifier at the agent given a clock past its exp)', async () => {
    // The AS's own token, unchanged: only the agent's clock moves. Built here with the stack's keys and revocation list.
    const exp = Number(bothClaims.exp) * 1000;
    const later = await buildAgentServer({
      resourceUrl: stack.agentUrl,
      issuer: stack.issuer,
      calendarUrl: stack.calendarUrl,
      clientId: stack.agent.clientId,
      privateKey: stack.agent.privateJwk,
      now: () => exp + 60_000,
    });
    try {
      // The stack's agent, whose clock is now, accepts it (the control).
      expect((await atAgent(stack, both.accessToken)).status).toBe(200);
      const res = await later.inject({ method: 'POST', url: '/mcp', headers: { host: new URL(stack.agentUrl).host, ...mcpHeaders(both.accessToken) }, payload: initializeBody });
      expect(res.statusCode, res.body).toBe(401);
      expect(res.headers['www-authenticate']).toContain('error_description="The token has expired."');
      expect(challengedScope(res)).toBe('slots:find busy:read');
    } finally {
      await later.close();
    }
  });

  // Each differs from the good expired token above in one property; jose reports most of them before exp, and the
  // rest (audience, may_act, a claim's type) are checked here of an expired token as of a token in time.
  const notTheAgents: Array<[string, () => Promise<string>]> = [
    ['its signature broken (one byte changed)', async () => tampered(await expiredAsSigned(bothClaims))],
    ['signed by another key, naming the AS’s kid', async () => sign(claims(bothClaims, EXPIRED()), { typ: 'at+jwt', kid: issuerKey.kid }, attacker.privateJwk)],
    ['signed by another authorization server’s key, with its kid', async () => sign(claims(bothClaims, EXPIRED()), { typ: 'at+jwt', kid: otherAsKey.kid }, otherAsKey.privateJwk)],
    ['signed by the AS’s key naming no kid', () => expiredAsSigned(bothClaims, {}, { kid: undefined })],
    ['for another audience (the calendar backend)', () => expiredAsSigned(bothClaims, { aud: stack.calendarUrl })],
    ['from another issuer', () => expiredAsSigned(bothClaims, { iss: 'http://127.0.0.1:1' })],
    ['typ JWT', () => expiredAsSigned(bothClaims, {}, { typ: 'JWT' })],
    ['no typ', () => expiredAsSigned(bothClaims, {}, { typ: undefined })],
    ['no grant_id', () => expiredAsSigned(bothClaims, { grant_id: undefined })],
    ['sub a number', () => expiredAsSigned(bothClaims, { sub: 5 })],
    ['nbf in the future', () => expiredAsSigned(bothClaims, { nbf: nowSec() + 600 })],
    ['handed to a sub-agent (may_act)', () => expiredAsSigned(bothClaims, { may_act: { sub: 'another-agent' } })],
  ];
  it.each(notTheAgents)('names the initial scope alone for an expired token %s: scope="slots:find"', async (_name, forge) => {
    await expectExpiredChallenge(await forge(), 'slots:find');
  });

  it('names the initial scope alone for no token, and for a token that is no JWT', async () => {
    const none = await atAgent(stack, '');
    expect(none.status).toBe(401);
    expect(challengedScope(none)).toBe('slots:find');
    await expectExpiredChallenge('not.a.jwt', 'slots:find');
  });
});

describe('a 401 for an expired token of a revoked delegation, or a revoked token', () => {
  it('names the initial scope alone once the grant is revoked (before it: both, the control)', async () => {
    const user = await userTokens(stack, { scope: 'slots:find busy:read' });
    const base = decodeJwt(user.accessToken);
    await expectExpiredChallenge(await expiredAsSigned(base), 'slots:find busy:read');
    expect(await stack.store.revokeGrant(user.grantId, Date.now(), 'test')).toBe(true);
    // The revocation list reaches the agent by long poll.
    expect((await refusedSoon(() => atAgent(stack, user.accessToken))).status).toBe(401);
    await expectExpiredChallenge(await expiredAsSigned(base), 'slots:find', 'The token has expired.');
  });

  it('names the initial scope alone once the token is revoked (RFC 7009, that token alone)', async () => {
    const user = await userTokens(stack, { scope: 'slots:find busy:read' });
    const base = decodeJwt(user.accessToken);
    await expectExpiredChallenge(await expiredAsSigned(base), 'slots:find busy:read');
    expect((await postForm(`${stack.issuer}/revoke`, { token: user.accessToken, token_type_hint: 'access_token', client_id: user.clientId })).status).toBe(200);
    expect((await refusedSoon(() => atAgent(stack, user.accessToken))).status).toBe(401);
    await expectExpiredChallenge(await expiredAsSigned(base), 'slots:find');
  });
});
