// JWT attacks from outside, against the real servers built as the CLI builds
// them: forged or mis-aimed tokens at CalendarAgent (/mcp) and at the calendar
// backend (/freebusy), as the subject_token of a token exchange, and as the
// agent's private_key_jwt client assertion. Tokens that differ from a good one
// in one property only are signed with the AS's real key (read from the
// store), so that the property under test is the only reason to refuse; each
// table starts with that good token accepted, so the tests can fail. Every
// refusal must carry the RFC error code on the wire and change nothing in the
// database (a refused exchange spends the agent's own assertion jti, which
// lives in `used_once`: RFC 7523 §3 one-time use, and nothing an attacker gains).
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, base64url, decodeJwt, decodeProtectedHeader, exportSPKI, importJWK, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { es256Key, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { initializeBody, mcpHeaders, rawRequest } from '../agent/http.js';
import { Browser, postForm } from '../support/oauth-flow.js';
import { JWT_BEARER, agentAssertion, exchangeAsAgent, expectExchangeRefusedOnly, expectOwnerLinkRefusedOnly, claims, issuerSigningKey, startStack, stateChangedBy, userTokens, type Stack } from './stack.js';

let stack: Stack;
let issuerKey: { kid: string; privateJwk: JWK; publicJwk: JWK };
let attacker: { privateJwk: JWK; publicJwk: JWK };
let userClaims: JWTPayload;
let calendarClaims: JWTPayload;
/** A server the attacker controls, serving its own key: it must never be asked. */
let attackerServer: Server;
let attackerUrl: string;
const attackerHits: string[] = [];
/** Another authorization server (another delegate install), whose real signing key names a kid this one does not know. */
let otherAs: TestAuthz;
let otherAsKey: { kid: string; privateJwk: JWK };

beforeAll(async () => {
  stack = await startStack();
  issuerKey = await issuerSigningKey(stack);
  attacker = await es256Key();
  const user = await userTokens(stack);
  userClaims = decodeJwt(user.accessToken);
  const exchanged = await exchangeAsAgent(stack, user.accessToken);
  expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
  calendarClaims = decodeJwt(String(exchanged.body.access_token));
  attackerServer = createServer((req, res) => {
    attackerHits.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [attacker.publicJwk] }));
  });
  await new Promise<void>((resolve) => attackerServer.listen(0, '127.0.0.1', resolve));
  attackerUrl = `http://127.0.0.1:${(attackerServer.address() as AddressInfo).port}`;
  otherAs = await startTestAuthz();
  const otherKey = (await otherAs.store.signingKeys()).find((k) => k.retiredAt === null)!;
  otherAsKey = { kid: otherKey.kid, privateJwk: otherKey.privateJwk as JWK };
  expect(otherAsKey.kid).not.toBe(issuerKey.kid);
});

afterAll(async () => {
  await stack?.close();
  await otherAs?.close();
  await new Promise((resolve) => attackerServer?.close(resolve));
});

/** A URL on the attacker's key server that no other test names, so that a hit on it can only come from the token under test. */
const attackerKeyUrl = (kind: string) => `${attackerUrl}/${kind}/${crypto.randomUUID()}`;

/**
 * Checks that no verifier fetched any attacker URL named in the JWT's
 * protected header (jku, x5u, or a kid that is a URL). First a control
 * fetch, so that zero hits means something: the attacker's server is up and
 * records what it is asked (and has had the time to see anything sent before).
 */
async function expectAttackerNotAsked(jwt: string): Promise<void> {
  let header: Record<string, unknown> = {};
  try {
    header = decodeProtectedHeader(jwt) as Record<string, unknown>;
  } catch {
    return;
  }
  const named = Object.values(header).filter((v): v is string => typeof v === 'string' && v.startsWith(attackerUrl));
  if (named.length === 0) return;
  const control = `/control/${crypto.randomUUID()}`;
  expect((await fetch(`${attackerUrl}${control}`)).status).toBe(200);
  expect(attackerHits).toContain(control);
  for (const url of named) expect(attackerHits, url).not.toContain(new URL(url).pathname);
}

