// Redirect URIs the browser would not be sent to as registered, from outside (found in review, s25rfc). A string
// that is no RFC 3986 URI was registered (201), and /authorize, matching it exactly, sent the code or the error
// where a URL parser took it: `https://app.example.com/cb\..\other` to `https://app.example.com/other`. RFC 6749
// §3.1.2 (an absolute URI, RFC 3986 §4.3), RFC 7591 §3.2.2 (invalid_redirect_uri), RFC 9700 §4.1.3 (exact
// matching). The URIs clients use today are still taken, and a client stored before the check (an older database)
// gets a page at /authorize, never a redirect. test/authz/redirect-uri-policy.test.ts has the policy's cases.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, authorizeUrl, parseConsentForm, pkcePair, postJson, signInAndOpenConsent } from '../support/oauth-flow.js';
import { startStack, stateChangedBy, type Stack } from './stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack?.close());

const register = (redirectUris: string[]) =>
  postJson(`${stack.issuer}/register`, { client_name: 'app', redirect_uris: redirectUris, token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'] });

const authorizeHref = (clientId: string, redirectUri: string, extra: (url: URL) => void = () => {}) => {
  const url = new URL(authorizeUrl(stack.issuer, { clientId, redirectUri, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge }));
  extra(url);
  return url.href;
};

/** The owner opens the request and denies it: where the browser is sent (303 Location). */
async function deniedTo(clientId: string, redirectUri: string): Promise<string> {
  const browser = new Browser();
  const page = await signInAndOpenConsent(browser, stack.issuer, stack.ownerJwk, authorizeHref(clientId, redirectUri));
  expect(page.status, page.html).toBe(200);
  const decision = await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'deny' });
  expect(decision.status).toBe(303);
  return decision.location!;
}

describe('registration refuses a redirect URI the browser would not be sent to as written (RFC 7591 §3.2.2)', () => {
  it.each([
    ['backslashes and dot segments (read as https://app.example.com/other)', 'https://app.example.com/cb\\..\\other'],
    ['a quote, a backslash, a non-ASCII letter and angle brackets (read as …/c%22b/%C3%A9%3Cx%3E)', 'http://127.0.0.1:5555/c"b\\é<x>'],
    ['a dot segment', 'https://app.example.com/cb/../other'],
    ['a percent-encoded dot segment', 'https://app.example.com/cb/%2e%2e/other'],
    ['a numeric host (read as 127.0.0.1)', 'https://2130706433/cb'],
    ['a Unicode host (read as punycode)', 'https://пример.example/cb'],
    ['a response parameter in the query', 'http://127.0.0.1:5555/cb?code=x'],
    // Found in review (s25new2): names were compared as written, and the client's parser decodes them.
    ['response parameters percent-encoded in the query (read as code, state, iss)', 'http://127.0.0.1:5555/cb?%63ode=EVIL&%73tate=EVIL&%69ss=EVIL'],
    ['a response parameter with an encoded control character after it', 'http://127.0.0.1:3000/cb?state%00=1'],
    ['[ and ] in the path and query', 'https://a.example/cb[1]?x=[y]'],
  ])('%s: 400 invalid_redirect_uri, no client', async (_name, uri) => {
    const { result: res, changed } = await stateChangedBy(stack, () => register([uri]));
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error).toBe('invalid_redirect_uri');
    expect(changed).toEqual([]);
  });

  it.each(['http://127.0.0.1:5555/callback', 'http://127.0.0.1:5555/cb?codes=1&c%6Fde_x=2', 'http://localhost:5555', 'com.example.app:/cb', 'https://App.Example.com/cb', 'cursor://anysphere.cursor-mcp/oauth/callback', 'http://[::1]:8080/callback'])(
    'still registers %s (the control)',
    async (uri) => {
      const res = await register([uri]);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body.redirect_uris).toEqual([uri]);
    },
  );
});

describe('/authorize sends the browser to the URI as registered', () => {
  it.each([
    ['an https URI', 'https://app.example.com/cb', 'https://app.example.com/cb?'],
    ['an upper-case host (RFC 3986 §6.2.2.1: the same URI)', 'https://App.Example.com/cb', 'https://app.example.com/cb?'],
    ['a bare loopback origin (RFC 3986 §6.2.3: the empty path is /)', 'http://localhost:5555', 'http://localhost:5555/?'],
    // RFC 6749 §3.1.2: the query is kept as written when the response's parameters are added (it was re-encoded,
    // `?a=&x=%7E&error=…`).
    ['a query, kept as written', 'http://127.0.0.1:5555/cb?a&x=~&y=%41', 'http://127.0.0.1:5555/cb?a&x=~&y=%41&'],
  ])('%s: a denial goes there', async (_name, uri, prefix) => {
    const registered = await register([uri]);
    expect(registered.status, JSON.stringify(registered.body)).toBe(201);
    const location = await deniedTo(String(registered.body.client_id), uri);
    expect(location.startsWith(`${prefix}error=access_denied&`), location).toBe(true);
    expect(new URL(location).searchParams.get('state')).toBe('s');
    expect(new URL(location).searchParams.get('iss')).toBe(stack.issuer);
  });

  it.each([
    ['backslashes and dot segments', 'https://app.example.com/cb\\..\\other'],
    ['a quote, a backslash, a non-ASCII letter and angle brackets', 'http://127.0.0.1:5555/c"b\\é<x>'],
    ['a response parameter in the query', 'https://app.example.com/cb?state=x'],
  ])('a client stored before the check (an older database) with %s: a page, no Location, for a good request and a broken one', async (_name, uri) => {
    const clientId = `cli_old_${crypto.randomUUID()}`;
    await stack.store.createClient({ clientId, clientName: 'old app', kind: 'public', secretHash: null, redirectUris: [uri], grantTypes: ['authorization_code'], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: Date.now() });
    // Refused before any sign-in is asked for, as every request whose redirect URI does not check out.
    for (const href of [authorizeHref(clientId, uri), authorizeHref(clientId, uri, (url) => url.searchParams.delete('response_type'))]) {
      const { result: page, changed } = await stateChangedBy(stack, () => new Browser().get(href));
      expect(page.status).toBe(400);
      expect(page.location).toBeNull();
      expect(page.html).not.toContain('name="decision"');
      expect(page.html).toContain('not one this server can send you to as written');
      expect(changed).toEqual([]);
    }
  });
});
