// Server mode from outside: named accounts sign in with a password (rate
// limited per account and per address), see their grants, revoke one with a
// CSRF-protected button, and sign out; the forms refuse cross-site posts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { addUser, buildAuthServer } from '../../src/authz/index.js';
import { openStore } from '../../src/store/index.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, csrfOf, parseConsentForm, pkcePair, registerPublicClient } from '../support/oauth-flow.js';
import { REDIRECT, exchange, redeem } from './helpers.js';
import { failAuditRecords } from '../support/fail-audit.js';

// Sign-ins by the dozen, counted by the rate limits: scrypt at N=2^12 here (test/support/cheap-scrypt.ts).
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
  await addUser(authz.store, { name: 'alice', password: 'correct horse battery', timeZone: 'Europe/Paris' }, Date.now());
  await addUser(authz.store, { name: 'bob', password: 'another good password', timeZone: 'UTC' }, Date.now());
  await addUser(authz.store, { name: 'carol', password: 'carol has a password', timeZone: 'UTC' }, Date.now());
  await addUser(authz.store, { name: 'dave', password: 'dave has a password', timeZone: 'UTC' }, Date.now());
  await addUser(authz.store, { name: 'erin', password: 'erin has a password', timeZone: 'UTC' }, Date.now());
  await addUser(authz.store, { name: 'frank', password: 'frank has a password', timeZone: 'UTC' }, Date.now());
});
afterAll(async () => authz.close());