/** An HS256 JWT whose HMAC key is `secret` (built by hand: WebCrypto refuses an empty HMAC key, an attacker need not). */
function hmacJwt(header: Record<string, unknown>, payload: JWTPayload, secret: Uint8Array): string {
  const input = `${base64url.encode(JSON.stringify({ alg: 'HS256', ...header }))}.${base64url.encode(JSON.stringify(payload))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
const DEV_NULL_KID = '../../../../dev/null';
/** What a verifier that read its key from the file the kid names would get: /dev/null is empty. */
const devNullBytes = () => new Uint8Array(readFileSync('/dev/null'));

const nowSec = () => Math.floor(Date.now() / 1000);

async function sign(payload: JWTPayload, header: Record<string, unknown>, jwk: JWK): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', ...header } as { alg: string }).sign((await importJWK(jwk, 'ES256')) as CryptoKey);
}

/**
 * A copy of `base` with `changes` applied (undefined removes a claim). The jti
 * stays: the AS knows its tokens by jti, so a forgery keeps a real one.
 */
function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('base64url');
}


type Forge = (base: JWTPayload) => Promise<string>;

/** The attacks every verifier of delegate's access tokens must refuse. */
function accessTokenAttacks(audience: () => string, wrongAudience: () => string): Array<[string, Forge]> {
  const real = (changes: () => Record<string, unknown> = () => ({}), header: Record<string, unknown> | (() => Record<string, unknown>) = {}): Forge =>
    async (base) => sign(claims(base, changes()), { typ: 'at+jwt', kid: issuerKey.kid, ...(typeof header === 'function' ? header() : header) }, issuerKey.privateJwk);
  const byAttacker = (header: () => Record<string, unknown>): Forge =>
    async (base) => sign(claims(base), { typ: 'at+jwt', kid: attacker.publicJwk.kid, ...header() }, attacker.privateJwk);
  return [
    ['alg: none', async (base) => `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: issuerKey.kid }))}.${base64url.encode(JSON.stringify(claims(base)))}.`],
    ['HS256 signed with the public JWK (JSON) as the HMAC secret', async (base) => hs256(claims(base), new TextEncoder().encode(JSON.stringify(issuerKey.publicJwk)))],
    ['HS256 signed with the public key (PEM) as the HMAC secret', async (base) => hs256(claims(base), new TextEncoder().encode(await exportSPKI((await importJWK(issuerKey.publicJwk, 'ES256')) as CryptoKey)))],
    ['kid with path traversal', byAttacker(() => ({ kid: '../../../../../../etc/passwd' }))],
    ['kid with SQL', byAttacker(() => ({ kid: "x' OR '1'='1" }))],
    ['unknown kid', byAttacker(() => ({ kid: 'no-such-key' }))],
    ['no kid', byAttacker(() => ({ kid: undefined }))],
    // kid injection where the signature would hold if the kid were followed: a key file that reads as empty.
    ['HS256 with kid ../../../../dev/null, signed with an empty secret', async (base) => hmacJwt({ typ: 'at+jwt', kid: DEV_NULL_KID }, claims(base), new Uint8Array(0))],
    ['HS256 with kid ../../../../dev/null, signed with the bytes of /dev/null', async (base) => hmacJwt({ typ: 'at+jwt', kid: DEV_NULL_KID }, claims(base), devNullBytes())],
    // kid injection with a good signature: signed with the AS's real key, so only the kid can refuse it (no published key has that kid).
    ['the real key, kid with path traversal', real(undefined, () => ({ kid: '../../../../../../etc/passwd' }))],
    ['the real key, kid with path traversal ending in the real kid', real(undefined, () => ({ kid: `../../keys/${issuerKey.kid}` }))],
    ['the real key, kid with SQL', real(undefined, () => ({ kid: "x' OR '1'='1" }))],
    ['the real key, kid as a URL to the attacker', real(undefined, () => ({ kid: attackerKeyUrl('kid') }))],
    ['the real key, the kid of the attacker key', real(undefined, () => ({ kid: attacker.publicJwk.kid }))],
    // Signed with the real key and naming no key: jose would try the only published key, and the signature holds.
    ['the real key, no kid', real(undefined, () => ({ kid: undefined }))],
    // A kid naming a key of another server, signed with that key.
    ['signed by the agent’s own key, with its kid', async (base) => sign(claims(base), { typ: 'at+jwt', kid: stack.agent.privateJwk.kid }, stack.agent.privateJwk)],
    ['signed by another authorization server’s key, with its kid', async (base) => sign(claims(base), { typ: 'at+jwt', kid: otherAsKey.kid }, otherAsKey.privateJwk)],
    ['jwk header embedding the attacker key', byAttacker(() => ({ jwk: publicOnly(attacker.publicJwk) }))],
    ['jku header pointing at the attacker JWKS', byAttacker(() => ({ jku: attackerKeyUrl('jku') }))],
    ['x5u header pointing at the attacker', byAttacker(() => ({ x5u: attackerKeyUrl('x5u') }))],
    ['the real kid, signed by the attacker key', byAttacker(() => ({ kid: issuerKey.kid }))],
    ['expired', real(() => ({ iat: nowSec() - 900, exp: nowSec() - 120 }))],
    ['nbf in the future', real(() => ({ nbf: nowSec() + 600 }))],
    ['typ JWT (an id-token-like JWT)', real(() => ({ nonce: 'n', azp: 'x' }), { typ: 'JWT' })],
    ['typ of the agent identity statement', real(undefined, { typ: 'agent-statement+jwt' })],
    ['no typ', real(undefined, { typ: undefined })],
    ['wrong iss', real(() => ({ iss: 'http://127.0.0.1:1' }))],
    ['wrong aud', real(() => ({ aud: wrongAudience() }))],
    ['aud as a list that also names another resource only', real(() => ({ aud: [wrongAudience(), `${audience()}/other`] }))],
    ['no exp', real(() => ({ exp: undefined }))],
    // RFC 7519 §4.1.2 (sub is a StringOrURI), §4.1.7 (jti a string), RFC 9068 §2.2. Found in review (s25rfc): both
    // resource servers checked only that they were present.
    ['sub a number', real(() => ({ sub: 5 }))],
    ['jti a number', real(() => ({ jti: 5 }))],
    ['client_id a number', real(() => ({ client_id: 7 }))],
  ];
}

async function hs256(payload: JWTPayload, secret: Uint8Array): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: issuerKey.kid }).sign(secret);
}

function publicOnly(jwk: JWK): JWK {
  const { d: _d, ...rest } = jwk;
  return rest;
}

const mcp = (token: string) => rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(token), body: initializeBody });
const freebusy = (token: string) => {
  const from = new Date(Date.now() + 3600_000).toISOString();
  const to = new Date(Date.now() + 2 * 86400_000).toISOString();
  return rawRequest({ port: stack.ports.calendar, path: `/freebusy?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, headers: { authorization: `Bearer ${token}` } });
};

