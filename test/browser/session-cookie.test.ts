// The session cookie in a real browser, against another user's listener on
// a loopback port. Cookies are not isolated by port (RFC 6265 §8.5): Chromium
// sends the authorization server's session cookie to every port of
// 127.0.0.1, and takes one that a page on any of them sets. Found in review:
// a named account signed in with a password (a 12-hour session), then opened
// a link to the real AS whose bad parameter made the AS redirect, with no
// click, to a loopback redirect URI of the attacker's client; the listener
// there got the cookie, with which the reviewer opened /grants as alice,
// approved his own client in her name and got her token. A page on the
// attacker's port could also plant ("toss") the attacker's own session.
// Every session is now good for the one page its sign-in led to, for 10
// minutes: the stolen cookie opens no other page, and a tossed one opens
// none of the victim's.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser as Chromium, BrowserContext } from 'playwright-core';
import { addUser } from '../../src/authz/index.js';
import { readCookie, sessionCookieName, sessionCsrf } from '../../src/authz/session.js';
import { Browser, authorizeUrl, parseConsentForm, pkcePair, registerPublicClient } from '../support/oauth-flow.js';
import { REDIRECT, startStack, stateChangedBy, type Stack } from '../security/stack.js';
import { launchChromium } from './chromium.js';

let stack: Stack;
let chromium: Chromium;
/** Another user's listener on a loopback port: what it was sent, and what its pages set. */
let listener: Server;
let listenerPort: number;
const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
let tossedCookie = '';
let cookieName: string;
/** Alice's delegation, which the thief would like to see and revoke. */
let aliceGrant: string;
/** The thief's (mallory's) client: a public client with a redirect URI on the listener's port. */
let thiefClient: string;