function loginFields(html: string): Record<string, string> {
  // As a browser reads attribute values: with HTML entities decoded.
  const decode = (v: string) => v.replace(/&(amp|lt|gt|quot|#39);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]!);
  const value = (name: string) => decode(new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? '');
  return { csrf: value('csrf'), next: value('next') };
}

async function signIn(browser: Browser, name: string, password: string, next = '/grants') {
  const form = await browser.get(`${authz.issuer}/login?next=${encodeURIComponent(next)}`);
  return browser.post(`${authz.issuer}/login`, { ...loginFields(form.html), username: name, password });
}

/** Where a sign-in for /grants leads: the page with a random sign-in value in its URL (bound-pages.ts). */
const GRANTS_VIEW = /^\/grants\?signin=[A-Za-z0-9_-]{43}$/;

/** Signs in for /grants and opens the page it leads to: the page, its URL (the session's one page), and the sign-in value in it. */
async function openGrants(browser: Browser, name: string, password: string) {
  const login = await signIn(browser, name, password);
  expect(login.status).toBe(303);
  expect(login.location).toMatch(GRANTS_VIEW);
  const url = new URL(login.location!, authz.issuer).href;
  const page = await browser.get(url);
  expect(page.status).toBe(200);
  return { url, page, csrf: /name="csrf" value="([^"]+)"/.exec(page.html)![1]!, signin: new URL(url).searchParams.get('signin')! };
}

/** Signs `name` in for a new public client's request to CalendarAgent, approves it, and redeems the code. */
async function approvedTokens(browser: Browser, name: string, password: string) {
  const clientId = await registerPublicClient(authz.issuer);
  const { verifier, challenge } = pkcePair();
  const href = authorizeUrl(authz.issuer, { clientId, redirectUri: REDIRECT, resource: authz.agentUrl, state: 's', challenge });
  const login = await signIn(browser, name, password, href.slice(authz.issuer.length));
  const consent = await browser.get(new URL(login.location!, authz.issuer).href);
  expect(consent.status, consent.html.slice(0, 500)).toBe(200);
  const approved = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
  return redeem(authz, { clientId, code: callbackParams(approved.location!).get('code')!, verifier });
}

describe('password sign-in', () => {
  it('signs in with the right password and lands on the next page', async () => {
    const browser = new Browser();
    // The form says how long and for what a sign-in lasts.
    const form = (await browser.get(`${authz.issuer}/login?next=%2Fgrants`)).html;
    expect(form).toContain('Signing in lets this browser go on to this one page, for 10 minutes');
    // An http loopback issuer: the owner needs no password there; for /grants, `delegate grants list` is theirs (login
    // signs in its own request and never opens /grants).
    expect(form).toContain('run <code>delegate grants list</code> here');
    const res = await signIn(browser, 'alice', 'correct horse battery');
    expect(res.status).toBe(303);
    expect(res.location).toMatch(GRANTS_VIEW);
    expect((await browser.get(new URL(res.location!, authz.issuer).href)).html).toContain('Signed in as <strong>alice</strong>');
  });

  it('refuses a wrong password with the same answer as an unknown name, and starts no session', async () => {
    const browser = new Browser();
    const wrong = await signIn(browser, 'alice', 'not the password');
    const unknown = await signIn(browser, 'mallory', 'not the password');
    expect(wrong.status).toBe(400);
    expect(unknown.status).toBe(400);
    expect(wrong.html).toContain('That name and password do not match.');
    expect(unknown.html).toContain('That name and password do not match.');
    expect((await browser.get(`${authz.issuer}/grants`)).status).toBe(403);
  });

  it('rate-limits wrong passwords per account, even when the right one comes next', async () => {
    const browser = new Browser();
    for (let i = 0; i < 5; i++) expect((await signIn(browser, 'bob', `guess ${i} wrong`)).status).toBe(400);
    const blocked = await signIn(browser, 'bob', 'another good password');
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await browser.get(`${authz.issuer}/grants`)).status).toBe(403);
    const events = (await authz.store.listAudit()).filter((r) => r.event === 'sign_in_failed');
    expect(events.length).toBeGreaterThanOrEqual(5);
    // Each says where the attempt came from (found in review: no address, and for an unknown name no user either).
    for (const event of events) expect(event.detail).toEqual({ method: 'password', source: '127.0.0.1' });
  });

  it('checks no more guesses sent all at once than the limit allows: each is counted before it is checked', async () => {
    const browsers = Array.from({ length: 12 }, () => new Browser());
    const forms = await Promise.all(browsers.map((b) => b.get(`${authz.issuer}/login?next=%2Fgrants`)));
    const before = (await authz.store.listAudit()).filter((r) => r.event === 'sign_in_failed').length;
    const answers = await Promise.all(browsers.map((b, i) => b.post(`${authz.issuer}/login`, { ...loginFields(forms[i]!.html), username: 'dave', password: `guess ${i}` })));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 400)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(7);
    const checked = (await authz.store.listAudit()).filter((r) => r.event === 'sign_in_failed').length - before;
    expect(checked).toBe(5);
  });

  it('a right password forgets the failures before it, not the guesses still being checked after it', async () => {
    const browsers = Array.from({ length: 5 }, () => new Browser());
    const forms = await Promise.all(browsers.map((b) => b.get(`${authz.issuer}/login?next=%2Fgrants`)));
    const passwords = ['erin has a password', 'guess 1', 'guess 2', 'guess 3', 'guess 4'];
    const answers = await Promise.all(browsers.map((b, i) => b.post(`${authz.issuer}/login`, { ...loginFields(forms[i]!.html), username: 'erin', password: passwords[i]! })));
    expect(answers.map((a) => a.status)).toEqual([303, 400, 400, 400, 400]);
    // Four failures stand: one more wrong guess is checked (the fifth), then the account waits.
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await signIn(new Browser(), 'erin', `later guess ${i}`)).status);
    expect(statuses).toEqual([400, 429, 429]);
  });

  it('does not count a right password against the address it came from', async () => {
    // More successful sign-ins from this one address than its limit of failures (20) allows.
    for (let i = 0; i < 22; i++) expect((await signIn(new Browser(), 'alice', 'correct horse battery')).status).toBe(303);
  });

  it('refuses a login form without its CSRF cookie, or from another site', async () => {
    const stranger = new Browser();
    const noCookie = await stranger.post(`${authz.issuer}/login`, { csrf: 'x', next: '/grants', username: 'alice', password: 'correct horse battery' });
    expect(noCookie.status).toBe(403);
    const browser = new Browser();
    const form = await browser.get(`${authz.issuer}/login`);
    const crossSite = await browser.post(`${authz.issuer}/login`, { ...loginFields(form.html), username: 'alice', password: 'correct horse battery' }, { origin: 'https://evil.example' });
    expect(crossSite.status).toBe(403);
  });

  it('never leads anywhere but this server’s own pages', async () => {
    const browser = new Browser();
    const res = await signIn(browser, 'alice', 'correct horse battery', 'https://evil.example/');
    expect(res.location).toMatch(GRANTS_VIEW);
  });

  it('a next path with a control or non-ASCII character in it signs in and goes to /grants, not to a 500', async () => {
    // A link such as /login?next=/authorize?%01x put the character in the form; the right password then ended in a raw 500.
    for (const next of ['/authorize?\u0001x', '/authorize?a\u0000', '/device?\u007f', '/authorize?é', '/authorize? x']) {
      const browser = new Browser();
      const res = await signIn(browser, 'alice', 'correct horse battery', next);
      expect(res.status, JSON.stringify(next)).toBe(303);
      expect(res.location).toMatch(GRANTS_VIEW);
    }
  });
});

