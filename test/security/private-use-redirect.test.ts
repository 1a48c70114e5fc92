// Native apps' private-use URI scheme redirects (RFC 8252 §7.1) from outside, against the servers built as the
// CLI builds them: Cursor's registration as it sends it, a whole sign-in whose code goes back to
// cursor://anysphere.cursor-mcp/oauth/callback (the Location header read, no browser), and the attacks the
// scheme invites: schemes that are not an app's own, look-alikes of http and https, another URI than the one
// registered at /authorize, an error bounced to an app nobody approved, consent skipped for an app any other app
// on the device could pose as (§8.6). Each refusal is checked on the wire and in the database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { Browser, authorizeUrl, callbackParams, csrfOf, parseConsentForm, pkcePair, postJson, registerPublicClient } from '../support/oauth-flow.js';
import { ownerApproves, redeemCode } from '../support/owner-flow.js';
import { expectStrictPage, startStack, stateChangedBy, type Stack } from './stack.js';

const CURSOR = 'cursor://anysphere.cursor-mcp/oauth/callback';
const REVERSE_DOMAIN = 'com.example.app:/oauth2redirect/example-provider';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
  await addUser(stack.store, { name: 'nina', password: 'nina has a long password', timeZone: 'UTC' }, Date.now());
});
afterAll(async () => stack?.close());

/** Cursor's registration, as review s22mcp sent it. */
const cursorRegistration = (patch: Record<string, unknown> = {}) =>
  postJson(`${stack.issuer}/register`, {
    client_name: 'Cursor',
    redirect_uris: [CURSOR],
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    ...patch,
  });

/** Signs nina in with her password for `href`: the browser, and the page it was sent to. */
async function ninaOpens(href: string): Promise<{ browser: Browser; page: Awaited<ReturnType<Browser['get']>> }> {
  const browser = new Browser();
  const next = href.slice(stack.issuer.length);
  const form = await browser.get(`${stack.issuer}/login?next=${encodeURIComponent(next)}`);
  const signedIn = await browser.post(`${stack.issuer}/login`, { csrf: csrfOf(form.html), next, username: 'nina', password: 'nina has a long password' });
  expect(signedIn.status).toBe(303);
  return { browser, page: await browser.get(new URL(signedIn.location!, stack.issuer).href) };
}

describe('registering a private-use redirect URI (RFC 8252 §7.1)', () => {
  it("registers Cursor's client as Cursor sends it, and a reverse-domain scheme, as public clients", async () => {
    const cursor = await cursorRegistration();
    expect(cursor.status, JSON.stringify(cursor.body)).toBe(201);
    expect(cursor.body.redirect_uris).toEqual([CURSOR]);
    expect(cursor.body.client_secret).toBeUndefined();
    expect((await stack.store.clientById(String(cursor.body.client_id)))?.kind).toBe('public');
    const app = await cursorRegistration({ client_name: 'Example', redirect_uris: [REVERSE_DOMAIN, 'http://127.0.0.1/callback'] });
    expect(app.status, JSON.stringify(app.body)).toBe(201);
    expect(app.body.redirect_uris).toEqual([REVERSE_DOMAIN, 'http://127.0.0.1/callback']);
  });

  it.each([
    ['javascript:', 'javascript:/alert(1)'],
    ['javascript: with two slashes', 'javascript://%0aalert(1)'],
    ['vbscript:', 'vbscript:/msgbox(1)'],
    ['data:', 'data:/text/html,<script>alert(1)</script>'],
    ['file:', 'file:///etc/passwd'],
    ['blob:', 'blob:/https://app.example/1'],
    ['about:', 'about:/blank'],
    ['filesystem:', 'filesystem:/https://app.example/temporary/x'],
    ['view-source:', 'view-source:/https://app.example/'],
    ['chrome-extension:', 'chrome-extension://abcdefghijklmnop/cb'],
    ['ftp:', 'ftp://evil.example/cb'],
    ['ws:', 'ws://evil.example/cb'],
    ['mailto:', 'mailto:/attacker@evil.example'],
    ['an Android intent', 'intent://evil.example/cb#Intent;scheme=https;end'],
    ['ms-msdt: (CVE-2022-30190)', 'ms-msdt:/id PCWDiagnostic'],
    ['search-ms:', 'search-ms://query=invoice&crumb=location:\\\\evil.example\\share'],
    ['a web+ scheme (sent to a web site)', 'web+evil:/cb'],
    ['JavaScript: in mixed case', 'JavaScript:/alert(1)'],
    ['java<tab>script:', 'java\tscript:/alert(1)'],
    ['java<newline>script:', 'java\nscript:/alert(1)'],
    ['HTTPS: upper case', 'HTTPS://app.example/cb'],
    ['Https: mixed case', 'Https://app.example/cb'],
    ['HTTP: on loopback, upper case', 'HTTP://127.0.0.1/cb'],
    ['a leading space before https:', ' https://app.example/cb'],
    ['a trailing space', 'https://app.example/cb '],
    ['a tab inside https:', 'ht\ttps://app.example/cb'],
    ['a newline in a private-use URI', 'cursor://anysphere.cursor-mcp/oauth/\ncallback'],
    ['a NUL', 'cursor://anysphere.cursor-mcp/oauth/callback\u0000'],
    ['Cursor: in upper case', 'Cursor://anysphere.cursor-mcp/oauth/callback'],
    ['a scheme starting with a digit', '1password:/cb'],
    ['a scheme with an underscore', 'my_app:/cb'],
    ['an opaque URI, no slash after the scheme', 'com.example.app:callback'],
    ['userinfo in a private-use URI', 'cursor://user:pass@anysphere.cursor-mcp/oauth/callback'],
    ['a fragment in a private-use URI', 'cursor://anysphere.cursor-mcp/oauth/callback#x'],
    ['a wildcard in a private-use URI', 'cursor://*/oauth/callback'],
  ])('refuses %s: 400 invalid_redirect_uri, no client', async (_name, uri) => {
    const { result: res, changed } = await stateChangedBy(stack, () => cursorRegistration({ redirect_uris: [uri] }));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_redirect_uri' });
    expect(changed).toEqual([]);
  });

  it.each(['client_secret_basic', 'client_secret_post'])('refuses a private-use URI for a confidential client (%s): an app on a device keeps no secret (RFC 8252 §8.5)', async (method) => {
    const { result: res, changed } = await stateChangedBy(stack, () => cursorRegistration({ token_endpoint_auth_method: method }));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_redirect_uri' });
    expect(String(res.body.error_description)).toContain('token_endpoint_auth_method none');
    expect(changed).toEqual([]);
  });
});

