// Mutation review s32 (M3): introspection (RFC 7662 §2.2) answers an expired access token `active: false`, even to
// the agent whose resource it was issued for, while its grant still stands. Kills: the token checked at
// /introspect against another time than the server's (src/authz/introspect.ts, verifyOwnAccessToken's now),
// which survived test/security/{tokens,protocol-conformance,client-assertion-audience}.test.ts and
// test/authz/{token,client-auth-challenge}.test.ts: the store's token standing says only revoked or not.
import { importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postForm } from '../support/oauth-flow.js';
import { obtainTokens } from '../authz/helpers.js';

vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

let authz: TestAuthz;
let clock: number;

beforeEach(async () => {
  clock = Date.now();
  authz = await startTestAuthz({ now: () => clock });
});

afterEach(async () => {
  await authz.close();
});

/** The agent's private_key_jwt assertion, signed at the server's time. */
async function agentAssertion(jwk: JWK, clientId: string): Promise<string> {
  const now = Math.floor(clock / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: jwk.kid })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(authz.issuer)
    .setJti(crypto.randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign((await importJWK(jwk, 'ES256')) as CryptoKey);
}

async function introspectAsAgent(token: string) {
  return postForm(`${authz.issuer}/introspect`, {
    token,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await agentAssertion(authz.agent.privateJwk, authz.agent.clientId),
  });
}

describe('introspection of an expired access token (mutation review s32 M3)', () => {
  it('is active: false and nothing else, to the agent it was issued for, once the token has expired; its grant still stands', async () => {
    const tokens = await obtainTokens(authz);
    const live = await introspectAsAgent(tokens.accessToken);
    expect([live.status, live.body.active]).toEqual([200, true]);
    const exp = Number(live.body.exp);
    const grantId = String(live.body.grant_id);

    clock = exp * 1000 + 1_000;
    const expired = await introspectAsAgent(tokens.accessToken);
    expect([expired.status, expired.body]).toEqual([200, { active: false }]);
    expect(expired.headers.get('cache-control')).toBe('no-store');
    // Not a revocation: the grant is active, and a refresh still works.
    expect((await authz.store.grantById(grantId))?.revokedAt ?? null).toBeNull();
  });
});
