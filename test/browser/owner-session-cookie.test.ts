// The owner's browser session in a real browser, against another user's
// listener on a loopback port (cookies are not isolated by port, RFC 6265
// §8.5: Chromium sends the AS's session cookie to every port of 127.0.0.1,
// and takes one that a page on any of them sets). Found in review (s27web):
// 1. The session the owner's link started (`delegate approve` for an app's
//    request) was bound to that request's URL alone, which is public (the app
//    made it; approve has it on its command line), and it outlived the
//    decision: the owner clicked Deny, the redirect carried the cookie to the
//    app's listener (the attacker's), who opened the same request's consent
//    page with it, approved it and got the owner's tokens. A cookie taken by
//    any navigation before the decision let him decide first; a second
//    decision on the same request was taken too.
// 2. Only the first cookie of the session's name was read, and Chromium sends
//    one set for a more specific path first: one planted on Path=/authorize
//    (and /consent) by a page on another port blocked every owner sign-in.
// Here the listener is a plain loopback HTTP server that records the Cookie
// header it is sent and plants cookies, and the owner is headless Chromium.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser as Chromium } from 'playwright-core';
import { readCookie, sessionCookieName } from '../../src/authz/session.js';
import { ownerLink } from '../support/authz.js';
import { authorizeUrl, pkcePair, registerPublicClient } from '../support/oauth-flow.js';
import { startStack, stateChangedBy, type Stack } from '../security/stack.js';
import { launchChromium, listenCallback } from './chromium.js';

let stack: Stack;
let chromium: Chromium;
let cookieName: string;
/** Another user's listener on a loopback port: the app's redirect address, as the attacker registered it. */
let listener: Server;
let listenerPort: number;
const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
/** A value of the session's shape that names no session, as the reviewer's planter set it. */
const PLANTED = 'A'.repeat(43);
/** A client's own redirect URI (same user), where a code is expected. */
let callback: Awaited<ReturnType<typeof listenCallback>>;

