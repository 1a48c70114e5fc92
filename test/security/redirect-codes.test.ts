// Redirect URI, authorization code and PKCE attacks from outside, against the
// servers built as the CLI builds them. Each refusal is checked on the wire
// (RFC 7591 / RFC 6749 error codes, or an error page that redirects nowhere)
// and in the database: no client, authorization request, grant, code or token
// appears. test/authz/authorize.test.ts and token.test.ts cover the same
// endpoints for their behaviour; these add the state checks and more variants.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import Database from 'better-sqlite3';
import { startLoopbackListener } from '../../src/client/loopback.js';
import type { ClientError } from '../../src/client/errors.js';
import { addUser } from '../../src/authz/index.js';
import { hashSecret } from '../../src/authz/crypto.js';
import { Browser, authorizeUrl, callbackParams, csrfOf, parseConsentForm, pkcePair, postForm, postJson, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { initializeBody, mcpHeaders, rawRequest } from '../agent/http.js';
import { REDIRECT, auditSince, exchangeAsAgent, expectStrictPage, lastAuditSeq, ownerCode, queryRows, redeemCode, rowCounts, startStack, stateChangedBy, type Stack } from './stack.js';
import { openAsOwner } from '../support/owner-flow.js';

let stack: Stack;
let clientId: string;
/**
 * A browser signed in as the owner, for one request. /authorize refuses a bad
 * request before it reads any session, so the refusals below all use it; a
 * request it accepts is opened through a sign-in link of its own (openAsOwner),
 * as the owner's CLI opens each.
 */
let browser: Browser;

beforeAll(async () => {
  stack = await startStack();
  clientId = await registerPublicClient(stack.issuer, [REDIRECT]);
  browser = new Browser();
  const { challenge } = pkcePair();
  const page = await signInAndOpenConsent(
    browser,
    stack.issuer,
    stack.ownerJwk,
    authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge }),
  );
  expect(page.status).toBe(200);
});
afterAll(async () => stack?.close());

