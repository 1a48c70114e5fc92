// The authorization server's HTML pages from outside: CSRF on consent, grant
// revocation and sign-out (refused with 403, nothing changed), and every
// HTML-returning route, error pages included, answering with a strict
// Content-Security-Policy, frame-ancestors 'none' and X-Frame-Options: DENY
// (clickjacking). The resource servers and the CLI's callback listener return
// no HTML at all, which is checked too.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { startLoopbackListener } from '../../src/client/loopback.js';
import { CLIENT_METADATA } from '../../src/client/provider.js';
import { ownerAssertion, ownerLink } from '../support/authz.js';
import { Browser, authorizeUrl, csrfOf, hiddenField, parseConsentForm, pkcePair, postForm, postJson, registerDeviceClient, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { REDIRECT, expectStrictPage, routesOf, startStack, stateChangedBy, userTokens, type Stack } from './stack.js';

// Accounts added and signed in by the dozen: scrypt at N=2^12 here (test/support/cheap-scrypt.ts).
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
  await addUser(stack.store, { name: 'dora', password: 'dora has a long password', timeZone: 'UTC' }, Date.now());
  await addUser(stack.store, { name: 'erin', password: 'erin has a long password', timeZone: 'UTC' }, Date.now());
});
afterAll(async () => stack?.close());


async function ownerConsent(browser = new Browser()) {
  const clientId = await registerPublicClient(stack.issuer, [REDIRECT]);
  const page = await signInAndOpenConsent(
    browser,
    stack.issuer,
    stack.ownerJwk,
    authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge }),
  );
  expect(page.status).toBe(200);
  return { browser, form: parseConsentForm(page.html), page };
}

/** Signs in with a password for `next` (a session good for that page only); returns the browser and the page it leads to. */
async function passwordSignIn(name: string, password: string, next = '/grants', browser = new Browser()) {
  const form = await browser.get(`${stack.issuer}/login?next=${encodeURIComponent(next)}`);
  const res = await browser.post(`${stack.issuer}/login`, { csrf: csrfOf(form.html), next, username: name, password });
  expect(res.status).toBe(303);
  return { browser, page: new URL(res.location!, stack.issuer).href };
}