describe('a sign-in whose code goes back to a private-use URI', () => {
  it('the consent page names an app on this device that the server cannot check; Approve sends the code to the registered URI exactly, with state and iss; /token redeems it with PKCE', async () => {
    const clientId = await registerPublicClient(stack.issuer, [CURSOR]);
    const { verifier, challenge } = pkcePair();
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri: CURSOR, resource: stack.agentUrl, scope: 'slots:find', state: 'cursor-state', challenge });
    const { browser, page } = await ninaOpens(href);
    expect(page.status).toBe(200);
    expect(page.html).toContain('the app on this device that opens <strong>cursor:</strong> links');
    expect(page.html).toContain('This server cannot check which app that is');
    expect(page.html).toContain(`its answer goes to <code>${CURSOR}</code>`);
    expect(page.html).not.toContain('runs on this computer');
    expectStrictPage('consent page of a private-use client', page);
    // CSP form-action must let the redirect after the form through: the scheme (its URLs have no origin), nothing wider.
    expect(page.headers.get('content-security-policy')).toContain("form-action 'self' cursor:;");

    const approved = await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
    expect(approved.status).toBe(303);
    expect(approved.location).toMatch(/^cursor:\/\/anysphere\.cursor-mcp\/oauth\/callback\?code=/);
    const back = new URL(approved.location!);
    expect(`${back.protocol}//${back.host}${back.pathname}`).toBe(CURSOR);
    expect(back.searchParams.get('state')).toBe('cursor-state');
    expect(back.searchParams.get('iss')).toBe(stack.issuer);

    const token = await redeemCode(stack, { clientId, code: back.searchParams.get('code')!, verifier }, {}, CURSOR);
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    expect(token.body.access_token).toEqual(expect.any(String));
  });

  it('works the same for a reverse-domain scheme with a single slash (the form RFC 8252 §7.1 writes)', async () => {
    const { clientId, code, verifier, params } = await ownerApproves(stack, { redirectUri: REVERSE_DOMAIN, state: 'rd' });
    expect(params.get('state')).toBe('rd');
    const token = await redeemCode(stack, { clientId, code, verifier }, {}, REVERSE_DOMAIN);
    expect(token.status, JSON.stringify(token.body)).toBe(200);
  });

  it('a code sent to the app cannot be redeemed without its PKCE verifier (what protects a code that another app claiming the scheme receives, §8.1)', async () => {
    const { clientId, code, verifier } = await ownerApproves(stack, { redirectUri: CURSOR });
    const { result: stolen, changed } = await stateChangedBy(stack, () => redeemCode(stack, { clientId, code, verifier: pkcePair().verifier }, {}, CURSOR));
    expect(stolen.status).toBe(400);
    expect(stolen.body.error).toBe('invalid_grant');
    expect(stolen.body.access_token).toBeUndefined();
    expect(changed).toEqual([]);
    expect((await redeemCode(stack, { clientId, code, verifier }, {}, CURSOR)).status).toBe(200);
  });
});