const register = (redirectUris: string[]) =>
  postJson(`${stack.issuer}/register`, { client_name: 'attacker', redirect_uris: redirectUris, token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'] });

describe('redirect URIs at registration (RFC 7591)', () => {
  it.each([
    ['a non-loopback http URI', 'http://evil.example/callback'],
    ['a non-loopback http URI on a private address', 'http://192.168.1.10/callback'],
    ['http on 0.0.0.0', 'http://0.0.0.0/callback'],
    ['a loopback look-alike name', 'http://127.0.0.1.evil.example/callback'],
    ['userinfo', 'https://127.0.0.1@evil.example/callback'],
    ['userinfo on loopback', 'http://user:pass@127.0.0.1/callback'],
    ['a fragment', 'https://app.example/callback#frag'],
    ['a wildcard', 'https://*.example/callback'],
    ['javascript:', 'javascript:alert(1)'],
    ['data:', 'data:text/html,<script>alert(1)</script>'],
    ['a relative URI', '/callback'],
  ])('refuses %s: 400 invalid_redirect_uri, no client', async (_name, uri) => {
    const { result: res, changed } = await stateChangedBy(stack, () => register([uri]));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_redirect_uri' });
    expect(changed).toEqual([]);
  });

  it('accepts an https URI and a loopback http one (the control)', async () => {
    const res = await register(['https://app.example/callback', 'http://127.0.0.1/callback']);
    expect(res.status).toBe(201);
  });
});

describe('redirect URIs at /authorize: exact match (OAuth 2.1 §2.3.1), errors shown and never redirected', () => {
  const { challenge } = pkcePair();
  it.each([
    ['an open redirect to another host', 'https://evil.example/callback'],
    ['a non-loopback http URI', 'http://evil.example/callback'],
    ['another path', 'http://127.0.0.1:43123/callback/evil'],
    ['a dot-segment path', 'http://127.0.0.1:43123/callback/../evil'],
    ['a trailing slash', 'http://127.0.0.1:43123/callback/'],
    ['an added query', 'http://127.0.0.1:43123/callback?next=https://evil.example'],
    ['another case in the path', 'http://127.0.0.1:43123/CALLBACK'],
    ['another case in the scheme', 'HTTP://127.0.0.1:43123/callback'],
    ['another case in the scheme and another loopback name', 'HTTP://LOCALHOST:43123/callback'],
    ['userinfo', 'http://127.0.0.1:43123@evil.example/callback'],
    ['userinfo before loopback', 'http://evil.example@127.0.0.1:43123/callback'],
    ['a fragment', 'http://127.0.0.1:43123/callback#x'],
    ['a percent-encoded path', 'http://127.0.0.1:43123/%63allback'],
    ['a percent-encoded host', 'http://%31%32%37.0.0.1:43123/callback'],
    ['a look-alike IDN host (punycode)', 'http://127.0.0.1.xn--80ak6aa92e.com/callback'],
    ['a look-alike IDN host (Unicode)', 'http://аррӏе.com/callback'],
    ['a backslash', 'http://127.0.0.1:43123\\@evil.example/callback'],
    ['another loopback name', 'http://localhost:43123/callback'],
    ['https for http', 'https://127.0.0.1:43123/callback'],
  ])('refuses %s: 400 page, no Location, nothing stored', async (_name, redirectUri) => {
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge });
    const { result: res, changed } = await stateChangedBy(stack, () => browser.get(href));
    expect(res.status).toBe(400);
    expect(res.location).toBeNull();
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(changed).toEqual([]);
  });

  describe('variants of the registered https URIs themselves (case, IDN forms): exact string match, RFC 9700 §4.1.3', () => {
    // Each variant names the same host as a registered URI (a URL parser maps
    // it onto the registered string), so only the exact comparison refuses it.
    const APP = 'https://app.example/callback';
    const PUNYCODE = 'https://xn--80ak6aa92e.com/cb'; // аррӏе.com
    // A Unicode host (https://пример.example/cb) is no longer registered: it is no RFC 3986 URI, and the browser is
    // sent to its punycode form (found in review, s25rfc; redirect-uri-as-written.test.ts).
    let httpsClient: string;
    beforeAll(async () => {
      const res = await register([APP, PUNYCODE]);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body.redirect_uris).toEqual([APP, PUNYCODE]);
      httpsClient = String(res.body.client_id);
    });
    const open = (redirectUri: string) =>
      browser.get(authorizeUrl(stack.issuer, { clientId: httpsClient, redirectUri, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge }));

    it.each([APP, PUNYCODE])('accepts the registered %s exactly (the control)', async (uri) => {
      const { page: res } = await openAsOwner(stack, authorizeUrl(stack.issuer, { clientId: httpsClient, redirectUri: uri, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge }));
      expect(res.status).toBe(200);
      expect(res.html).toContain('name="decision"');
    });

    it.each([
      ['scheme and host upper-case', 'HTTPS://APP.example/callback', APP],
      ['host upper-case', 'https://APP.EXAMPLE/callback', APP],
      ['scheme upper-case', 'HTTPS://app.example/callback', APP],
      ['the registered punycode host in Unicode', 'https://аррӏе.com/cb', PUNYCODE],
      ['the registered punycode host upper-case', 'https://XN--80AK6AA92E.com/cb', PUNYCODE],
    ])('refuses %s: 400 page, no Location, nothing stored', async (_name, variant, registered) => {
      // The variant and the registered URI are the same URL to a parser: only the exact match tells them apart.
      expect(new URL(variant).href).toBe(new URL(registered).href);
      const { result: res, changed } = await stateChangedBy(stack, () => open(variant));
      expect(res.status).toBe(400);
      expect(res.location).toBeNull();
      expect(res.headers.get('content-type')).toContain('text/html');
      expect(res.html).not.toContain('name="decision"');
      expect(changed).toEqual([]);
    });
  });

  it('a client registered with an https URI cannot use the same host over http', async () => {
    const res = await register(['https://app.example/callback']);
    const id = String(res.body.client_id);
    const href = authorizeUrl(stack.issuer, { clientId: id, redirectUri: 'http://app.example/callback', resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge });
    const { result, changed } = await stateChangedBy(stack, () => browser.get(href));
    expect(result.status).toBe(400);
    expect(result.location).toBeNull();
    expect(changed).toEqual([]);
  });

  it('accepts the registered URI on any loopback port (the control, RFC 8252 §7.3)', async () => {
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri: 'http://127.0.0.1:61001/callback', resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge });
    expect((await openAsOwner(stack, href)).page.status).toBe(200);
  });
});

