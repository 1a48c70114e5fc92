// The bearer verifier remembers tokens whose signature and claims it has
// checked (issue 6: the signature check was a tenth of a find_slot's cost),
// without letting that weaken anything: expiry, the revocation hook and the
// scopes are judged on every request, entries last at most a minute, and the
// memo is bounded.
import { describe, expect, it } from 'vitest';
import { SignJWT, createLocalJWKSet, importJWK, type CryptoKey, type JWTVerifyGetKey } from 'jose';
import { BearerError, VERIFIED_TOKEN_TTL_MS, createBearerVerifier, type TokenRejection, type BearerRequest } from '../../src/resource/bearer.js';
import { es256Key } from '../support/authz.js';

/** A request whose Authorization header carries `token` as a bearer token (what a verifier reads of it). */
const withBearer = (token: string): BearerRequest => ({ url: '/', headers: { authorization: `Bearer ${token}` } });

const ISSUER = 'https://as.example.test';
const AUDIENCE = 'http://127.0.0.1:8412/mcp';
const T0 = Date.UTC(2026, 0, 5, 9);

async function setup() {
  const key = await es256Key();
  const local = createLocalJWKSet({ keys: [key.publicJwk] });
  const privateKey = (await importJWK(key.privateJwk, 'ES256')) as CryptoKey;
  let lookups = 0;
  const keys: JWTVerifyGetKey = (header, token) => {
    lookups++;
    return local(header, token);
  };
  const sign = (jti: string, expSec = T0 / 1000 + 600) =>
    new SignJWT({ client_id: 'c1', scope: 'slots:find', grant_id: 'grt_1' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.privateJwk.kid! })
      .setIssuer(ISSUER)
      .setSubject('user-1')
      .setAudience(AUDIENCE)
      .setJti(jti)
      .setIssuedAt(T0 / 1000)
      .setExpirationTime(expSec)
      .sign(privateKey);
  return { keys, sign, lookups: () => lookups };
}

const refusalOf = async (p: Promise<unknown>) => {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(BearerError);
  return err as BearerError;
};

describe('bearer verifier memo', () => {
  it('checks a token signature once, and expiry, revocation and scope on every request', async () => {
    const { keys, sign, lookups } = await setup();
    let t = T0;
    let revoked: TokenRejection;
    const verify = createBearerVerifier({ issuer: ISSUER, audience: AUDIENCE, keys, now: () => t, reject: () => revoked });
    const token = await sign('at_1', T0 / 1000 + 90);
    await verify(withBearer(token), ['slots:find']);
    await verify(withBearer(token), ['slots:find']);
    expect(lookups()).toBe(1);

    // Scope: judged each time from the remembered claims.
    expect((await refusalOf(verify(withBearer(token), ['busy:read']))).code).toBe('insufficient_scope');
    // Revocation: judged each time.
    revoked = { revoked: 'The grant was revoked.' };
    expect((await refusalOf(verify(withBearer(token), ['slots:find']))).message).toBe('The grant was revoked.');
    revoked = undefined;

    // After the TTL the signature is checked again.
    t = T0 + VERIFIED_TOKEN_TTL_MS + 1;
    await verify(withBearer(token), ['slots:find']);
    expect(lookups()).toBe(2);

    // Past exp (90 s), a remembered token is refused as expired.
    t = T0 + 90_000;
    const expired = await refusalOf(verify(withBearer(token), ['slots:find']));
    expect(expired.code).toBe('invalid_token');
    expect(expired.message).toBe('The token has expired.');
  });

  it('remembers nothing that failed, and at most verifiedCacheSize tokens', async () => {
    const { keys, sign, lookups } = await setup();
    const verify = createBearerVerifier({ issuer: ISSUER, audience: 'http://127.0.0.1:9999/other', keys, now: () => T0, verifiedCacheSize: 2 });
    const foreign = await sign('at_foreign');
    await refusalOf(verify(withBearer(foreign), []));
    await refusalOf(verify(withBearer(foreign), []));
    expect(lookups()).toBe(2); // a token for another audience is checked (and refused) each time

    const bounded = createBearerVerifier({ issuer: ISSUER, audience: AUDIENCE, keys, now: () => T0, verifiedCacheSize: 2 });
    const [a, b, c] = [await sign('at_a'), await sign('at_b'), await sign('at_c')];
    for (const token of [a, b, c]) await bounded(withBearer(token), []);
    const before = lookups();
    await bounded(withBearer(c), []);
    await bounded(withBearer(b), []);
    expect(lookups()).toBe(before); // the two most recent are remembered
    await bounded(withBearer(a), []);
    expect(lookups()).toBe(before + 1); // the oldest was forgotten
  });
});
