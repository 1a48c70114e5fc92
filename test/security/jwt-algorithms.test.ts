// ES256 only, at every JWT check of the authorization server and the resource
// servers, from outside. jose will not verify with a P-256 key under any other
// algorithm, so where the key is one P-256 key (the AS's own signing keys, the
// owner's key file) a token signed under another algorithm is refused whether
// or not the server names the algorithms it allows: no request can tell the
// allow-list is there. So this file checks it two ways:
// - where a key of another type can be found (the agent's registered keys,
//   read as a JWK set), an ES384, ES512 or RS256 client assertion signed with
//   such a key, registered under the kid it names, is refused (400
//   invalid_client, nothing changed): only `algorithms: ['ES256']` refuses it;
// - over HTTP, with jose's jwtVerify wrapped by a pass-through `vi.mock`, each
//   verification the servers make (the owner's sign-in assertion, the client
//   assertion, the exchange's subject_token, the bearer token at both
//   resource servers) is seen passing `algorithms: ['ES256']`.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, jwtVerify, type CryptoKey } from 'jose';
import { initializeBody, mcpHeaders, rawRequest } from '../agent/http.js';
import { postForm } from '../support/oauth-flow.js';
import { ACCESS_TOKEN_TYPE, JWT_BEARER, TOKEN_EXCHANGE, exchangeAsAgent, startStack, stateChangedBy, userTokens, type Stack } from './stack.js';

/** Each jwtVerify call the servers make: the src file that made it, and the options it passed. */
const seen = vi.hoisted(() => [] as Array<{ site: string; options: unknown }>);

vi.mock('jose', async (importOriginal) => {
  const actual = await importOriginal<typeof import('jose')>();
  return {
    ...actual,
    jwtVerify: vi.fn((...args: Parameters<typeof actual.jwtVerify>) => {
      const frame = (new Error().stack ?? '').split('\n').find((line) => /\/src\/[\w/-]+\.ts/.test(line));
      seen.push({ site: /\/(src\/[\w/-]+\.ts)/.exec(frame ?? '')?.[1] ?? 'elsewhere', options: args[2] });
      return actual.jwtVerify(...args);
    }),
  };
});

let stack: Stack;
let subject: string;
/** Keys of other types, registered as CalendarAgent's (each under its own kid), with the algorithm each signs under. */
const foreign: Array<{ alg: string; kid: string; privateKey: CryptoKey }> = [];

beforeAll(async () => {
  stack = await startStack();
  subject = (await userTokens(stack)).accessToken;
  const agent = (await stack.store.clientById(stack.agent.clientId))!;
  const keys: Record<string, unknown>[] = [...agent.jwks!.keys];
  for (const alg of ['ES384', 'ES512', 'RS256']) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    // No `alg` member: a key that names none may be used with any algorithm of its type (RFC 7517 §4.4).
    keys.push({ ...publicJwk, kid, use: 'sig' });
    foreign.push({ alg, kid, privateKey: privateKey as CryptoKey });
  }
  // Not through `delegate agents register`, which takes only a P-256 key: as if one had got into the store.
  await stack.store.updateClient({ ...agent, jwks: { keys } });
});
afterAll(async () => stack?.close());

const exchangeWith = (assertion: string) =>
  postForm(`${stack.issuer}/token`, {
    grant_type: TOKEN_EXCHANGE,
    subject_token: subject,
    subject_token_type: ACCESS_TOKEN_TYPE,
    resource: stack.calendarUrl,
    scope: 'freebusy:read',
    client_id: stack.agent.clientId,
    client_assertion_type: JWT_BEARER,
    client_assertion: assertion,
  });

function assertionClaims() {
  const now = Math.floor(Date.now() / 1000);
  return { iss: stack.agent.clientId, sub: stack.agent.clientId, aud: stack.issuer, jti: crypto.randomUUID(), iat: now, exp: now + 60 };
}

describe('a client assertion under another algorithm, with a key of that type registered for the agent', () => {
  it('the agent’s own ES256 assertion still works (the control)', async () => {
    const res = await exchangeAsAgent(stack, subject);
    expect(res.status, String(res.body.error)).toBe(200);
  });

  it.each(['ES384', 'ES512', 'RS256'])('refuses %s: 400 invalid_client, nothing changed', async (alg) => {
    const key = foreign.find((k) => k.alg === alg)!;
    const assertion = await new SignJWT(assertionClaims()).setProtectedHeader({ alg, kid: key.kid }).sign(key.privateKey);
    const { result: res, changed } = await stateChangedBy(stack, () => exchangeWith(assertion));
    // Only the error code in the message: an accepted assertion's answer holds a token.
    expect(res.status, String(res.body.error)).toBe(400);
    expect(res.body.error).toBe('invalid_client');
    expect(res.body).not.toHaveProperty('access_token');
    expect(changed).toEqual([]);
  });
});

describe('every JWT the servers verify is verified for ES256 only (seen over HTTP)', () => {
  it('the owner’s sign-in assertion, the client assertion, the subject_token and the bearer token at both resource servers', async () => {
    seen.length = 0;
    const user = await userTokens(stack); // /login/owner, the code and its redemption
    const exchanged = await exchangeAsAgent(stack, user.accessToken); // the client assertion and the subject_token
    expect(exchanged.status, String(exchanged.body.error)).toBe(200);
    const calendarToken = String(exchanged.body.access_token);
    const atAgent = await rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(user.accessToken), body: initializeBody });
    expect(atAgent.status).toBe(200);
    const from = new Date(Date.now() + 3600_000).toISOString();
    const to = new Date(Date.now() + 86400_000).toISOString();
    const atBackend = await rawRequest({ port: stack.ports.calendar, path: `/freebusy?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, headers: { authorization: `Bearer ${calendarToken}` } });
    expect(atBackend.status, atBackend.text).toBe(200);

    const sites = new Set(seen.map((s) => s.site));
    for (const site of ['src/authz/owner-login.ts', 'src/authz/client-auth.ts', 'src/authz/access-token.ts', 'src/resource/bearer.ts']) expect(sites, site).toContain(site);
    for (const { site, options } of seen) expect((options as { algorithms?: unknown } | undefined)?.algorithms, site).toEqual(['ES256']);
    expect(vi.mocked(jwtVerify)).toHaveBeenCalled();
  });
});
