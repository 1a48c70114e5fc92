// The consent page when another user of this computer listens at the app's
// loopback redirect URI. Found in review (s23local): a second user registered
// an app named "Claude Code" with the redirect URI of a port he listened on;
// the owner approved it on a page that said "The app that asked runs on this
// computer; after you decide, you go back to it", and his program got the
// code and redeemed it. Now the page names that user's uid, first and in
// bold, and Approve issues a code to another user's program only when the
// page the owner approved on named it; one that began to listen after the
// page was shown gets nothing. The other user's program runs as `nobody`, so
// these tests need root (as CI runs them); elsewhere they are skipped.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ownerLink, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { NOBODY, RECORDER, asRoot, listenAsNobody, type ForeignListener } from '../support/foreign-listener.js';
import { authorizeUrl, pkcePair, registerPublicClient } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { launchChromium } from './chromium.js';

let authz: TestAuthz;
let browser: Browser;
const stops: Array<() => void> = [];

beforeAll(async () => {
  if (!asRoot) return;
  authz = await startTestAuthz();
  browser = await launchChromium();
}, 60_000);

afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

afterAll(async () => {
  await browser?.close();
  await authz?.close();
});

const WARNING = `Its answer goes to a program of another user of this computer (uid ${NOBODY})`;

/** The consent page, signed in as the owner, for a new app (named as the reviewer's was) whose redirect URI is on `port`. */
async function consentFor(port: number, state: string, host = '127.0.0.1'): Promise<Page> {
  const redirectUri = `http://${host}:${port}/callback`;
  const clientId = await registerPublicClient(authz.issuer, [redirectUri]);
  const href = authorizeUrl(authz.issuer, { clientId, redirectUri, resource: authz.agentUrl, scope: 'slots:find', state, challenge: pkcePair().challenge });
  const page = await browser.newPage();
  await page.goto(await ownerLink(authz, href.slice(authz.issuer.length)));
  await page.getByRole('button', { name: 'Approve', exact: true }).waitFor();
  return page;
}

async function nobodyOn(port: number, host = '127.0.0.1'): Promise<ForeignListener> {
  const listener = await listenAsNobody(port, RECORDER.replace("'127.0.0.1'", `'${host}'`));
  stops.push(listener.stop);
  return listener;
}

/** An app of the owner's own listening on host:port, which keeps the path of each request it gets. */
async function ownOn(port: number, host: string): Promise<string[]> {
  const received: string[] = [];
  const own: Server = createServer((req, res) => {
    received.push(req.url!);
    res.writeHead(200, { connection: 'close' }).end('done');
  });
  await new Promise<void>((resolve) => own.listen(port, host, resolve));
  stops.push(() => own.close());
  expect((own.address() as AddressInfo).port).toBe(port);
  return received;
}

/** The `state` of each request to /callback among `paths` (Chromium may ask the same listener for /favicon.ico). */
function callbackStates(paths: string[]): Array<string | null> {
  return paths.map((path) => new URL(path, 'http://x')).filter((url) => url.pathname === '/callback').map((url) => url.searchParams.get('state'));
}

/** Approves on `page`, then closes it: the answer the consent form got (a 303 to the app, or a page of this server's). */
async function approveOn(page: Page): Promise<number> {
  const [answer] = await Promise.all([page.waitForResponse((r) => r.url() === `${authz.issuer}/consent`), page.getByRole('button', { name: 'Approve', exact: true }).click()]);
  await page.waitForLoadState();
  return answer.status();
}