describe('private-use URIs at /authorize: exact match (OAuth 2.1 §2.3.1), never an unchecked redirect', () => {
  const { challenge } = pkcePair();
  let clientId: string;
  beforeAll(async () => {
    clientId = await registerPublicClient(stack.issuer, [CURSOR]);
  });
  const request = (redirectUri: string, patch: (url: URL) => void = () => {}) => {
    const url = new URL(authorizeUrl(stack.issuer, { clientId, redirectUri, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge }));
    patch(url);
    return url.href;
  };

  it.each([
    ['another app’s scheme, never registered', 'evil://anysphere.cursor-mcp/oauth/callback'],
    ['a reverse-domain scheme never registered', 'com.evil.app:/oauth/callback'],
    ['another path', 'cursor://anysphere.cursor-mcp/oauth/callback/evil'],
    ['a dot-segment path', 'cursor://anysphere.cursor-mcp/oauth/../oauth/callback'],
    ['a trailing slash', 'cursor://anysphere.cursor-mcp/oauth/callback/'],
    ['an added query', 'cursor://anysphere.cursor-mcp/oauth/callback?next=x'],
    ['another authority', 'cursor://evil.example/oauth/callback'],
    ['the scheme in upper case', 'Cursor://anysphere.cursor-mcp/oauth/callback'],
    ['the authority in upper case', 'cursor://ANYSPHERE.cursor-mcp/oauth/callback'],
    ['a port added', 'cursor://anysphere.cursor-mcp:443/oauth/callback'],
    ['one slash fewer', 'cursor:/anysphere.cursor-mcp/oauth/callback'],
    ['javascript: instead', 'javascript:alert(1)//anysphere.cursor-mcp/oauth/callback'],
  ])('refuses %s: 400 page, no Location, nothing stored', async (_name, redirectUri) => {
    const { result: res, changed } = await stateChangedBy(stack, () => new Browser().get(request(redirectUri)));
    expect(res.status).toBe(400);
    expect(res.location).toBeNull();
    expect(res.html).not.toContain('name="decision"');
    expect(changed).toEqual([]);
  });

  it('a broken request for the registered URI, with no session or a user who never approved the app: a page naming the app’s scheme, no Location, nothing stored (RFC 9700 §4.11.2)', async () => {
    const broken = request(CURSOR, (url) => url.searchParams.delete('response_type'));
    const { result: anonymous, changed } = await stateChangedBy(stack, () => new Browser().get(broken));
    for (const [name, res] of [['no session', anonymous], ['nina, who never approved it', (await ninaOpens(broken)).page]] as const) {
      expect(res.status, name).toBe(400);
      expect(res.location, name).toBeNull();
      expect(res.html, name).toContain('You were not sent on to the app on your device that opens cursor: links');
      expectStrictPage(name, res);
    }
    expect(changed).toEqual([]);
  });

  it('once nina approved the app: her broken request goes back to it with the error, state and iss (the control); a new request is still asked, never approved on its own (RFC 8252 §8.6)', async () => {
    const first = await ninaOpens(request(CURSOR));
    const approved = await first.browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(first.page.html), decision: 'approve' });
    expect(approved.location).toMatch(/^cursor:\/\/anysphere\.cursor-mcp\/oauth\/callback\?code=/);

    const { page: error } = await ninaOpens(request(CURSOR, (url) => url.searchParams.set('scope', 'calendar:write')));
    expect(error.status).toBe(302);
    expect(error.location).toMatch(/^cursor:\/\/anysphere\.cursor-mcp\/oauth\/callback\?error=invalid_scope&/);
    expect(callbackParams(error.location!).get('state')).toBe('s');
    expect(callbackParams(error.location!).get('iss')).toBe(stack.issuer);

    // The grant covers a new request (its own state; the first one, decided, is refused), but any app on the device
    // may have claimed cursor:, so nina is asked again.
    const { page: again } = await ninaOpens(request(CURSOR, (url) => url.searchParams.set('state', 's2')));
    expect(again.status).toBe(200);
    expect(again.location).toBeNull();
    expect(again.html).toContain('name="decision"');

    // /grants says where the app's answers go as the consent page did: to the scheme, not to an empty host.
    const { page: grants } = await ninaOpens(`${stack.issuer}/grants`);
    expect(grants.status).toBe(200);
    expect(grants.html).toContain(`App id <code>${clientId}</code>`);
    expect(grants.html).toMatch(new RegExp(`App id <code>${clientId}</code>[^<]*; its answers go to <code>cursor:</code>`));
  });
});
