// An authorization request without redirect_uri (OAuth 2.1 §4.1.1, RFC 6749 §3.1.2.3): optional when the client
// registered exactly one, which is then used; refused when it registered several, or a loopback URI without a
// port, whose port the app chooses for each sign-in (RFC 8252 §7.3). At /token (RFC 6749 §4.1.3) redirect_uri is
// required only when the authorization request sent it, and, when sent, must be the one the code went to.
// Over the wire: a real AS on a loopback port, the owner's sign-in link, the consent form, /token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

/** Opens /authorize for `clientId` with no redirect_uri, as the owner's signed-in browser. */
async function openWithoutRedirectUri(clientId: string) {
  const { verifier, challenge } = pkcePair();
  const browser = new Browser();
  const href = authorizeUrl(authz.issuer, { clientId, redirectUri: undefined as unknown as string, resource: authz.agentUrl, scope: 'slots:find', state: 's1', challenge });
  expect(new URL(href).searchParams.has('redirect_uri')).toBe(false);
  const page = await signInAndOpenConsent(browser, authz.issuer, authz.ownerJwk, href);
  return { browser, page, verifier };
}

/** Registers a public client with `redirectUris`, approves a request without redirect_uri, and returns the code and where it went. */
async function approvedWithoutRedirectUri(redirectUris: string[]) {
  const clientId = await registerPublicClient(authz.issuer, redirectUris);
  const { browser, page, verifier } = await openWithoutRedirectUri(clientId);
  expect(page.status, page.html).toBe(200);
  const decision = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
  expect(decision.status).toBe(303);
  const location = new URL(decision.location!);
  const code = callbackParams(location.href).get('code');
  expect(code).toBeTruthy();
  return { clientId, verifier, code: code!, wentTo: `${location.origin}${location.pathname}`, params: location.searchParams };
}

function redeem(c: { clientId: string; verifier: string; code: string }, extra: Record<string, string> = {}) {
  return postForm(`${authz.issuer}/token`, { grant_type: 'authorization_code', code: c.code, code_verifier: c.verifier, client_id: c.clientId, resource: authz.agentUrl, ...extra });
}

describe('redirect_uri omitted at /authorize, with exactly one registered', () => {
  it.each([
    ['a loopback URI with its port', 'http://127.0.0.1:7777/cb'],
    ['an https URI', 'https://app.example/cb'],
  ])('%s: the code goes to it, and /token without redirect_uri gives tokens', async (_name, registered) => {
    const approved = await approvedWithoutRedirectUri([registered]);
    expect(approved.wentTo).toBe(registered);
    expect(approved.params.get('state')).toBe('s1');
    expect(approved.params.get('iss')).toBe(authz.issuer);
    const res = await redeem(approved);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.access_token).toEqual(expect.any(String));
  });

  it('/token with the redirect URI the code went to gives tokens too', async () => {
    const approved = await approvedWithoutRedirectUri(['http://127.0.0.1:7777/cb']);
    const res = await redeem(approved, { redirect_uri: 'http://127.0.0.1:7777/cb' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  });

  it('/token with another redirect_uri is invalid_grant, no token, and the code is not spent', async () => {
    const approved = await approvedWithoutRedirectUri(['http://127.0.0.1:7777/cb']);
    for (const other of ['http://127.0.0.1:7778/cb', 'http://127.0.0.1:7777/cb/', 'https://app.example/cb']) {
      const res = await redeem(approved, { redirect_uri: other });
      expect([res.status, res.body.error], other).toEqual([400, 'invalid_grant']);
      expect(res.body.access_token).toBeUndefined();
    }
    expect((await redeem(approved)).status).toBe(200);
  });
});

describe('redirect_uri omitted at /authorize, refused', () => {
  it('when the client registered two: a 400 page, no Location, no consent form', async () => {
    const clientId = await registerPublicClient(authz.issuer, ['https://app.example/cb', 'https://app.example/other']);
    const { page } = await openWithoutRedirectUri(clientId);
    expect(page.status).toBe(400);
    expect(page.location).toBeNull();
    expect(page.html).not.toContain('name="csrf"');
    expect(page.html).toContain('more than one');
  });

  it.each([
    ['127.0.0.1', 'http://127.0.0.1/callback'],
    ['[::1]', 'http://[::1]/callback'],
    ['localhost', 'http://localhost/cb'],
  ])('when its one registered URI is a loopback URI on %s without a port (the port is chosen per sign-in): a 400 page saying redirect_uri must be sent', async (_name, registered) => {
    const clientId = await registerPublicClient(authz.issuer, [registered]);
    const { page } = await openWithoutRedirectUri(clientId);
    expect(page.status).toBe(400);
    expect(page.location).toBeNull();
    expect(page.html).not.toContain('name="csrf"');
    expect(page.html).toContain('redirect_uri must be sent');
  });
});

describe('redirect_uri sent at /authorize', () => {
  it('is still required at /token (RFC 6749 §4.1.3): without it, invalid_request, and the code still redeems with it', async () => {
    const clientId = await registerPublicClient(authz.issuer, ['http://127.0.0.1:7777/cb']);
    const { verifier, challenge } = pkcePair();
    const browser = new Browser();
    const href = authorizeUrl(authz.issuer, { clientId, redirectUri: 'http://127.0.0.1:7777/cb', resource: authz.agentUrl, scope: 'slots:find', state: 's1', challenge });
    const page = await signInAndOpenConsent(browser, authz.issuer, authz.ownerJwk, href);
    expect(page.status).toBe(200);
    const decision = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
    const code = callbackParams(decision.location!).get('code')!;
    const without = await redeem({ clientId, verifier, code });
    expect([without.status, without.body.error]).toEqual([400, 'invalid_request']);
    expect(String(without.body.error_description)).toContain('redirect_uri');
    const withIt = await redeem({ clientId, verifier, code }, { redirect_uri: 'http://127.0.0.1:7777/cb' });
    expect(withIt.status, JSON.stringify(withIt.body)).toBe(200);
  });
});