describe('the grants page', () => {
  it('lists the user’s delegations and revokes one with its button, ending its tokens', async () => {
    const browser = new Browser();
    const tokens = await approvedTokens(browser, 'alice', 'correct horse battery');
    expect(tokens.status).toBe(200);
    // That session was for the authorization request only; /grants is a sign-in of its own.
    expect((await browser.get(`${authz.issuer}/grants`)).status).toBe(403);

    const { url, page, csrf, signin } = await openGrants(browser, 'alice', 'correct horse battery');
    expect(page.html).toContain('CalendarAgent');
    expect(page.html).toContain('Revoke');
    const grant = /name="grant" value="([^"]+)"/.exec(page.html)![1]!;

    const forged = await browser.post(`${authz.issuer}/grants/revoke`, { grant, csrf: 'forged', signin });
    expect(forged.status).toBe(403);
    expect((await authz.store.grantById(grant))!.revokedAt).toBeNull();
    const noSignIn = await browser.post(`${authz.issuer}/grants/revoke`, { grant, csrf });
    expect(noSignIn.status).toBe(403);
    expect((await authz.store.grantById(grant))!.revokedAt).toBeNull();

    const other = new Browser();
    const carol = await openGrants(other, 'carol', 'carol has a password');
    const foreign = await other.post(`${authz.issuer}/grants/revoke`, { grant, csrf: carol.csrf, signin: carol.signin });
    expect(foreign.status).toBe(404);
    expect((await authz.store.grantById(grant))!.revokedAt).toBeNull();

    const revoked = await browser.post(`${authz.issuer}/grants/revoke`, { grant, csrf, signin });
    expect(revoked.status).toBe(303);
    expect(new URL(revoked.location!, authz.issuer).href).toBe(url);
    expect((await authz.store.grantById(grant))!.revokedAt).not.toBeNull();
    expect((await exchange(authz, String(tokens.body.access_token))).body.error).toBe('invalid_request');
    const after = await browser.get(url);
    expect(after.status).toBe(200);
    expect(after.html).not.toContain(grant);
  });

  it('a revoke whose audit record cannot be written fails and leaves the grant listed; a retry revokes it with one record', async () => {
    // Found in review: with the audit write failing (a full disk), the grant was revoked off the record, and a retry wrote none.
    const browser = new Browser();
    const tokens = await approvedTokens(browser, 'alice', 'correct horse battery');
    expect(tokens.status).toBe(200);
    const grant = String(decodeJwt(String(tokens.body.access_token)).grant_id);
    const { url, page, csrf, signin } = await openGrants(browser, 'alice', 'correct horse battery');
    expect(page.html).toContain(grant);
    const revokedRecords = async () => (await authz.store.listAudit({ grant })).filter((r) => r.event === 'grant_revoked');

    const restore = failAuditRecords(authz.home, 'grant_revoked');
    try {
      expect((await browser.post(`${authz.issuer}/grants/revoke`, { grant, csrf, signin })).status).toBe(500);
      expect((await authz.store.grantById(grant))!.revokedAt).toBeNull();
      expect(await revokedRecords()).toEqual([]);
      expect((await browser.get(url)).html).toContain(grant);
    } finally {
      restore();
    }
    expect((await browser.post(`${authz.issuer}/grants/revoke`, { grant, csrf, signin })).status).toBe(303);
    expect((await authz.store.grantById(grant))!.revokedAt).not.toBeNull();
    expect((await revokedRecords()).map((r) => r.detail)).toEqual([{ by: 'user', via: 'grants page' }]);
    expect((await authz.store.verifyAudit()).ok).toBe(true);
  });

  // Found in review (s23accounts): `users add frank --replace` set a new password and left frank's sessions open, so
  // whoever had the cookie (the reason for a new password, often) still saw /grants and could revoke with it.
  it('a new password ends the account’s sessions: the cookie from before opens /grants no more and revokes nothing', async () => {
    const browser = new Browser();
    const tokens = await approvedTokens(browser, 'frank', 'frank has a password');
    const grant = String(decodeJwt(String(tokens.body.access_token)).grant_id);
    const { url, page, csrf, signin } = await openGrants(browser, 'frank', 'frank has a password');
    expect(page.html).toContain(grant);

    await addUser(authz.store, { name: 'frank', password: 'frank has a new password', timeZone: 'UTC', replace: true }, Date.now(), { by: 'cli' });
    expect((await browser.get(url)).status).toBe(403);
    expect((await browser.get(`${authz.issuer}/grants`)).status).toBe(403);
    expect((await browser.post(`${authz.issuer}/grants/revoke`, { grant, csrf, signin })).status).toBe(403);
    expect((await authz.store.grantById(grant))!.revokedAt).toBeNull();
    // The new password signs in again; the old one does not.
    expect((await signIn(new Browser(), 'frank', 'frank has a password')).status).toBe(400);
    expect((await openGrants(new Browser(), 'frank', 'frank has a new password')).page.html).toContain(grant);
    expect((await authz.store.verifyAudit()).ok).toBe(true);
  });

  it('refuses a new account whose name differs from one there only in case (NAME_TAKEN, naming that one)', async () => {
    // The rate limit counts failures per name lower-cased: two such accounts would lock each other out (s23accounts).
    for (const name of ['Alice', 'ALICE']) {
      const added = addUser(authz.store, { name, password: 'a long and secret password', timeZone: 'UTC' }, Date.now());
      await expect(added).rejects.toMatchObject({ code: 'NAME_TAKEN', message: 'There is already an account named alice.' });
    }
    expect(await authz.store.userByName('Alice')).toBeUndefined();
  });

  it('signs out only with the page’s CSRF token', async () => {
    const browser = new Browser();
    const { url, csrf } = await openGrants(browser, 'alice', 'correct horse battery');
    expect((await browser.post(`${authz.issuer}/logout`, { csrf: 'forged' })).status).toBe(403);
    expect((await browser.get(url)).status).toBe(200);
    expect((await browser.post(`${authz.issuer}/logout`, { csrf })).status).toBe(200);
    expect((await browser.get(url)).status).toBe(403);
  });
});