describe('access tokens at CalendarAgent (/mcp)', () => {
  it('accepts the good token re-signed with the AS key (the control)', async () => {
    const res = await mcp(await sign(claims(userClaims), { typ: 'at+jwt', kid: issuerKey.kid }, issuerKey.privateJwk));
    expect(res.status).toBe(200);
  });

  it.each(accessTokenAttacks(() => stack.agentUrl, () => stack.calendarUrl))('refuses %s: 401 invalid_token, nothing changed', async (_name, forge) => {
    const token = await forge(userClaims);
    const { result: res, changed } = await stateChangedBy(stack, () => mcp(token));
    expect(res.status).toBe(401);
    expect(String(res.headers['www-authenticate'])).toContain('error="invalid_token"');
    expect(res.json()).toMatchObject({ error: 'invalid_token' });
    expect(res.text).not.toContain(token.split('.')[1]!);
    expect(changed).toEqual([]);
    await expectAttackerNotAsked(token);
  });
});

describe('what a refusal says', () => {
  // RFC 9068 §2.1: typ is a header parameter of the JWT (RFC 7515 §4.1.9), not a claim (found in review, s25rfc).
  it('names typ a header parameter, and a number where a string belongs, at both resource servers', async () => {
    const forged = (changes: Record<string, unknown>, header: Record<string, unknown>, base: JWTPayload) =>
      sign(claims(base, changes), { typ: 'at+jwt', kid: issuerKey.kid, ...header }, issuerKey.privateJwk);
    const cases: Array<[Record<string, unknown>, Record<string, unknown>, string]> = [
      [{}, { typ: 'JWT' }, "The token's typ header parameter is not acceptable."],
      [{ sub: 5 }, {}, "The token's sub claim is not a string."],
      [{ jti: 5 }, {}, "The token's jti claim is not a string."],
    ];
    for (const [changes, header, said] of cases) {
      const atAgent = await mcp(await forged(changes, header, userClaims));
      const atCalendar = await freebusy(await forged(changes, header, calendarClaims));
      for (const res of [atAgent, atCalendar]) {
        expect(res.status).toBe(401);
        expect(String(res.headers['www-authenticate'])).toContain(`error_description="${said}"`);
      }
    }
  });
});