beforeAll(async () => {
  stack = await startStack();
  cookieName = sessionCookieName(stack.issuer);
  chromium = await launchChromium();
  listener = createServer((req, res) => {
    seen.push({ url: req.url!, headers: req.headers });
    if (req.url === '/plant') {
      // The host is the same, only the port differs: the browser takes these for the AS too, on more specific paths.
      res.writeHead(200, {
        'content-type': 'text/html',
        'set-cookie': [`${cookieName}=${PLANTED}; Path=/authorize; Max-Age=31536000`, `${cookieName}=${PLANTED}; Path=/consent; Max-Age=31536000`],
      });
      return res.end('<p>nothing to see</p>');
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('listener');
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  listenerPort = (listener.address() as { port: number }).port;
  callback = await listenCallback();
}, 60_000);

afterAll(async () => {
  await chromium?.close();
  listener?.close();
  callback?.server.close();
  await stack?.close();
});

/** Someone with only this cookie (curl, as the review did). */
function withCookie(cookie: string) {
  return async (url: string) => {
    const res = await fetch(url, { headers: { cookie: `${cookieName}=${cookie}` }, redirect: 'manual' });
    return { status: res.status, html: await res.text(), location: res.headers.get('location') };
  };
}

/** The cookie the listener was sent with its latest request to `path` (a prefix), if any. */
function cookieSeenAt(path: string): string | undefined {
  const hit = seen.filter((s) => s.url.startsWith(path)).at(-1);
  return hit && readCookie(hit.headers.cookie, cookieName);
}

async function ownerId(): Promise<string> {
  return (await stack.store.ownerUser())!.id;
}

/** A new app (its redirect URI the callback here) and its request for slots:find on CalendarAgent, with `state`. */
async function newRequest(state: string): Promise<{ client: string; request: string }> {
  const client = await registerPublicClient(stack.issuer, [callback.uri]);
  return { client, request: authorizeUrl(stack.issuer, { clientId: client, redirectUri: callback.uri, resource: stack.agentUrl, scope: 'slots:find', state, challenge: pkcePair().challenge }) };
}

describe('the owner’s session cookie taken by a listener on another loopback port (delegate approve, the app the attacker’s)', () => {
  it('opens nothing, before the decision (taken by a navigation) or after the Deny (taken by its redirect): no consent page, no code, no grant', { timeout: 60_000 }, async () => {
    // The attacker's own request: his client, his listener as its redirect URI, his PKCE challenge.
    const thiefClient = await registerPublicClient(stack.issuer, [`http://127.0.0.1:${listenerPort}/cb`]);
    const request = authorizeUrl(stack.issuer, { clientId: thiefClient, redirectUri: `http://127.0.0.1:${listenerPort}/cb`, resource: stack.agentUrl, scope: 'slots:find', state: 'mal', challenge: pkcePair().challenge });
    const context = await chromium.newContext();
    const page = await context.newPage();
    // `delegate approve '<request>'`: the owner's link signed for that request, opened in the owner's browser.
    await page.goto(await ownerLink(stack, request.slice(stack.issuer.length), { approval: true }));
    const deny = page.getByRole('button', { name: 'Deny', exact: true });
    await deny.waitFor();

    // Any top-level navigation to the listener's port delivers the cookie (SameSite=Lax).
    const other = await context.newPage();
    await other.goto(`http://127.0.0.1:${listenerPort}/before`);
    await other.close();
    const before = cookieSeenAt('/before');
    expect(before).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // With it and the request's public URL, the attacker would decide first: it opens no consent page.
    for (const cookie of [before!]) {
      const { result, changed } = await stateChangedBy(stack, () => withCookie(cookie)(request));
      expect(result.status).toBe(403);
      expect(result.html).toContain('Sign in to continue');
      expect(result.html).not.toContain('name="decision"');
      expect(changed).toEqual([]);
    }

    // The owner denies; the browser lands at the app's listener.
    await Promise.all([page.waitForURL(/\/cb\?/), deny.click()]);
    expect(seen.filter((s) => s.url.startsWith('/cb?')).at(-1)?.url).toContain('error=access_denied');
    // The cookie is cleared by the decision, so the redirect should carry none; whatever was taken opens nothing.
    const taken = [before!, cookieSeenAt('/cb?')].filter((c): c is string => c !== undefined && c !== '');
    // The request is decided: it goes back to the app refused (invalid_request), session or none.
    for (const cookie of taken) {
      const { result, changed } = await stateChangedBy(stack, () => withCookie(cookie)(request));
      expect(result.status).toBe(302);
      expect(new URL(result.location!).searchParams.get('error')).toBe('invalid_request');
      expect(result.html).not.toContain('name="decision"');
      expect(changed).toEqual([]);
    }
    expect(seen.some((s) => s.url.includes('code='))).toBe(false);
    expect((await stack.store.listGrants(await ownerId())).filter((g) => g.clientId === thiefClient)).toEqual([]);
    await context.close();
  });
});

describe('one request, one decision: the session is spent on it', () => {
  it('a Deny on a second page of the same request after the Approve is refused with an error page; the app got the Approve only', { timeout: 60_000 }, async () => {
    const { client, request } = await newRequest('twice');
    const context = await chromium.newContext();
    const first = await context.newPage();
    await first.goto(await ownerLink(stack, request.slice(stack.issuer.length), { approval: true }));
    await first.getByRole('button', { name: 'Approve', exact: true }).waitFor();
    // The same page again (a reload, a second tab): a second consent page under the same session.
    const second = await context.newPage();
    await second.goto(first.url());
    const deny = second.getByRole('button', { name: 'Deny', exact: true });
    await deny.waitFor();

    const from = callback.received.length;
    await Promise.all([first.waitForURL(/\/callback\?/), first.getByRole('button', { name: 'Approve', exact: true }).click()]);
    expect(callback.received.at(-1)!.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const grants = (await stack.store.listGrants(await ownerId())).filter((g) => g.clientId === client);
    expect(grants).toHaveLength(1);

    const [answer] = await Promise.all([second.waitForEvent('response', (r) => r.url().endsWith('/consent')), deny.click()]);
    await second.waitForLoadState();
    expect(answer.status()).toBe(400);
    expect(await second.content()).toContain('This request has expired');
    // Nothing more reached the app, the grant stands as approved, and the record holds one decision.
    expect(callback.received.slice(from + 1)).toEqual([]);
    expect((await stack.store.listGrants(await ownerId())).filter((g) => g.clientId === client)).toEqual(grants);
    const decisions = (await stack.store.listAudit()).filter((r) => r.event === 'consent' && r.client === client).map((r) => r.detail.decision);
    expect(decisions).toEqual(['approved']);
    await context.close();
  });
});

describe('a session cookie planted on more specific paths by a page on another loopback port', () => {
  it('does not hide the owner’s own: `delegate login`’s link opens the consent page and Approve sends the code', { timeout: 60_000 }, async () => {
    const context = await chromium.newContext();
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${listenerPort}/plant`);
    const planted = (await context.cookies()).filter((c) => c.name === cookieName);
    expect(planted.map((c) => c.path).sort()).toEqual(['/authorize', '/consent']);

    const { request } = await newRequest('planted');
    await page.goto(await ownerLink(stack, request.slice(stack.issuer.length)));
    // Chromium sends the planted value (Path=/authorize) before the session's own (Path=/).
    expect((await context.cookies(`${stack.issuer}/authorize`)).filter((c) => c.name === cookieName)).toHaveLength(2);
    expect(await page.content()).toContain('name="decision"');
    // The decision too, where the value planted on Path=/consent comes first.
    await Promise.all([page.waitForURL(/\/callback\?/), page.getByRole('button', { name: 'Approve', exact: true }).click()]);
    const landed = callback.received.at(-1)!;
    expect(landed.searchParams.get('state')).toBe('planted');
    expect(landed.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await context.close();
  });
});

describe('one request, one decision: through a new sign-in too', () => {
  it('after the Approve, the same request opened again by a new owner link gets no consent page and no code: invalid_request back to the app, the grant as approved', { timeout: 60_000 }, async () => {
    const { client, request } = await newRequest('again');
    const context = await chromium.newContext();
    const page = await context.newPage();
    await page.goto(await ownerLink(stack, request.slice(stack.issuer.length), { approval: true }));
    await Promise.all([page.waitForURL(/\/callback\?/), page.getByRole('button', { name: 'Approve', exact: true }).click()]);
    expect(callback.received.at(-1)!.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const grants = (await stack.store.listGrants(await ownerId())).filter((g) => g.clientId === client);
    expect(grants).toHaveLength(1);
    const from = callback.received.length;

    // Back shows the sign-in page naming `delegate approve '<the same request>'`; the owner runs it (both kinds of link).
    for (const approval of [true, false]) {
      const again = await context.newPage();
      const seenConsent: string[] = [];
      again.on('response', (r) => {
        if (new URL(r.url()).pathname === '/authorize') seenConsent.push(String(r.status()));
      });
      await Promise.all([again.waitForURL(/\/callback\?/), again.goto(await ownerLink(stack, request.slice(stack.issuer.length), { approval }))]);
      const landed = callback.received.at(-1)!;
      expect(landed.searchParams.get('error')).toBe('invalid_request');
      expect(landed.searchParams.get('error_description')).toContain('already decided');
      expect(landed.searchParams.get('state')).toBe('again');
      expect(landed.searchParams.get('iss')).toBe(stack.issuer);
      expect(landed.searchParams.has('code')).toBe(false);
      expect(seenConsent).not.toContain('200');
      await again.close();
    }
    expect(callback.received.slice(from).some((u) => u.searchParams.has('code'))).toBe(false);
    expect((await stack.store.listGrants(await ownerId())).filter((g) => g.clientId === client)).toEqual(grants);
    const decisions = (await stack.store.listAudit()).filter((r) => r.event === 'consent' && r.client === client).map((r) => r.detail.decision);
    expect(decisions).toEqual(['approved']);
    await context.close();
  });

  it('two consent pages of one request under two sign-ins: the Approve on one, then the Deny on the other is refused; the app got the Approve only', { timeout: 60_000 }, async () => {
    const { client, request } = await newRequest('two-sign-ins');
    const pages = [];
    for (let i = 0; i < 2; i++) {
      const context = await chromium.newContext();
      const page = await context.newPage();
      await page.goto(await ownerLink(stack, request.slice(stack.issuer.length), { approval: true }));
      await page.getByRole('button', { name: 'Deny', exact: true }).waitFor();
      pages.push(page);
    }
    const [first, second] = pages;
    await Promise.all([first!.waitForURL(/\/callback\?/), first!.getByRole('button', { name: 'Approve', exact: true }).click()]);
    expect(callback.received.at(-1)!.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const from = callback.received.length;
    const grants = (await stack.store.listGrants(await ownerId())).filter((g) => g.clientId === client);
    expect(grants).toHaveLength(1);

    const [answer] = await Promise.all([second!.waitForEvent('response', (r) => r.url().endsWith('/consent')), second!.getByRole('button', { name: 'Deny', exact: true }).click()]);
    await second!.waitForLoadState();
    expect(answer.status()).toBe(400);
    expect(await second!.content()).toContain('This request has expired');
    expect(callback.received.slice(from)).toEqual([]);
    expect((await stack.store.listGrants(await ownerId())).filter((g) => g.clientId === client)).toEqual(grants);
    const decisions = (await stack.store.listAudit()).filter((r) => r.event === 'consent' && r.client === client).map((r) => r.detail.decision);
    expect(decisions).toEqual(['approved']);
    for (const page of pages) await page.context().close();
  });
});