describe('the sign-in page of an https issuer with no password accounts yet', () => {
  // Noticed with review regress20g: it told the visitor to run `delegate login` "there", which at an https-published
  // server stops (exit 1, naming --agent-url); only a named account signs in there.
  it('says nobody can sign in until the operator adds an account, and not to run delegate login; on loopback it still does', async () => {
    const home = mkdtempSync(join(tmpdir(), 'delegate-https-noaccounts-'));
    const store = openStore(join(home, 'delegate.db'));
    const app = await buildAuthServer({ issuer: 'https://auth.example.com', store, sweepIntervalMs: 0 });
    try {
      const page = await app.inject({ method: 'GET', url: '/grants', headers: { host: 'auth.example.com' } });
      expect(page.statusCode).toBe(403);
      expect(page.body).toContain('<code>delegate users add &lt;name&gt;</code>');
      expect(page.body).not.toContain('delegate login');
    } finally {
      await app.close();
      store.close();
      rmSync(home, { recursive: true, force: true });
    }
    const local = await startTestAuthz();
    try {
      const page = await fetch(`${local.issuer}/grants`);
      expect(page.status).toBe(403);
      expect(await page.text()).toContain('Run <code>delegate login</code> there');
    } finally {
      await local.close();
    }
  });
});

describe('cookies on an https issuer (a server deployment)', () => {
  // Found in review: on https the cookies were `delegate_session_443` and `…_login` (Path=/login), which a sibling
  // host under the same domain can plant with Domain=. The `__Host-` prefix makes browsers refuse such a cookie
  // (RFC 6265bis §4.1.3.2): only Secure, Path=/, no Domain, set by this very host.
  it('sets and reads __Host- cookies with Secure, Path=/ and no Domain; the same id under the bare name opens nothing', async () => {
    const home = mkdtempSync(join(tmpdir(), 'delegate-https-'));
    const store = openStore(join(home, 'delegate.db'));
    const app = await buildAuthServer({ issuer: 'https://auth.example.com', store, sweepIntervalMs: 0 });
    try {
      await addUser(store, { name: 'alice', password: 'correct horse battery', timeZone: 'UTC' }, Date.now());
      const host = { host: 'auth.example.com' };
      const cookieOf = (res: { headers: Record<string, unknown> }) => [res.headers['set-cookie']].flat().map(String);
      const expectHostCookie = (line: string, name: string) => {
        expect(line.startsWith(`${name}=`), line).toBe(true);
        expect(line).toMatch(/; Path=\/(;|$)/);
        expect(line).toMatch(/; Secure(;|$)/);
        expect(line).not.toMatch(/domain=/i);
      };
      const form = await app.inject({ method: 'GET', url: '/login?next=%2Fgrants', headers: host });
      const [loginCookie] = cookieOf(form);
      // Review regress20g, 2: `delegate login` by ports does not sign in at an https issuer; the form does not advise it.
      expect(form.body).not.toContain('delegate login');
      expectHostCookie(loginCookie!, '__Host-delegate_session_443_login');
      const csrf = loginFields(form.body).csrf!;
      const post = (cookie: string) =>
        app.inject({
          method: 'POST',
          url: '/login',
          headers: { ...host, cookie, origin: 'https://auth.example.com', 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams({ csrf, next: '/grants', username: 'alice', password: 'correct horse battery' }).toString(),
        });
      // The login form's cookie is read under the name it was set with, and only under it.
      expect((await post(`delegate_session_443_login=${csrf}`)).statusCode).toBe(403);
      const signedIn = await post(`__Host-delegate_session_443_login=${csrf}`);
      expect(signedIn.statusCode).toBe(303);
      const [sessionCookie] = cookieOf(signedIn);
      expectHostCookie(sessionCookie!, '__Host-delegate_session_443');
      const id = sessionCookie!.split(';')[0]!.split('=')[1]!;
      const page = (cookie: string) => app.inject({ method: 'GET', url: signedIn.headers.location as string, headers: { ...host, cookie } });
      const grants = await page(`__Host-delegate_session_443=${id}`);
      expect(grants.statusCode).toBe(200);
      expect(grants.body).toContain('Signed in as <strong>alice</strong>');
      expect((await page(`delegate_session_443=${id}`)).statusCode).toBe(403);
      // Signing out clears the cookie under the same name, Secure (a browser ignores a __Host- Set-Cookie without it).
      const logout = await app.inject({
        method: 'POST',
        url: '/logout',
        headers: { ...host, cookie: `__Host-delegate_session_443=${id}`, origin: 'https://auth.example.com', 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ csrf: csrfOf(grants.body) }).toString(),
      });
      expect(logout.statusCode).toBe(200);
      const [cleared] = cookieOf(logout);
      expectHostCookie(cleared!, '__Host-delegate_session_443');
      expect(cleared).toMatch(/Max-Age=0/);
    } finally {
      await app.close();
      store.close();
      rmSync(home, { recursive: true, force: true });
    }
  });
});