describe('CSRF', () => {
  it('on consent: a forged or missing CSRF token, or another session’s, is 403; no code, no grant', async () => {
    const { browser, form } = await ownerConsent();
    const other = await ownerConsent();
    for (const [name, who, fields] of [
      ['forged', browser, { ...form, csrf: 'forged', decision: 'approve' }],
      ['missing', browser, { request: form.request, decision: 'approve' }],
      ['another session’s token', browser, { ...form, csrf: other.form.csrf, decision: 'approve' }],
      ['no session (an attacker’s page posting without cookies)', new Browser(), { ...form, decision: 'approve' }],
      ['another session posting this request', other.browser, { ...form, csrf: other.form.csrf, decision: 'approve' }],
    ] as const) {
      const { result: res, changed } = await stateChangedBy(stack, () => who.post(`${stack.issuer}/consent`, fields as Record<string, string | string[]>));
      expect([400, 403], name).toContain(res.status);
      expect(res.location, name).toBeNull();
      expect(changed, name).toEqual([]);
    }
    // The control: the request was left usable, and the real form approves it.
    const ok = await browser.post(`${stack.issuer}/consent`, { ...form, decision: 'approve' });
    expect(ok.status).toBe(303);
    expect(new URL(ok.location!).searchParams.get('code')).toBeTruthy();
  });

  it('on consent: another session posting this request with the request’s own CSRF token is 403, refused by the session binding alone; no code, no grant', async () => {
    // The attacker holds a session of their own (their own consent page) and the victim's request
    // id and CSRF token (say, from a leaked form): the token matches the request, so only the check
    // that the decision comes from the session that saw the page can refuse it.
    const victim = await ownerConsent();
    const attacker = await ownerConsent();
    for (const decision of ['approve', 'deny'] as const) {
      const { result: res, changed } = await stateChangedBy(stack, () => attacker.browser.post(`${stack.issuer}/consent`, { ...victim.form, decision }));
      expect(res.status, decision).toBe(403);
      expect(res.location, decision).toBeNull();
      expectStrictPage(`consent 403 (another session, ${decision})`, res);
      expect(changed, decision).toEqual([]);
    }
    // The attacker's own request and the victim's are still theirs to decide.
    const mine = await victim.browser.post(`${stack.issuer}/consent`, { ...victim.form, decision: 'approve' });
    expect(mine.status).toBe(303);
    expect(new URL(mine.location!).searchParams.get('code')).toBeTruthy();
    const theirs = await attacker.browser.post(`${stack.issuer}/consent`, { ...attacker.form, decision: 'deny' });
    expect(theirs.status).toBe(303);
    expect(new URL(theirs.location!).searchParams.get('error')).toBe('access_denied');
  });

  it('on /grants/revoke: a forged token, or a post without the session, is 403; the grant stays', async () => {
    // A delegation of dora's to revoke.
    const { clientId } = { clientId: await registerPublicClient(stack.issuer, [REDIRECT]) };
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge });
    const forConsent = await passwordSignIn('dora', 'dora has a long password', href.slice(stack.issuer.length));
    const consent = await forConsent.browser.get(forConsent.page);
    expect(consent.status).toBe(200);
    expect((await forConsent.browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' })).status).toBe(303);
    const { browser, page: grantsUrl } = await passwordSignIn('dora', 'dora has a long password');
    const page = await browser.get(grantsUrl);
    const grant = /name="grant" value="([^"]+)"/.exec(page.html)![1]!;
    const csrf = csrfOf(page.html);
    const signin = hiddenField(page.html, 'signin');
    const erin = await passwordSignIn('erin', 'erin has a long password');
    const [erinCsrf, erinSignIn] = [csrfOf((await erin.browser.get(erin.page)).html), new URL(erin.page).searchParams.get('signin')!];
    for (const [name, who, fields] of [
      ['forged', browser, { grant, csrf: 'forged', signin }],
      ['missing', browser, { grant, signin }],
      ['no sign-in value (a cookie taken through another port comes without it)', browser, { grant, csrf }],
      ['no session', new Browser(), { grant, csrf, signin }],
      ['another user’s session and token', erin.browser, { grant, csrf: erinCsrf, signin: erinSignIn }],
      ['another user’s session with the victim’s token', erin.browser, { grant, csrf, signin }],
      ['the session of dora’s consent, with its token', forConsent.browser, { grant, csrf: csrfOf(consent.html), signin }],
    ] as const) {
      const { result: res, changed } = await stateChangedBy(stack, () => who.post(`${stack.issuer}/grants/revoke`, fields as Record<string, string>));
      expect([403, 404], name).toContain(res.status);
      expect(changed, name).toEqual([]);
      expect((await stack.store.grantById(grant))!.revokedAt, name).toBeNull();
    }
    expect((await browser.post(`${stack.issuer}/grants/revoke`, { grant, csrf, signin })).status).toBe(303);
    expect((await stack.store.grantById(grant))!.revokedAt).not.toBeNull();
  });

  it('on /logout: a forged or missing token is 403 and the session stays', async () => {
    const { browser, page } = await passwordSignIn('dora', 'dora has a long password');
    const csrf = csrfOf((await browser.get(page)).html);
    for (const fields of [{ csrf: 'forged' }, {}] as Array<Record<string, string>>) {
      const { result: res, changed } = await stateChangedBy(stack, () => browser.post(`${stack.issuer}/logout`, fields));
      expect(res.status).toBe(403);
      expect(changed).toEqual([]);
      expect((await browser.get(page)).status).toBe(200);
    }
    expect((await browser.post(`${stack.issuer}/logout`, { csrf })).status).toBe(200);
    expect((await browser.get(page)).status).toBe(403);
  });
});

describe('script injection through what a client registers', () => {
  it('a client named <script> is shown escaped on the consent page, with no link; javascript: URIs are not registered', async () => {
    const hostile = {
      client_name: '<script>alert(1)</script><img src=x onerror=alert(2)>',
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
    };
    // RFC 7591 §2: these are URLs of web pages (found in review, s25rfc: stored and echoed).
    for (const [field, value] of [['client_uri', 'javascript:alert(3)'], ['logo_uri', 'javascript:alert(4)'], ['policy_uri', 'javascript:alert(5)']]) {
      const refused = await postJson(`${stack.issuer}/register`, { ...hostile, [field!]: value });
      expect([refused.status, refused.body.error]).toEqual([400, 'invalid_client_metadata']);
    }
    const reg = await postJson(`${stack.issuer}/register`, hostile);
    expect(reg.status).toBe(201);
    const browser = new Browser();
    const page = await signInAndOpenConsent(
      browser,
      stack.issuer,
      stack.ownerJwk,
      authorizeUrl(stack.issuer, { clientId: String(reg.body.client_id), redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge }),
    );
    expect(page.status).toBe(200);
    expect(page.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page.html).not.toMatch(/<script|<img|javascript:|<[^>]*\son\w+=/i);
    expectStrictPage('consent page of a hostile client', await browser.get(page.url));
  });
});

