// The consent page in a real browser: headless Chromium signs in through the
// owner's link, sees the page, clicks Approve, and lands on the client's
// loopback callback with a code, the state and the issuer. The browser
// enforces what HTTP-level tests cannot (CSP form-action on the redirect,
// the Origin it sends), so this is where those are proven.
import type { Server } from 'node:http';
import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { ownerLink, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { authorizeUrl, pkcePair, registerPublicClient } from '../support/oauth-flow.js';
import { launchChromium, listenCallback } from './chromium.js';

let authz: TestAuthz;
let browser: Browser;
let callback: Server;
let callbackPort: number;
let received: URL[] = [];

beforeAll(async () => {
  authz = await startTestAuthz();
  browser = await launchChromium();
  let uri: string;
  ({ server: callback, uri, received } = await listenCallback());
  callbackPort = Number(new URL(uri).port);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  callback?.close();
  await authz?.close();
});

async function openConsent(state: string) {
  const clientId = await registerPublicClient(authz.issuer);
  const href = authorizeUrl(authz.issuer, {
    clientId,
    redirectUri: `http://127.0.0.1:${callbackPort}/callback`,
    resource: authz.agentUrl,
    scope: 'slots:find',
    state,
    challenge: pkcePair().challenge,
  });
  const link = await ownerLink(authz, href.slice(authz.issuer.length));
  const page = await browser.newPage();
  await page.goto(link);
  return page;
}

describe('consent in Chromium', () => {
  it('Approve sends the browser to the client with a code, the state and iss', async () => {
    const page = await openConsent('chromium-state');
    const approve = page.getByRole('button', { name: 'Approve', exact: true });
    await approve.waitFor();
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/consent.png', fullPage: true });
    await Promise.all([page.waitForURL(/\/callback\?/), approve.click()]);
    const landed = received.at(-1)!;
    expect(landed.pathname).toBe('/callback');
    expect(landed.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(landed.searchParams.get('state')).toBe('chromium-state');
    expect(landed.searchParams.get('iss')).toBe(authz.issuer);
    await page.close();
  });

  it('Deny sends the browser back with access_denied', async () => {
    const page = await openConsent('deny-state');
    await Promise.all([page.waitForURL(/\/callback\?/), page.getByRole('button', { name: 'Deny', exact: true }).click()]);
    const landed = received.at(-1)!;
    expect(landed.searchParams.get('error')).toBe('access_denied');
    expect(landed.searchParams.get('state')).toBe('deny-state');
    await page.close();
  });

  it('the page cannot be framed by another site', async () => {
    const page = await openConsent('frame-state');
    const consentUrl = page.url();
    const framer = await browser.newPage();
    // setContent resolves once the page and its frame have loaded (or failed to).
    await framer.setContent(`<iframe src="${consentUrl}" width="600" height="400"></iframe>`, { waitUntil: 'load' });
    const frame = framer.frames().find((f) => f !== framer.mainFrame());
    expect(frame).toBeDefined();
    // A frame refused by frame-ancestors / X-Frame-Options shows Chromium's error page, not ours.
    expect(frame!.url()).toMatch(/^chrome-error:/);
    expect(await frame!.getByRole('button', { name: 'Approve' }).count()).toBe(0);
    await framer.close();
    await page.close();
  });
});