describe('the authorization server as an open redirector (RFC 9700 §4.11.2; found in review: a broken request for a registered https://evil.example/cb was a 302 there, with no sign-in)', () => {
  const EVIL = 'https://evil.example/cb';
  const { challenge } = pkcePair();
  let evil: string;
  beforeAll(async () => {
    const res = await register([EVIL]);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    evil = String(res.body.client_id);
    await addUser(stack.store, { name: 'nina', password: 'nina has a long password', timeZone: 'UTC' }, Date.now());
    await addUser(stack.store, { name: 'omar', password: 'omar has a long password', timeZone: 'UTC' }, Date.now());
  });
  /** Signs `name` in with a password for `href` (a session is good for the page its sign-in led to): the browser and where it was sent. */
  const signInFor = async (name: string, href: string) => {
    const b = new Browser();
    const next = href.slice(stack.issuer.length);
    const form = await b.get(`${stack.issuer}/login?next=${encodeURIComponent(next)}`);
    const signedIn = await b.post(`${stack.issuer}/login`, { csrf: csrfOf(form.html), next, username: name, password: `${name} has a long password` });
    expect(signedIn.status).toBe(303);
    return { browser: b, url: new URL(signedIn.location!, stack.issuer).href };
  };
  const signedInGet = async (name: string, href: string) => {
    const { browser: b, url } = await signInFor(name, href);
    return { browser: b, page: await b.get(url) };
  };
  const broken: Array<[string, (url: URL) => void]> = [
    ['no response_type', (url) => url.searchParams.delete('response_type')],
    ['a scope the agent does not offer', (url) => url.searchParams.set('scope', 'calendar:write')],
    ['response_type=token', (url) => url.searchParams.set('response_type', 'token')],
    ['no code_challenge', (url) => url.searchParams.delete('code_challenge')],
    ['an unknown resource', (url) => url.searchParams.set('resource', 'http://127.0.0.1:1/mcp')],
  ];
  const brokenRequest = (breakIt: (url: URL) => void) => {
    const url = new URL(authorizeUrl(stack.issuer, { clientId: evil, redirectUri: EVIL, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge }));
    breakIt(url);
    return url.href;
  };
  const expectShownHere = (res: { status: number; location: string | null; html: string; headers: Headers }, name: string) => {
    expect(res.status, name).toBe(400);
    expect(res.location, name).toBeNull();
    expect(res.html, name).toContain('You were not sent on to evil.example');
    expect(res.html, name).not.toContain('href=');
    expectStrictPage(name, res);
  };

  it.each(broken)('%s, with no session: a page here, no Location to the client, nothing stored', async (name, breakIt) => {
    const { result, changed } = await stateChangedBy(stack, () => new Browser().get(brokenRequest(breakIt)));
    expectShownHere(result, name);
    expect(changed).toEqual([]);
  });

  it('the same for a signed-in user who never approved that app, and for the sign-in form leading there', async () => {
    for (const [name, breakIt] of broken) {
      // Signed in for this very request (the sign-in is on the record); nothing is stored by the request itself.
      const { browser: omar, url } = await signInFor('omar', brokenRequest(breakIt));
      const { result, changed } = await stateChangedBy(stack, () => omar.get(url));
      expectShownHere(result, name);
      expect(changed).toEqual([]);
    }
    // POST /login with next=/authorize?… (the review's second path) lands on the same page.
    const b = new Browser();
    const form = await b.get(`${stack.issuer}/login`);
    const next = brokenRequest(broken[0]![1]).slice(stack.issuer.length);
    const signedIn = await b.post(`${stack.issuer}/login`, { csrf: csrfOf(form.html), next, username: 'omar', password: 'omar has a long password' });
    expect(signedIn.status).toBe(303);
    expectShownHere(await b.get(new URL(signedIn.location!, stack.issuer).href), 'after sign-in');
  });

  it('a user who approved that app before is sent back to it with the error (the control, RFC 6749 §4.1.2.1); a loopback app always is', async () => {
    const { browser: nina, page: consent } = await signedInGet('nina', authorizeUrl(stack.issuer, { clientId: evil, redirectUri: EVIL, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge }));
    expect(consent.status).toBe(200);
    const approved = await nina.post(`${stack.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
    expect(approved.location).toMatch(/^https:\/\/evil\.example\/cb\?code=/);
    for (const [name, breakIt] of broken) {
      const { page: res } = await signedInGet('nina', brokenRequest(breakIt));
      expect(res.status, name).toBe(302);
      const back = callbackParams(res.location!);
      expect(new URL(res.location!).origin, name).toBe('https://evil.example');
      expect(back.get('error'), name).toMatch(/^(invalid_request|invalid_scope|unsupported_response_type|invalid_target)$/);
      expect(back.get('state'), name).toBe('s');
      expect(back.get('iss'), name).toBe(stack.issuer);
    }
    // Still a page for someone else, with no session.
    expectShownHere(await new Browser().get(brokenRequest(broken[0]![1])), 'no session after nina approved');
    // Loopback: redirected with no session (native apps, RFC 8252), as the PKCE rows below check too.
    const loopback = await new Browser().get(authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'calendar:write', state: 's', challenge }));
    expect(loopback.status).toBe(302);
    expect(callbackParams(loopback.location!).get('error')).toBe('invalid_scope');
  });
});

describe('PKCE downgrade at /authorize (OAuth 2.1: S256 only)', () => {
  const { verifier } = pkcePair();
  it.each([
    ['code_challenge_method=plain', { challenge: verifier, challengeMethod: 'plain' }],
    ['no code_challenge_method (plain by default, RFC 7636 §4.3)', { challenge: verifier, challengeMethod: '' }],
    ['no code_challenge', { challenge: undefined }],
    ['a challenge that is not a SHA-256 digest', { challenge: 'abc' }],
  ] as Array<[string, { challenge: string | undefined; challengeMethod?: string }]>)('refuses %s: invalid_request back to the client, nothing stored', async (_name, p) => {
    const url = new URL(authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 's-pkce', ...p }));
    if (p.challengeMethod === '') url.searchParams.delete('code_challenge_method');
    const { result: res, changed } = await stateChangedBy(stack, () => browser.get(url.href));
    expect(res.status).toBe(302);
    const back = callbackParams(res.location!);
    expect(back.get('error')).toBe('invalid_request');
    expect(back.get('state')).toBe('s-pkce');
    expect(back.get('iss')).toBe(stack.issuer);
    expect(back.get('code')).toBeNull();
    expect(changed).toEqual([]);
  });
});

describe('PKCE at /token', () => {
  it.each([
    ['a missing code_verifier', () => undefined],
    ['a wrong code_verifier', () => pkcePair().verifier],
    ['the challenge sent back as a plain verifier', (c: { challenge: string }) => c.challenge],
  ])('refuses %s: invalid_grant, no token, the code not spent', async (_name, verifierFor) => {
    const code = await ownerCode(stack);
    const { result: res, changed } = await stateChangedBy(stack, () => redeemCode(stack, { ...code, verifier: verifierFor(code) as string }));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_grant' });
    expect(res.body.access_token).toBeUndefined();
    expect(changed).toEqual([]);
    // The code's rightful holder can still redeem it.
    expect((await redeemCode(stack, code)).status).toBe(200);
  });
});

describe('authorization codes', () => {
  it('a code injected across clients: invalid_grant, nothing issued, and its own client can still redeem it', async () => {
    const victim = await ownerCode(stack);
    const attackerId = await registerPublicClient(stack.issuer, [REDIRECT]);
    const { result: res, changed } = await stateChangedBy(stack, () => redeemCode(stack, { ...victim, clientId: attackerId }));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_grant' });
    expect(changed).toEqual([]);
    expect((await redeemCode(stack, victim)).status).toBe(200);
  });

  it('a code redeemed with another redirect_uri or resource: invalid_grant / invalid_target, nothing issued', async () => {
    const code = await ownerCode(stack);
    const wrongUri = await stateChangedBy(stack, () => redeemCode(stack, code, { redirect_uri: 'http://127.0.0.1:43124/callback' }));
    expect(wrongUri.result.status).toBe(400);
    expect(wrongUri.result.body).toMatchObject({ error: 'invalid_grant' });
    expect(wrongUri.changed).toEqual([]);
    const wrongResource = await stateChangedBy(stack, () => redeemCode(stack, code, { resource: stack.calendarUrl }));
    expect(wrongResource.result.status).toBe(400);
    expect(wrongResource.result.body).toMatchObject({ error: 'invalid_target' });
    expect(wrongResource.changed).toEqual([]);
  });

  it('a replayed code: invalid_grant, and every token the first redemption issued is revoked (RFC 9700 §4.5)', async () => {
    const code = await ownerCode(stack);
    const first = await redeemCode(stack, code);
    expect(first.status).toBe(200);
    const access = String(first.body.access_token);
    const agentAccepts = async () => (await rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(access), body: initializeBody })).status;
    expect(await agentAccepts()).toBe(200);

    const firstJti = String(decodeJwt(access).jti);
    const family = String(queryRows(stack, 'SELECT family_id FROM issued_tokens WHERE jti = ?', firstJti)[0]!.family_id);
    const tokenTables = ['issued_tokens', 'refresh_tokens', 'token_families'];
    const countsBefore = rowCounts(stack, tokenTables);
    const seq = await lastAuditSeq(stack);
    const { result: replay, changed } = await stateChangedBy(stack, () => redeemCode(stack, code));
    expect(replay.status).toBe(400);
    expect(replay.body).toMatchObject({ error: 'invalid_grant' });
    expect(replay.body.access_token).toBeUndefined();
    expect(replay.body.refresh_token).toBeUndefined();
    // Nothing new was issued: no token, refresh token or family row appeared.
    expect(rowCounts(stack, tokenTables)).toEqual(countsBefore);
    // Only what the revocation is designed to change: the family marked revoked, its access token marked
    // revoked and put on the revocation list, and one code_replay record on the audit log.
    expect(changed).toEqual(['audit_log', 'issued_tokens', 'revocations', 'token_families']);
    expect(queryRows(stack, 'SELECT revoked_at IS NOT NULL AS revoked FROM token_families WHERE id = ?', family)).toEqual([{ revoked: 1 }]);
    expect(queryRows(stack, 'SELECT jti, revoked_at IS NOT NULL AS revoked FROM issued_tokens WHERE family_id = ?', family)).toEqual([{ jti: firstJti, revoked: 1 }]);
    expect(queryRows(stack, "SELECT id FROM revocations WHERE kind = 'token' AND id = ?", firstJti)).toHaveLength(1);
    expect((await auditSince(stack, seq)).map((r) => r.event)).toEqual(['code_replay']);

    // The refresh token is dead, the AS will not exchange the access token, and the agent refuses it once the revocation list reaches it.
    const refresh = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(first.body.refresh_token), client_id: code.clientId });
    expect(refresh.body).toMatchObject({ error: 'invalid_grant' });
    expect((await exchangeAsAgent(stack, access)).body).toMatchObject({ error: 'invalid_request' });
    let status = await agentAccepts();
    for (let i = 0; i < 100 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      status = await agentAccepts();
    }
    expect(status).toBe(401);
  });

  it('a request without state is allowed (OAuth 2.1 §4.1.1 with PKCE), and its callback carries no state', async () => {
    const { challenge, verifier } = pkcePair();
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', challenge });
    const { browser, page } = await openAsOwner(stack, href);
    expect(page.status).toBe(200);
    const decision = await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
    const back = callbackParams(decision.location!);
    expect(back.get('state')).toBeNull();
    expect(back.get('iss')).toBe(stack.issuer);
    // PKCE is what binds the code to the client that started the request.
    expect((await redeemCode(stack, { clientId, code: back.get('code')!, verifier: pkcePair().verifier })).body).toMatchObject({ error: 'invalid_grant' });
    expect((await redeemCode(stack, { clientId, code: back.get('code')!, verifier })).status).toBe(200);
  });
});

describe('a spent code presented by someone who could not have redeemed it (RFC 6749 §4.1.3; found in review regress21b: another client ended the family)', () => {
  type Confidential = { id: string; secret: string };
  const registerConfidential = async (name: string): Promise<Confidential> => {
    const res = await postJson(`${stack.issuer}/register`, { client_name: name, redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_basic', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return { id: String(res.body.client_id), secret: String(res.body.client_secret) };
  };
  const basic = (c: Confidential) => ({ authorization: `Basic ${Buffer.from(`${encodeURIComponent(c.id)}:${encodeURIComponent(c.secret)}`).toString('base64')}` });
  /** The authorization_code grant as the confidential client `as`, authenticated with its own secret. */
  const redeemAs = (as: Confidential, code: string, verifier: string | undefined) =>
    postForm(`${stack.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, resource: stack.agentUrl }, basic(as));
  /** The code ends as if a day had passed: expired, still kept (the sweep deletes codes a day past expiry). */
  const expire = (code: string) => {
    const db = new Database(stack.paths.db);
    try {
      db.prepare('UPDATE auth_codes SET expires_at = ? WHERE code_hash = ?').run(Date.now() - 1_000, hashSecret(code));
    } finally {
      db.close();
    }
  };

  let evil: Confidential;
  beforeAll(async () => {
    evil = await registerConfidential('evil');
  });

  /** The owner approves a new confidential client, the victim, which redeems the code: its tokens, the code now spent. */
  async function victimRedeemed() {
    const victim = await registerConfidential('victim');
    const approved = await ownerCode(stack, { clientId: victim.id });
    const first = await redeemAs(victim, approved.code, approved.verifier);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    return { ...approved, victim, access: String(first.body.access_token), refresh: String(first.body.refresh_token) };
  }

  it.each([
    ['another client (its own credentials) with a wrong code_verifier', { as: 'evil', verifier: 'wrong', expired: false }],
    ['another client with the right code_verifier', { as: 'evil', verifier: 'right', expired: false }],
    ['another client, a day after the code expired', { as: 'evil', verifier: 'wrong', expired: true }],
    ['its own client with a wrong code_verifier', { as: 'victim', verifier: 'wrong', expired: false }],
    ['its own client with no code_verifier', { as: 'victim', verifier: 'none', expired: false }],
    ['its own client with a wrong code_verifier after the code expired', { as: 'victim', verifier: 'wrong', expired: true }],
  ] as const)('%s: 400 invalid_grant, nothing changed, the victim’s tokens live', async (_name, c) => {
    const spent = await victimRedeemed();
    if (c.expired) expire(spent.code);
    const verifier = c.verifier === 'right' ? spent.verifier : c.verifier === 'wrong' ? pkcePair().verifier : undefined;
    const { result: res, changed } = await stateChangedBy(stack, () => redeemAs(c.as === 'evil' ? evil : spent.victim, spent.code, verifier));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_grant' });
    expect(String(res.body.error_description)).not.toMatch(/revoked/);
    expect(res.body.access_token).toBeUndefined();
    expect(changed).toEqual([]);
    // The victim's family goes on: its access token is exchanged and its refresh token rotates.
    expect((await exchangeAsAgent(stack, spent.access)).status).toBe(200);
    const refreshed = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: spent.refresh }, basic(spent.victim));
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
  });

  it('its own client with its verifier, a day after the code expired: still a replay, the family revoked (RFC 6749 §4.1.2; the control)', async () => {
    const spent = await victimRedeemed();
    expire(spent.code);
    const seq = await lastAuditSeq(stack);
    const { result: res, changed } = await stateChangedBy(stack, () => redeemAs(spent.victim, spent.code, spent.verifier));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_grant', error_description: 'The authorization code was already used; the tokens it issued are revoked.' });
    expect(changed).toEqual(['audit_log', 'issued_tokens', 'revocations', 'token_families']);
    expect((await auditSince(stack, seq)).map((r) => [r.event, r.client])).toEqual([['code_replay', spent.victim.id]]);
    const refreshed = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: spent.refresh }, basic(spent.victim));
    expect(refreshed.body).toMatchObject({ error: 'invalid_grant' });
  });
});