describe('where the consent page says the app that asked is (RFC 8628 §5.4, remote phishing)', () => {
  const HERE = 'The app that asked runs on this computer';
  const ELSEWHERE = 'The app that asked is on another device';

  it('a device request’s consent page (its redirect URI is the AS’s own, on loopback) warns that the app is on another device, and never says it runs on this computer', async () => {
    // What a phisher does: start a device authorization for an agent and send the victim the link.
    const device = await postForm(`${stack.issuer}/device_authorization`, { client_id: await registerDeviceClient(stack.issuer), resource: stack.agentUrl });
    expect(device.status, JSON.stringify(device.body)).toBe(200);
    const complete = String(device.body.verification_uri_complete);
    const userCode = String(device.body.user_code);
    // The victim signs in, confirms the code, and gets the consent page.
    const browser = new Browser();
    const confirm = await browser.follow(await ownerLink(stack, complete.slice(stack.issuer.length)));
    expect(confirm.status, confirm.html).toBe(200);
    const consent = await browser.post(`${stack.issuer}/device`, { user_code: userCode, csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
    expect(consent.status).toBe(200);
    expect(consent.html).toContain('action="/consent"');
    expect(consent.html).not.toContain(HERE);
    expect(consent.html).toContain(ELSEWHERE);
    expect(consent.html).toContain(`the code <strong>${userCode}</strong>`);
    expect(consent.html).toContain('Approve only if you started this sign-in yourself');
    expect(consent.html).toContain('If someone sent you this code or link, choose Deny.');
  });

  it('a loopback client’s code flow (the control) still says the app runs on this computer, with no device warning', async () => {
    const { page } = await ownerConsent();
    expect(page.html).toContain(`${HERE}; after you decide, you go back to it.`);
    expect(page.html).not.toContain(ELSEWHERE);
  });
});

describe('a look-alike of delegate’s own CLI (RFC 6749 §10.2; found in review: a client registered as "delegate CLI" got a consent page word for word the real CLI’s)', () => {
  const UNCHECKED = '(name given by the app, not checked)';
  const OWN = 'Your own <code>delegate</code> command on this computer started this request';
  const LOOKALIKE_REDIRECT = 'http://127.0.0.1:47999/cb';

  it('registers under the CLI’s name, but its consent page says the name is not checked, and shows its id, registration and redirect URI', async () => {
    const reg = await postJson(`${stack.issuer}/register`, { ...CLIENT_METADATA, redirect_uris: [LOOKALIKE_REDIRECT] });
    expect(reg.status).toBe(201);
    const lookalike = String(reg.body.client_id);
    const href = authorizeUrl(stack.issuer, { clientId: lookalike, redirectUri: LOOKALIKE_REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge });
    // Signed in with a password for this request (a session is good for the page its sign-in led to).
    const signedIn = await passwordSignIn('dora', 'dora has a long password', href.slice(stack.issuer.length));
    const page = await signedIn.browser.get(signedIn.page);
    expect(page.status).toBe(200);
    expect(page.html).toContain(`<strong>delegate CLI</strong> <span class="warn">${UNCHECKED}</span> asks you`);
    expect(page.html).toContain('This server has not checked who made this app: anyone can register an app under any name.');
    expect(page.html).toContain(`App id <code>${lookalike}</code>, registered `);
    expect(page.html).toContain(`its answer goes to <code>${LOOKALIKE_REDIRECT}</code>`);
    expect(page.html).not.toContain(OWN);
    expectStrictPage('consent page of a look-alike client', page);
  });

  it('the real CLI’s request, which the owner’s CLI signed the sign-in for, is not marked (the control)', async () => {
    const reg = await postJson(`${stack.issuer}/register`, CLIENT_METADATA);
    expect(reg.status).toBe(201);
    const page = await signInAndOpenConsent(
      new Browser(),
      stack.issuer,
      stack.ownerJwk,
      authorizeUrl(stack.issuer, { clientId: String(reg.body.client_id), redirectUri: 'http://127.0.0.1:50123/callback', resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge }),
    );
    expect(page.status).toBe(200);
    expect(page.html).toContain('<strong>delegate CLI</strong> asks you');
    expect(page.html).toContain(OWN);
    expect(page.html).not.toContain(UNCHECKED);
    expect(page.html).not.toContain('has not checked who made this app');
  });

  it('on the device flow too: the confirmation and consent pages of a look-alike’s device request say the name is not checked', async () => {
    const reg = await postJson(`${stack.issuer}/register`, { ...CLIENT_METADATA, redirect_uris: [LOOKALIKE_REDIRECT] });
    const device = await postForm(`${stack.issuer}/device_authorization`, { client_id: String(reg.body.client_id), resource: stack.agentUrl });
    expect(device.status).toBe(200);
    const { browser, page: confirmUrl } = await passwordSignIn('erin', 'erin has a long password', String(device.body.verification_uri_complete).slice(stack.issuer.length));
    const confirm = await browser.get(confirmUrl);
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain(`<strong>delegate CLI</strong> <span class="warn">${UNCHECKED}</span> wants you`);
    const consent = await browser.post(`${stack.issuer}/device`, {
      user_code: String(device.body.user_code),
      csrf: hiddenField(confirm.html, 'csrf'),
      signin: hiddenField(confirm.html, 'signin'),
      decision: 'continue',
    });
    expect(consent.status).toBe(200);
    expect(consent.html).toContain(UNCHECKED);
    expect(consent.html).toContain('has not checked who made this app');
    // The device's page names no redirect URI: the answer stays on this server for the device.
    expect(consent.html).not.toContain('its answer goes to');
  });

  it('the real CLI’s device request, confirmed through the owner’s link, is not marked (the control)', async () => {
    const reg = await postJson(`${stack.issuer}/register`, CLIENT_METADATA);
    const device = await postForm(`${stack.issuer}/device_authorization`, { client_id: String(reg.body.client_id), resource: stack.agentUrl });
    const browser = new Browser();
    const confirm = await browser.follow(await ownerLink(stack, String(device.body.verification_uri_complete).slice(stack.issuer.length)));
    expect(confirm.status).toBe(200);
    expect(confirm.html).not.toContain(UNCHECKED);
    const consent = await browser.post(`${stack.issuer}/device`, { user_code: String(device.body.user_code), csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
    expect(consent.status).toBe(200);
    expect(consent.html).not.toContain(UNCHECKED);
    expect(consent.html).toContain(OWN);
  });
});

describe('every HTML page: strict CSP, frame-ancestors and X-Frame-Options (clickjacking)', () => {
  it('GET /authorize: the consent page, the sign-in page, and its error page', async () => {
    const { browser, page } = await ownerConsent();
    const consent = await browser.get(page.url);
    expect(consent.status).toBe(200);
    expectStrictPage('consent page', consent);
    const anonymous = await new Browser().get(page.url);
    expect(anonymous.status).toBe(403);
    expectStrictPage('sign-in page from /authorize', anonymous);
    const error = await browser.get(`${stack.issuer}/authorize?client_id=nobody&response_type=code`);
    expect(error.status).toBe(400);
    expectStrictPage('authorize error page', error);
  });

  it('POST /consent: its error pages', async () => {
    const { browser, form } = await ownerConsent();
    const forged = await browser.post(`${stack.issuer}/consent`, { ...form, csrf: 'x', decision: 'approve' });
    expectStrictPage(`consent ${forged.status}`, forged);
    const crossSite = await browser.post(`${stack.issuer}/consent`, { ...form, decision: 'approve' }, { origin: 'http://evil.example' });
    expectStrictPage(`consent ${crossSite.status}`, crossSite);
    const missing = await browser.post(`${stack.issuer}/consent`, { csrf: form.csrf, decision: 'approve' });
    expectStrictPage(`consent ${missing.status}`, missing);
    expect((await browser.post(`${stack.issuer}/consent`, { ...form, decision: 'deny' })).status).toBe(303);
    const expired = await browser.post(`${stack.issuer}/consent`, { ...form, decision: 'approve' });
    expectStrictPage(`consent ${expired.status}`, expired);
    expect([forged.status, crossSite.status, missing.status, expired.status]).toEqual([403, 403, 400, 400]);
  });

  it('GET /login/owner: every error page', async () => {
    const browser = new Browser();
    const used = await ownerAssertion(stack.ownerJwk, stack.issuer, { next: '/authorize?x=1' });
    expect((await browser.get(`${stack.issuer}/login/owner?assertion=${used}&next=${encodeURIComponent('/authorize?x=1')}`)).status).toBe(303);
    for (const [name, url] of [
      ['incomplete', `${stack.issuer}/login/owner`],
      ['unsafe next', `${stack.issuer}/login/owner?assertion=x&next=${encodeURIComponent('https://evil.example/')}`],
      ['invalid assertion', `${stack.issuer}/login/owner?assertion=x.y.z&next=${encodeURIComponent('/authorize?x=1')}`],
      ['used assertion', `${stack.issuer}/login/owner?assertion=${used}&next=${encodeURIComponent('/authorize?x=1')}`],
    ]) {
      const res = await browser.get(url!);
      expect(res.status, name).toBeGreaterThanOrEqual(400);
      expectStrictPage(`owner login: ${name}`, res);
    }
  });

  it('GET and POST /login: the form, a wrong password, a refused post', async () => {
    const browser = new Browser();
    const form = await browser.get(`${stack.issuer}/login`);
    expect(form.status).toBe(200);
    expectStrictPage('login form', form);
    const wrong = await browser.post(`${stack.issuer}/login`, { csrf: csrfOf(form.html), next: '/grants', username: 'erin', password: 'wrong password' });
    expect(wrong.status).toBe(400);
    expectStrictPage('login 400', wrong);
    const refused = await new Browser().post(`${stack.issuer}/login`, { csrf: 'x', next: '/grants', username: 'erin', password: 'x' });
    expect(refused.status).toBe(403);
    expectStrictPage('login 403', refused);
    // The 429 page is checked where the rate limit is reached: test/security/secrets.test.ts › login brute force.
  });

  it('/grants, /grants/revoke and /logout: the page, the sign-in page and the error pages', async () => {
    const signedIn = await passwordSignIn('erin', 'erin has a long password');
    const browser = signedIn.browser;
    const page = await browser.get(signedIn.page);
    expectStrictPage('grants page', page);
    expectStrictPage('grants sign-in', await new Browser().get(`${stack.issuer}/grants`));
    const csrf = csrfOf(page.html);
    const signin = new URL(signedIn.page).searchParams.get('signin')!;
    const forged = await browser.post(`${stack.issuer}/grants/revoke`, { grant: 'grt_x', csrf: 'x', signin });
    expect(forged.status).toBe(403);
    expectStrictPage('grants revoke 403', forged);
    const missing = await browser.post(`${stack.issuer}/grants/revoke`, { grant: 'grt_x', csrf, signin });
    expect(missing.status).toBe(404);
    expectStrictPage('grants revoke 404', missing);
    const logoutForged = await browser.post(`${stack.issuer}/logout`, { csrf: 'x' });
    expectStrictPage('logout 403', logoutForged);
    const signedOut = await browser.post(`${stack.issuer}/logout`, { csrf });
    expect(signedOut.status).toBe(200);
    expectStrictPage('signed out', signedOut);
  });

  it('/device and /device/done: the sign-in page, the code page, the confirmation, the consent page and the error pages', async () => {
    const device = await postForm(`${stack.issuer}/device_authorization`, { client_id: await registerDeviceClient(stack.issuer), resource: stack.agentUrl });
    expect(device.status).toBe(200);
    const complete = String(device.body.verification_uri_complete);
    const anonymous = await new Browser().get(complete);
    expect(anonymous.status).toBe(403);
    expectStrictPage('device sign-in', anonymous);
    const browser = new Browser();
    const confirm = await browser.follow(await ownerLink(stack, complete.slice(stack.issuer.length)));
    expect(confirm.status).toBe(200);
    expectStrictPage('device confirm', await browser.get(complete));
    // The code form needs no session; the wrong-code page, a session for that code (the owner's is bound to this code's page).
    expectStrictPage('device code form', await new Browser().get(`${stack.issuer}/device`));
    const account = await passwordSignIn('erin', 'erin has a long password', '/device?user_code=BBBB-BBBB');
    const wrong = await account.browser.get(account.page);
    expect(wrong.status).toBe(400);
    expectStrictPage('device wrong code', wrong);
    const crossSite = await browser.post(`${stack.issuer}/device`, { user_code: String(device.body.user_code), csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' }, { origin: 'http://evil.example' });
    expect(crossSite.status).toBe(403);
    expectStrictPage('device cross-site', crossSite);
    const consent = await browser.post(`${stack.issuer}/device`, { user_code: String(device.body.user_code), csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
    expect(consent.status).toBe(200);
    expectStrictPage('device consent', consent);
    const decided = await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'deny' });
    const done = await browser.get(new URL(decided.location!, stack.issuer).href);
    expect(done.status).toBe(200);
    expectStrictPage('device done', done);
    const expired = await browser.get(`${stack.issuer}/device/done?state=nope`);
    expect(expired.status).toBe(400);
    expectStrictPage('device done expired', expired);
  });

  it('the routes above are every HTML route the servers have: each route is classed as a page (tested above) or an API (tested below)', () => {
    const pages = ['GET /authorize', 'POST /consent', 'GET /login/owner', 'GET /login', 'POST /login', 'GET /grants', 'POST /grants/revoke', 'POST /logout', 'GET /device', 'POST /device', 'GET /device/done'];
    const apis = [
      'POST /token', 'POST /register', 'POST /revoke', 'POST /introspect', 'GET /revocations', 'POST /audit', 'POST /device_authorization',
      'GET /.well-known/oauth-authorization-server', 'GET /.well-known/jwks.json',
    ];
    expect(routesOf(stack.apps.auth)).toEqual([...pages, ...apis].sort());
    expect(routesOf(stack.apps.calendar)).toEqual(['GET /.well-known/oauth-protected-resource', 'GET /freebusy'].sort());
    expect(routesOf(stack.apps.agent)).toEqual(['DELETE /mcp', 'GET /.well-known/oauth-protected-resource', 'GET /.well-known/oauth-protected-resource/mcp', 'GET /mcp', 'POST /mcp'].sort());
  });

  it('no other route answers HTML: every API route, unknown paths, the resource servers and the CLI’s callback listener', async () => {
    const token = (await userTokens(stack)).accessToken;
    const form = { method: 'POST', body: 'x=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    const answers: Array<[string, Response]> = [
      ['AS 404', await fetch(`${stack.issuer}/nope`)],
      ['AS /authorize/x', await fetch(`${stack.issuer}/authorize/x`)],
      ['AS /token GET', await fetch(`${stack.issuer}/token`)],
      ['AS /token bad', await fetch(`${stack.issuer}/token`, form)],
      ['AS /register bad', await fetch(`${stack.issuer}/register`, { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } })],
      ['AS /revoke bad', await fetch(`${stack.issuer}/revoke`, form)],
      ['AS /introspect bad', await fetch(`${stack.issuer}/introspect`, form)],
      ['AS /audit bad', await fetch(`${stack.issuer}/audit`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })],
      ['AS /device_authorization bad', await fetch(`${stack.issuer}/device_authorization`, form)],
      ['AS metadata', await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)],
      ['AS jwks', await fetch(`${stack.issuer}/.well-known/jwks.json`)],
      ['AS /revocations bad', await fetch(`${stack.issuer}/revocations?since=x`)],
      ['calendar 404', await fetch(`${stack.calendarUrl}/nope`)],
      ['calendar 401', await fetch(`${stack.calendarUrl}/freebusy`)],
      ['calendar 400', await fetch(`${stack.calendarUrl}/freebusy?from=x`, { headers: { authorization: `Bearer ${token}` } })],
      ['agent 404', await fetch(`${stack.agentUrl}/nope`)],
      ['agent 401', await fetch(stack.agentUrl, { method: 'POST' })],
      ['agent 405', await fetch(stack.agentUrl, { headers: { authorization: `Bearer ${token}` } })],
      ['agent DELETE', await fetch(stack.agentUrl, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })],
      ['agent metadata', await fetch(`http://127.0.0.1:${stack.ports.agent}/.well-known/oauth-protected-resource/mcp`)],
      ['calendar metadata', await fetch(`${stack.calendarUrl}/.well-known/oauth-protected-resource`)],
    ];
    for (const [name, res] of answers) {
      expect(res.headers.get('content-type') ?? '', name).not.toMatch(/html/);
      await res.body?.cancel();
    }
    const listener = await startLoopbackListener({ timeoutMs: 5_000 });
    try {
      listener.expect({ state: 's'.repeat(43), issuer: stack.issuer, requireIss: true });
      const waiting = listener.waitForCode().catch(() => undefined);
      const page = await fetch(`${listener.redirectUrl}?code=c&state=wrong&iss=${encodeURIComponent(stack.issuer)}`);
      expect(page.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(page.headers.get('x-content-type-options')).toBe('nosniff');
      await page.text();
      await waiting;
    } finally {
      await listener.close();
    }
  });
});

describe('telling apps apart where the owner revokes, and naming one destination (found in review: consent-ui)', () => {
  const UNCHECKED = '<span class="warn">(name given by the app, not checked)</span>';

  beforeAll(async () => {
    await addUser(stack.store, { name: 'fay', password: 'fay has a long password', timeZone: 'UTC' }, Date.now());
    await addUser(stack.store, { name: 'gus', password: 'gus has a long password', timeZone: 'UTC' }, Date.now());
  });

  /** `name` signs in with a password for the client's /authorize, and approves on its consent page; returns that page. */
  async function approve(name: string, clientId: string, redirectUri: string) {
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge });
    const signedIn = await passwordSignIn(name, `${name} has a long password`, href.slice(stack.issuer.length));
    const consent = await signedIn.browser.get(signedIn.page);
    expect(consent.status, consent.html).toBe(200);
    const decided = await signedIn.browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
    expect(decided.status).toBe(303);
    return consent;
  }

  /** The user's /grants page, one entry per delegation row. */
  async function grantRows(name: string): Promise<string[]> {
    const { browser, page } = await passwordSignIn(name, `${name} has a long password`);
    const res = await browser.get(page);
    expect(res.status).toBe(200);
    return res.html.split('<div class="who">').slice(1);
  }

  it('/grants: two apps that both registered as "delegate CLI" get rows that tell them apart (id, answers’ host, registration, approval), each name marked unchecked', async () => {
    const apps: Array<{ id: string; redirect: string; host: string }> = [];
    for (const [redirect, host] of [['http://127.0.0.1:47960/callback', '127.0.0.1:47960'], ['http://127.0.0.1:47961/cb', '127.0.0.1:47961']] as const) {
      const reg = await postJson(`${stack.issuer}/register`, { ...CLIENT_METADATA, redirect_uris: [redirect] });
      expect(reg.status).toBe(201);
      apps.push({ id: String(reg.body.client_id), redirect, host });
      await approve('fay', String(reg.body.client_id), redirect);
    }
    const rows = await grantRows('fay');
    expect(rows).toHaveLength(2);
    for (const app of apps) {
      const mine = rows.filter((r) => r.includes(`App id <code>${app.id}</code>`));
      expect(mine, app.id).toHaveLength(1);
      const row = mine[0]!;
      expect(row).toContain(`through <strong>delegate CLI</strong> ${UNCHECKED}`);
      expect(row).toMatch(new RegExp(`registered \\d+ \\w+ \\d{4}, \\d\\d:\\d\\d; its answers go to <code>${app.host}</code>; approved \\d+ \\w+ \\d{4}, \\d\\d:\\d\\d\\.`));
      for (const other of apps.filter((a) => a !== app)) expect(row).not.toContain(other.id);
    }
    expect(rows[0]).not.toEqual(rows[1]);
  });

  // Review regress20g, 8: a client known by its metadata document's URL never registered; /grants said "registered".
  it('/grants says when a metadata-document client was first seen here, as the consent page does, not "registered"', async () => {
    await addUser(stack.store, { name: 'ida', password: 'ida has a long password', timeZone: 'UTC' }, Date.now());
    const redirect = 'http://127.0.0.1:47990/callback';
    const reg = await postJson(`${stack.issuer}/register`, { ...CLIENT_METADATA, redirect_uris: [redirect] });
    expect(reg.status).toBe(201);
    await approve('ida', String(reg.body.client_id), redirect);
    // The same delegation held by a client as a metadata document names it (its record keeps the document's client_id).
    const registered = (await stack.store.clientById(String(reg.body.client_id)))!;
    const [grant] = (await stack.store.listGrants()).filter((g) => g.clientId === registered.clientId);
    const documentId = 'https://app.example/client.json';
    await stack.store.createClient({ ...registered, clientId: documentId, metadata: { ...registered.metadata, client_id: documentId } });
    await stack.store.createGrant({ ...grant!, id: `${grant!.id}doc`, clientId: documentId });
    const rows = await grantRows('ida');
    const row = rows.find((r) => r.includes(`App id <code>${documentId}</code>`));
    expect(row).toMatch(/, first seen here \d+ \w+ \d{4}, \d\d:\d\d;/);
    expect(row).not.toContain('registered');
    expect(rows.find((r) => r.includes(`App id <code>${registered.clientId}</code>`))).toMatch(/, registered \d+/);
  });

  it('an app registered with an empty, blank or invisible name is "an app with no name" on /grants, the consent page and the device page, never a bare gap', async () => {
    for (const [i, clientName] of ['', '   ', '\u200b'].entries()) {
      const redirect = `http://127.0.0.1:4797${i}/cb`;
      let reg = await postJson(`${stack.issuer}/register`, { ...CLIENT_METADATA, client_name: clientName, redirect_uris: [redirect] });
      if (clientName === '\u200b') {
        // Refused at registration since stop 18 (a format character: src/terminal-text.ts); a database from before may
        // hold such a name, which the pages must still show as none.
        expect([reg.status, reg.body.error]).toEqual([400, 'invalid_client_metadata']);
        reg = await postJson(`${stack.issuer}/register`, { ...CLIENT_METADATA, client_name: 'placeholder', redirect_uris: [redirect] });
        const client = (await stack.store.clientById(String(reg.body.client_id)))!;
        await stack.store.updateClient({ ...client, clientName });
      }
      expect(reg.status, JSON.stringify(clientName)).toBe(201);
      const consent = await approve('gus', String(reg.body.client_id), redirect);
      expect(consent.html, JSON.stringify(clientName)).toContain('<p><strong>An app with no name</strong> asks you');
      expect(consent.html).toContain(`App id <code>${String(reg.body.client_id)}</code>`);

      const device = await postForm(`${stack.issuer}/device_authorization`, { client_id: String(reg.body.client_id), resource: stack.agentUrl });
      expect(device.status, JSON.stringify(device.body)).toBe(200);
      const { browser, page: confirmUrl } = await passwordSignIn('gus', 'gus has a long password', String(device.body.verification_uri_complete).slice(stack.issuer.length));
      const confirm = await browser.get(confirmUrl);
      expect(confirm.status).toBe(200);
      expect(confirm.html, JSON.stringify(clientName)).toContain('<p><strong>An app with no name</strong> wants you');
    }
    const rows = await grantRows('gus');
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row).toContain('through <strong>an app with no name</strong></p>');
      expect(row).toMatch(/App id <code>[^<]+<\/code>, registered /);
    }
  });

  it('a look-alike (IDN) redirect URI appears on the consent page and on /grants only in punycode, as the browser resolves it: one destination, the one the warning names', async () => {
    // Registered only in punycode, as the browser is sent to it: in Unicode it is no RFC 3986 URI (found in review,
    // s25rfc; redirect-uri-as-written.test.ts), and refused.
    const unicode = await postJson(`${stack.issuer}/register`, { ...CLIENT_METADATA, redirect_uris: ['https://accounts.g\u043e\u043egle.com/cb'] }); // two Cyrillic о
    expect([unicode.status, unicode.body.error]).toEqual([400, 'invalid_redirect_uri']);
    const lookalike = 'https://accounts.xn--ggle-55da.com/cb';
    const reg = await postJson(`${stack.issuer}/register`, { ...CLIENT_METADATA, redirect_uris: [lookalike] });
    expect(reg.status).toBe(201);
    const consent = await approve('fay', String(reg.body.client_id), lookalike);
    expect(consent.html).toContain('its answer goes to <code>https://accounts.xn--ggle-55da.com/cb</code>');
    expect(consent.html).toContain('you will be sent to <strong>accounts.xn--ggle-55da.com</strong>');
    expect(consent.html).not.toContain('g\u043e\u043egle');
    expect(consent.html).not.toContain('google.com');
    const row = (await grantRows('fay')).find((r) => r.includes(String(reg.body.client_id)))!;
    expect(row).toContain('its answers go to <code>accounts.xn--ggle-55da.com</code>');
    expect(row).not.toContain('g\u043e\u043egle');
  });
});
