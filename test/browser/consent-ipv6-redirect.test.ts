// An app whose loopback redirect URI is an IPv6 literal (http://[::1]:PORT,
// RFC 8252 §7.3) gets its code in a real browser. CSP's host-source has no
// form for an IPv6 literal: listed in form-action as an origin, Chromium
// dropped it as invalid and blocked the redirect after Approve, so the app
// never got its code (found in review, s34interop). The real authorization
// server on 127.0.0.1, the app's callback listening on ::1, headless Chromium.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { ownerLink, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { authorizeUrl, pkcePair, registerPublicClient } from '../support/oauth-flow.js';
import { launchChromium } from './chromium.js';

let authz: TestAuthz;
let browser: Browser;
let callback: Server;
let redirectUri: string;
const received: URL[] = [];

beforeAll(async () => {
  authz = await startTestAuthz();
  browser = await launchChromium();
  callback = createServer((req, res) => {
    const url = new URL(req.url!, 'http://[::1]');
    if (url.pathname === '/callback') received.push(url);
    res.writeHead(200, { 'content-type': 'text/plain' }).end('done');
  });
  await new Promise<void>((resolve) => callback.listen(0, '::1', resolve));
  redirectUri = `http://[::1]:${(callback.address() as { port: number }).port}/callback`;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  callback?.close();
  await authz?.close();
});

it('Approve sends the browser to http://[::1]:PORT with the code, the state and iss', async () => {
  const clientId = await registerPublicClient(authz.issuer, [redirectUri]);
  const href = authorizeUrl(authz.issuer, { clientId, redirectUri, resource: authz.agentUrl, scope: 'slots:find', state: 'ipv6-state', challenge: pkcePair().challenge });
  const page = await browser.newPage();
  const blocked: string[] = [];
  page.on('console', (m) => void (m.text().includes('Content Security Policy') && blocked.push(m.text())));
  await page.goto(await ownerLink(authz, href.slice(authz.issuer.length)));
  const approve = page.getByRole('button', { name: 'Approve', exact: true });
  await approve.waitFor();
  await Promise.all([page.waitForURL(/\/callback\?/, { timeout: 15_000 }), approve.click()]);
  const landed = received.at(-1)!;
  expect(landed.pathname).toBe('/callback');
  expect(landed.searchParams.get('code')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(landed.searchParams.get('state')).toBe('ipv6-state');
  expect(landed.searchParams.get('iss')).toBe(authz.issuer);
  expect(blocked).toEqual([]);
  await page.close();
});