describe('access tokens at the calendar backend (/freebusy)', () => {
  it('accepts the good token re-signed with the AS key (the control)', async () => {
    const res = await freebusy(await sign(claims(calendarClaims), { typ: 'at+jwt', kid: issuerKey.kid }, issuerKey.privateJwk));
    expect(res.status, res.text).toBe(200);
  });

  it.each(accessTokenAttacks(() => stack.calendarUrl, () => stack.agentUrl))('refuses %s: 401 invalid_token, nothing changed', async (_name, forge) => {
    const token = await forge(calendarClaims);
    const { result: res, changed } = await stateChangedBy(stack, () => freebusy(token));
    expect(res.status).toBe(401);
    expect(String(res.headers['www-authenticate'])).toContain('error="invalid_token"');
    expect(res.json()).toMatchObject({ error: 'invalid_token' });
    expect(res.text).not.toContain(token.split('.')[1]!);
    expect(changed).toEqual([]);
    await expectAttackerNotAsked(token);
  });
});

describe('the subject_token of a token exchange', () => {
  it('exchanges the good token re-signed with the AS key (the control)', async () => {
    const res = await exchangeAsAgent(stack, await sign(claims(userClaims), { typ: 'at+jwt', kid: issuerKey.kid }, issuerKey.privateJwk));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  // RFC 8693 §2.2.2: an invalid subject token is invalid_request.
  it.each(accessTokenAttacks(() => stack.agentUrl, () => stack.calendarUrl))('refuses %s: 400 invalid_request, no token issued', async (_name, forge) => {
    const token = await forge(userClaims);
    const { result: res, changed } = await stateChangedBy(stack, () => exchangeAsAgent(stack, token));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request' });
    expect(res.body.access_token).toBeUndefined();
    expect(JSON.stringify(res.body)).not.toContain(token.split('.')[1]!);
    // Only the agent's own assertion was spent (RFC 7523 §3): no token or grant; a token the AS signed (wrong aud) is a recorded refusal.
    await expectExchangeRefusedOnly(stack, changed.filter((t) => t !== 'used_once'), []);
    await expectAttackerNotAsked(token);
  });
});

describe('the private_key_jwt client assertion (the agent authenticating at /token)', () => {
  let subject: string;
  beforeAll(async () => {
    subject = (await userTokens(stack)).accessToken;
  });

  const withAssertion = async (assertion: string) =>
    postForm(`${stack.issuer}/token`, {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: subject,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      resource: stack.calendarUrl,
      scope: 'freebusy:read',
      client_id: stack.agent.clientId,
      client_assertion_type: JWT_BEARER,
      client_assertion: assertion,
    });

  const base = (): JWTPayload => ({ iss: stack.agent.clientId, sub: stack.agent.clientId, aud: stack.issuer, jti: crypto.randomUUID(), iat: nowSec(), exp: nowSec() + 60 });
  const attacks: Array<[string, () => Promise<string>]> = [
    ['alg: none', async () => `${base64url.encode(JSON.stringify({ alg: 'none', kid: stack.agent.privateJwk.kid }))}.${base64url.encode(JSON.stringify(claims(base())))}.`],
    [
      'HS256 signed with the agent public key as the HMAC secret',
      async () => new SignJWT(claims(base())).setProtectedHeader({ alg: 'HS256', kid: stack.agent.privateJwk.kid }).sign(new TextEncoder().encode(JSON.stringify(publicOnly(stack.agent.privateJwk)))),
    ],
    ['signed by the attacker, kid with path traversal', () => agentAssertion(stack, { kid: '../../agent-key.json' }, {}, attacker.privateJwk)],
    ['signed by the attacker, unknown kid', () => agentAssertion(stack, { kid: 'nope' }, {}, attacker.privateJwk)],
    ['HS256 with kid ../../../../dev/null, signed with an empty secret', async () => hmacJwt({ kid: DEV_NULL_KID }, base(), new Uint8Array(0))],
    ['HS256 with kid ../../../../dev/null, signed with the bytes of /dev/null', async () => hmacJwt({ kid: DEV_NULL_KID }, base(), devNullBytes())],
    // The agent's real key: only the kid can refuse these (the client's registered JWKS has no key with that kid).
    ['the agent’s real key, kid with path traversal', () => agentAssertion(stack, { kid: '../../agent-key.json' })],
    ['the agent’s real key, kid with SQL', () => agentAssertion(stack, { kid: "x' OR '1'='1" })],
    ['the agent’s real key, kid as a URL to the attacker', () => agentAssertion(stack, { kid: attackerKeyUrl('kid') })],
    ['signed by the AS’s own key, with its kid (a key of another server)', () => agentAssertion(stack, { kid: issuerKey.kid }, {}, issuerKey.privateJwk)],
    ['signed by the attacker, jwk header embedding the attacker key', () => agentAssertion(stack, { jwk: publicOnly(attacker.publicJwk), kid: attacker.publicJwk.kid }, {}, attacker.privateJwk)],
    ['signed by the attacker, jku to the attacker JWKS', () => agentAssertion(stack, { jku: attackerKeyUrl('jku') }, {}, attacker.privateJwk)],
    ['signed by the attacker, x5u to the attacker', () => agentAssertion(stack, { x5u: attackerKeyUrl('x5u') }, {}, attacker.privateJwk)],
    ['expired', () => agentAssertion(stack, {}, { iat: nowSec() - 600, exp: nowSec() - 60 })],
    ['nbf in the future', () => agentAssertion(stack, {}, { nbf: nowSec() + 600 })],
    ['wrong iss', () => agentAssertion(stack, {}, { iss: 'someone-else' })],
    ['wrong aud', () => agentAssertion(stack, {}, { aud: stack.calendarUrl })],
    ['living too long', () => agentAssertion(stack, {}, { exp: nowSec() + 3600 })],
  ];

  it('accepts the agent’s own assertion (the control)', async () => {
    const res = await withAssertion(await agentAssertion(stack));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  it.each(attacks)('refuses %s: 400 invalid_client, nothing changed', async (_name, make) => {
    const assertion = await make();
    const { result: res, changed } = await stateChangedBy(stack, () => withAssertion(assertion));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_client' });
    expect(changed).toEqual([]);
    await expectAttackerNotAsked(assertion);
  });

  it('refuses a replayed assertion: 400 invalid_client, nothing issued', async () => {
    const assertion = await agentAssertion(stack);
    expect((await withAssertion(assertion)).status).toBe(200);
    const { result: res, changed } = await stateChangedBy(stack, () => withAssertion(assertion));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_client' });
    expect(changed).toEqual([]);
  });
});

describe('the owner’s sign-in assertion (/login/owner)', () => {
  // Every assertion here is for this one page (next_sha256), as the CLI signs it, but for what a row changes.
  const NEXT = `/authorize?client_id=x&nonce=${crypto.randomUUID()}`;
  const next = () => NEXT;
  const base = (): JWTPayload => ({ iss: 'delegate-cli', sub: 'owner', aud: stack.issuer, jti: `${crypto.randomUUID()}${crypto.randomUUID()}`, iat: nowSec(), exp: nowSec() + 60, next_sha256: sha256(NEXT) });
  const owner = (changes: () => Record<string, unknown> = () => ({}), header: () => Record<string, unknown> = () => ({}), key?: () => JWK) => async () =>
    sign(claims(base(), changes()), header(), key ? key() : stack.ownerJwk);
  const open = (assertion: string) => new Browser().get(`${stack.issuer}/login/owner?assertion=${encodeURIComponent(assertion)}&next=${encodeURIComponent(next())}`);

  it('signs the owner in with a good assertion (the control)', async () => {
    const res = await open(await owner()());
    expect(res.status).toBe(303);
  });

  const attacks: Array<[string, () => Promise<string>]> = [
    ['alg: none', async () => `${base64url.encode(JSON.stringify({ alg: 'none' }))}.${base64url.encode(JSON.stringify(base()))}.`],
    ['HS256 signed with the owner’s public key as the HMAC secret', async () => new SignJWT(base()).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(JSON.stringify(publicOnly(stack.ownerJwk))))],
    ['signed by the attacker, with its key embedded as jwk', owner(undefined, () => ({ jwk: publicOnly(attacker.publicJwk) }), () => attacker.privateJwk)],
    ['signed by the attacker, with jku to its JWKS', owner(undefined, () => ({ jku: attackerKeyUrl('owner-jku') }), () => attacker.privateJwk)],
    ['signed by the attacker, with kid path traversal', owner(undefined, () => ({ kid: '../../owner-key.json' }), () => attacker.privateJwk)],
    ['HS256 with kid ../../../../dev/null, signed with an empty secret', async () => hmacJwt({ kid: DEV_NULL_KID }, base(), new Uint8Array(0))],
    ['HS256 with kid ../../../../dev/null, signed with the bytes of /dev/null', async () => hmacJwt({ kid: DEV_NULL_KID }, base(), devNullBytes())],
    ['expired', owner(() => ({ iat: nowSec() - 300, exp: nowSec() - 60 }))],
    ['nbf in the future', owner(() => ({ nbf: nowSec() + 600 }))],
    ['wrong iss', owner(() => ({ iss: 'someone-else' }))],
    ['wrong sub', owner(() => ({ sub: 'admin' }))],
    ['wrong aud', owner(() => ({ aud: 'http://127.0.0.1:1' }))],
    ['living too long', owner(() => ({ exp: nowSec() + 3600 }))],
    ['a short jti', owner(() => ({ jti: 'short' }))],
    ['signed for another page (next_sha256 of another next)', owner(() => ({ next_sha256: sha256('/authorize?client_id=attacker') }))],
    ['signed for no page (no next_sha256)', owner(() => ({ next_sha256: undefined }))],
  ];

  it.each(attacks)('refuses %s: 403 page, no session, nothing changed but a bounded sign_in_failed record', async (_name, make) => {
    const assertion = await make();
    const { result: res, changed } = await stateChangedBy(stack, () => open(assertion));
    expect(res.status).toBe(403);
    expect(res.location).toBeNull();
    expect(res.headers.get('set-cookie')).toBeNull();
    await expectOwnerLinkRefusedOnly(stack, changed);
    await expectAttackerNotAsked(assertion);
  });
});

describe('keys named in JWT headers', () => {
  // Each row above that names an attacker URL (jku, x5u, a kid that is a URL) checks on its own that its URL was never
  // fetched (expectAttackerNotAsked), after a control fetch; this is the control that the check can see a fetch at all.
  it('the attacker key server records a fetch of a URL a row would name (the control for the per-row checks)', async () => {
    const url = attackerKeyUrl('jku');
    await fetch(url);
    expect(attackerHits).toContain(new URL(url).pathname);
  });
});