describe.skipIf(!asRoot)("consent when another user's program listens at the app's loopback redirect URI", () => {
  it('says so on the page, first, in bold, and Approve sends the code only because the page said it', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const squatter = await nobodyOn(port);
    const page = await consentFor(port, 'told');
    const text = await page.locator('main').innerText();
    expect(text).toContain(`${WARNING}, the one listening at 127.0.0.1:${port}, not to a program of yours, whatever name the app gave.`);
    expect(text.indexOf(WARNING)).toBeLessThan(text.indexOf('will be able to')); // at the top, before what it may do
    expect(text).toContain(`After you decide, the answer goes to that program of another user (uid ${NOBODY}), not back to an app of yours.`);
    expect(text).not.toContain('you go back to it');
    expect(await page.locator('p.warn strong', { hasText: WARNING }).count()).toBe(1);
    await Promise.all([page.waitForURL(/\/callback\?/), page.getByRole('button', { name: 'Approve', exact: true }).click()]);
    await page.close();
    // The owner was told whose program it is and approved: the decision stands.
    const [got] = squatter.requests();
    expect(new URL(got!.path, 'http://x').searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('issues no code to a program of another user that began to listen after the page was shown', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const page = await consentFor(port, 'late');
    const text = await page.locator('main').innerText();
    expect(text).toContain('The app that asked runs on this computer');
    const squatter = await nobodyOn(port);
    expect(await approveOn(page)).toBe(403);
    const refusal = await page.locator('main').innerText();
    expect(refusal).toContain('Nothing was sent to the app');
    expect(refusal).toContain(`a program of another user of this computer (uid ${NOBODY}), which the page did not say when you approved`);
    await page.close();
    expect(squatter.requests()).toEqual([]);
  });

  it('lets an app of the owner’s own that begins to listen after the page was shown get its code (control)', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const page = await consentFor(port, 'own-late');
    const received = await ownOn(port, '127.0.0.1');
    await Promise.all([page.waitForURL(/\/callback\?/), page.getByRole('button', { name: 'Approve', exact: true }).click()]);
    await page.close();
    expect(new URL(received[0]!, 'http://x').searchParams.get('state')).toBe('own-late');
  });
});

// Found in review (s23new): for a `localhost` redirect URI, a socket of the owner's on 127.0.0.1:P (the
// authorization server's own, or the app's) settled the lookup, so `nobody` listening on [::1]:P went unseen; Chromium
// tries ::1 first for localhost, and took the code to nobody's program while the page said the app ran on this
// computer. Now both loopbacks are looked at, on the page and again at Approve.
describe.skipIf(!asRoot)('consent for a localhost redirect URI when another user listens on [::1] only', () => {
  it('names that user on the page, with the authorization server itself on 127.0.0.1 and the same port', { timeout: 60_000 }, async () => {
    const port = Number(new URL(authz.issuer).port);
    const squatter = await nobodyOn(port, '::1');
    const page = await consentFor(port, 'v6', 'localhost');
    const text = await page.locator('main').innerText();
    expect(text).toContain(`${WARNING}, the one listening at localhost:${port}, not to a program of yours, whatever name the app gave.`);
    expect(text).not.toContain('you go back to it');
    await Promise.all([page.waitForURL(/\/callback\?/), page.getByRole('button', { name: 'Approve', exact: true }).click()]);
    await page.close();
    // Told, the owner approved: nobody's program got the code, as the page said it would.
    expect(callbackStates(squatter.requests().map((r) => r.path))).toEqual(['v6']);
  });

  it('issues no code when it began to listen on [::1] after the page was shown, beside the owner’s app on 127.0.0.1', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const received = await ownOn(port, '127.0.0.1');
    const page = await consentFor(port, 'v6-late', 'localhost');
    expect(await page.locator('main').innerText()).toContain('The app that asked runs on this computer');
    const squatter = await nobodyOn(port, '::1');
    expect(await approveOn(page)).toBe(403);
    expect(await page.locator('main').innerText()).toContain(`a program of another user of this computer (uid ${NOBODY}), which the page did not say when you approved`);
    await page.close();
    expect(squatter.requests()).toEqual([]);
    expect(received).toEqual([]);
  });

  it('sends the code to the owner’s app listening on both loopbacks (control)', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const received = [await ownOn(port, '127.0.0.1'), await ownOn(port, '::1')];
    const page = await consentFor(port, 'own-both', 'localhost');
    expect(await page.locator('main').innerText()).toContain('The app that asked runs on this computer');
    expect(await approveOn(page)).toBe(303);
    await page.close();
    expect(callbackStates(received.flat())).toEqual(['own-both']);
  });
});