beforeAll(async () => {
  stack = await startStack();
  cookieName = sessionCookieName(stack.issuer);
  chromium = await launchChromium();
  listener = createServer((req, res) => {
    seen.push({ url: req.url!, headers: req.headers });
    if (req.url!.startsWith('/toss')) {
      // A page that sets the AS's session cookie: the host is the same, only the port differs.
      res.writeHead(200, { 'content-type': 'text/html', 'set-cookie': `${cookieName}=${tossedCookie}; Path=/; SameSite=Lax; HttpOnly` });
      return res.end('<p>nothing to see</p>');
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('listener');
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  listenerPort = (listener.address() as { port: number }).port;
  await addUser(stack.store, { name: 'alice', password: 'alice has a long password', timeZone: 'UTC' }, Date.now());
  await addUser(stack.store, { name: 'mallory', password: 'mallory has a long password', timeZone: 'UTC' }, Date.now());
  thiefClient = await registerPublicClient(stack.issuer, [`http://127.0.0.1:${listenerPort}/cb`]);
  // One delegation of alice's, approved on her consent page.
  const aliceClient = await registerPublicClient(stack.issuer, [REDIRECT]);
  const next = authorizeUrl(stack.issuer, { clientId: aliceClient, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 'a', challenge: pkcePair().challenge }).slice(stack.issuer.length);
  const browser = new Browser();
  const form = await browser.get(`${stack.issuer}/login?next=${encodeURIComponent(next)}`);
  const login = await browser.post(`${stack.issuer}/login`, { csrf: /name="csrf" value="([^"]*)"/.exec(form.html)![1]!, next, username: 'alice', password: 'alice has a long password' });
  const consent = await browser.get(new URL(login.location!, stack.issuer).href);
  expect((await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' })).status).toBe(303);
  aliceGrant = (await stack.store.listGrants((await stack.store.userByName('alice'))!.id))[0]!.id;
}, 60_000);

afterAll(async () => {
  await chromium?.close();
  listener?.close();
  await stack?.close();
});

/** Alice signs in with her password in Chromium, on the sign-in page that `url` shows, and lands where it leads. */
async function signInAt(context: BrowserContext, url: string) {
  const page = await context.newPage();
  await page.goto(url);
  await page.fill('#username', 'alice');
  await page.fill('#password', 'alice has a long password');
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('button[type=submit]')]);
  return page;
}

/** Alice opens a link to the real AS for the thief's client without code_challenge: the AS redirects her to the listener, with no click. */
async function openBadLink(context: BrowserContext): Promise<string> {
  const page = await context.newPage();
  const from = seen.length;
  await page.goto(`${stack.issuer}/authorize?client_id=${thiefClient}&redirect_uri=${encodeURIComponent(`http://127.0.0.1:${listenerPort}/cb`)}&response_type=code`);
  const landed = seen.slice(from).find((s) => s.url.startsWith('/cb?'));
  expect(landed?.url).toContain('error=invalid_request');
  await page.close();
  // What a browser does (and no cookie setting can stop on plain http): the AS's cookie went to the listener's port.
  const stolen = readCookie(landed!.headers.cookie, cookieName);
  expect(stolen).toMatch(/^[A-Za-z0-9_-]{43}$/);
  return stolen!;
}

/** The thief with the stolen cookie (curl, as the review did): a browser whose only cookie is that one. */
function thiefWith(cookie: string) {
  const headers = { cookie: `${cookieName}=${cookie}` };
  const get = async (url: string) => {
    const res = await fetch(url, { headers, redirect: 'manual' });
    return { status: res.status, html: await res.text() };
  };
  const post = async (url: string, form: Record<string, string>) => {
    const res = await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form), redirect: 'manual' });
    return { status: res.status, html: await res.text(), location: res.headers.get('location') };
  };
  return { get, post };
}

/** The thief's own authorization request: his client, his redirect port, his PKCE challenge. */
function thiefRequest(state: string): string {
  return authorizeUrl(stack.issuer, { clientId: thiefClient, redirectUri: `http://127.0.0.1:${listenerPort}/cb`, resource: stack.agentUrl, scope: 'slots:find', state, challenge: pkcePair().challenge });
}

/** What the stolen cookie must not open: /grants (with and without a sign-in value), the thief's own consent page, a revoke of alice's grant. */
async function expectNothingOpens(cookie: string, pages: string[] = []) {
  const thief = thiefWith(cookie);
  for (const [name, attempt] of [
    ...pages.map((url) => [url, () => thief.get(url)] as const),
    ['/grants', () => thief.get(`${stack.issuer}/grants`)],
    ['/grants with a sign-in value of the thief’s making', () => thief.get(`${stack.issuer}/grants?signin=${'A'.repeat(43)}`)],
    ['the thief’s authorization request', () => thief.get(thiefRequest('t1'))],
    ['the code form’s confirmation of a code', () => thief.get(`${stack.issuer}/device?user_code=BCDF-GHJK`)],
    // The session's CSRF token is derived from its id, which the thief has.
    ['a revoke of alice’s grant', () => thief.post(`${stack.issuer}/grants/revoke`, { grant: aliceGrant, csrf: sessionCsrf(cookie), signin: 'A'.repeat(43) })],
  ] as const) {
    const { result: res, changed } = await stateChangedBy(stack, attempt);
    expect(res.status, name).toBe(403);
    expect(res.html, name).not.toContain('Signed in as');
    expect(res.html, name).not.toContain('name="decision"');
    expect(res.html, name).not.toContain(aliceGrant);
    expect(changed, name).toEqual([]);
  }
  expect((await stack.store.grantById(aliceGrant))!.revokedAt).toBeNull();
}

describe('a session cookie taken by a listener on another loopback port, after the AS’s own error redirect', () => {
  it('signed in for /grants: the cookie opens neither /grants nor another request’s consent; alice’s page still works', { timeout: 60_000 }, async () => {
    const context = await chromium.newContext();
    const grants = await signInAt(context, `${stack.issuer}/grants`);
    expect(new URL(grants.url()).pathname).toBe('/grants');
    expect(await grants.textContent('main')).toContain('Signed in as alice');
    const stolen = await openBadLink(context);
    await expectNothingOpens(stolen);
    // The control: alice's own page, whose URL only her browser was sent, still shows her delegations.
    await grants.reload();
    expect(await grants.textContent('main')).toContain('Signed in as alice');
    expect(await grants.content()).toContain(aliceGrant);
    await context.close();
  });

  it('signed in for an authorization request: the cookie opens neither /grants nor another request’s consent, nor that request', { timeout: 60_000 }, async () => {
    const context = await chromium.newContext();
    const client = await registerPublicClient(stack.issuer, [REDIRECT]);
    const own = authorizeUrl(stack.issuer, { clientId: client, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 'own', challenge: pkcePair().challenge });
    const consent = await signInAt(context, own);
    expect(await consent.content()).toContain('name="decision"');
    const stolen = await openBadLink(context);
    await expectNothingOpens(stolen, [own]);
    await context.close();
  });

  it('signed in for a request the thief wrote (a link he sent): the cookie does not open it for him to approve', { timeout: 60_000 }, async () => {
    // His client, his redirect port, his PKCE challenge: approved in alice's name, its code would be his token.
    const written = thiefRequest('written');
    const context = await chromium.newContext();
    const consent = await signInAt(context, written);
    expect(await consent.content()).toContain('name="decision"');
    // Alice does not approve; the thief takes the cookie.
    const stolen = await openBadLink(context);
    await expectNothingOpens(stolen, [written, `${written}&signin=${'A'.repeat(43)}`]);
    expect(seen.some((s) => s.url.includes('code='))).toBe(false);
    await context.close();
  });
});

describe('a session cookie planted by a page on another loopback port (cookie tossing)', () => {
  it('does not sign alice in as mallory: her own request and /grants ask her to sign in, nothing stored', { timeout: 60_000 }, async () => {
    // Mallory's own session, from his own password sign-in.
    const mallory = await fetch(`${stack.issuer}/login?next=%2Fgrants`);
    const loginCookie = mallory.headers.getSetCookie()[0]!.split(';')[0]!;
    const csrf = /name="csrf" value="([^"]*)"/.exec(await mallory.text())![1]!;
    const signedIn = await fetch(`${stack.issuer}/login`, {
      method: 'POST',
      headers: { cookie: loginCookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, next: '/grants', username: 'mallory', password: 'mallory has a long password' }),
      redirect: 'manual',
    });
    expect(signedIn.status).toBe(303);
    tossedCookie = readCookie(signedIn.headers.getSetCookie().map((c) => c.split(';')[0]!).join('; '), cookieName)!;
    expect(tossedCookie).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const context = await chromium.newContext();
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${listenerPort}/toss`);
    expect((await context.cookies(stack.issuer)).find((c) => c.name === cookieName)?.value).toBe(tossedCookie);
    const client = await registerPublicClient(stack.issuer, [REDIRECT]);
    const own = authorizeUrl(stack.issuer, { clientId: client, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 'victim', challenge: pkcePair().challenge });
    for (const url of [own, `${stack.issuer}/grants`]) {
      const { result: res, changed } = await stateChangedBy(stack, async () => {
        const answer = await page.goto(url);
        return { status: answer!.status(), html: await page.content() };
      });
      expect(res.status, url).toBe(403);
      expect(res.html, url).toContain('Sign in to continue');
      expect(res.html, url).not.toContain('mallory');
      expect(res.html, url).not.toContain('name="decision"');
      expect(changed, url).toEqual([]);
    }
    // Mallory's own page opens with that cookie only at the URL his sign-in sent him to, which alice's browser never saw.
    expect(new URL(signedIn.headers.get('location')!, stack.issuer).searchParams.get('signin')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await context.close();
  });
});