describe('the CLI client’s callback listener (src/client/loopback.ts) against an injected code', () => {
  // Found in review (local): a wrong-state request used to end the sign-in (STATE_MISMATCH), so any local user could abort every one.
  it.each([
    ['a wrong state', (code: string, issuer: string) => ({ code, state: 'attacker-state', iss: issuer })],
    ['no state', (code: string, issuer: string) => ({ code, iss: issuer })],
  ])('answers a real code delivered with %s 400, never redeems it, and goes on waiting for its own response', async (_name, params) => {
    const injected = await ownerCode(stack);
    const listener = await startLoopbackListener({ timeoutMs: 5_000 });
    try {
      listener.expect({ state: 'victim-state-'.padEnd(43, 'x'), issuer: stack.issuer, requireIss: true });
      let settled = false;
      const waiting = listener.waitForCode().finally(() => (settled = true));
      const url = new URL(listener.redirectUrl);
      for (const [k, v] of Object.entries(params(injected.code, stack.issuer))) url.searchParams.set(k, v);
      const { result: page, changed } = await stateChangedBy(stack, async () => {
        const res = await fetch(url);
        return { status: res.status, body: await res.text() };
      });
      expect(page.status).toBe(400);
      expect(page.body).not.toContain(injected.code);
      expect(changed).toEqual([]);
      expect(settled).toBe(false);
      // The sign-in's own response still ends it.
      const own = new URL(listener.redirectUrl);
      own.search = new URLSearchParams({ code: 'own-code', state: 'victim-state-'.padEnd(43, 'x'), iss: stack.issuer }).toString();
      expect((await fetch(own)).status).toBe(200);
      expect(await waiting).toBe('own-code');
    } finally {
      await listener.close();
    }
    // Untouched: the code is still unredeemed at the AS.
    expect((await redeemCode(stack, injected)).status).toBe(200);
  });

  it.each([
    ['another issuer (RFC 9207 mix-up)', (code: string, _issuer: string) => ({ code, state: 'victim-state-'.padEnd(43, 'x'), iss: 'http://127.0.0.1:1' }), 'ISSUER_MISMATCH'],
    ['no iss where the server promised it', (code: string, _issuer: string) => ({ code, state: 'victim-state-'.padEnd(43, 'x') }), 'ISSUER_MISMATCH'],
  ])('refuses a real code delivered with %s, and never redeems it', async (_name, params, expected) => {
    // The attacker's own code, from the real AS: what a code-injection attack would deliver.
    const injected = await ownerCode(stack);
    const listener = await startLoopbackListener({ timeoutMs: 5_000 });
    try {
      listener.expect({ state: 'victim-state-'.padEnd(43, 'x'), issuer: stack.issuer, requireIss: true });
      const waiting = listener.waitForCode().catch((e: ClientError) => e);
      const url = new URL(listener.redirectUrl);
      for (const [k, v] of Object.entries(params(injected.code, stack.issuer))) url.searchParams.set(k, v);
      const { result: page, changed } = await stateChangedBy(stack, async () => {
        const res = await fetch(url);
        return { status: res.status, outcome: await waiting };
      });
      expect(page.status).toBe(400);
      expect(page.outcome).toMatchObject({ code: expected });
      expect(changed).toEqual([]);
    } finally {
      await listener.close();
    }
    // Untouched: the code is still unredeemed at the AS.
    expect((await redeemCode(stack, injected)).status).toBe(200);
  });
});
