// Headless Chromium for tests that stand for a person: Debian's `chromium`
// driven by playwright-core, started with the flags this sandboxed machine
// needs (no sandbox as root, no background network); and the client's
// loopback callback the browser lands on after a consent.
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { chromium, type Browser } from 'playwright-core';
import { expect } from 'vitest';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** `args` go after the usual flags (e.g. a test's --host-resolver-rules). */
export async function launchChromium(args: string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: install it with apt-get install -y chromium (.ci/run does).`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
  });
}

/** A client's redirect URI on an ephemeral loopback port: each request to /callback is kept in `received`, answered with "done". */
export async function listenCallback(): Promise<{ server: Server; uri: string; received: URL[] }> {
  const received: URL[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://127.0.0.1');
    if (url.pathname === '/callback') received.push(url);
    res.writeHead(200, { 'content-type': 'text/plain' }).end('done');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, uri: `http://127.0.0.1:${(server.address() as { port: number }).port}/callback`, received };
}

/** A named account at the browser, as its person signs in on the authorization server's own pages. */
export interface PasswordAccount {
  name: string;
  password: string;
}

/**
 * The person at the browser with a sign-in link: the authorization server's own sign-in page (a named account), then
 * Approve; ends on the CLI's loopback callback. A context of its own (https with a test certificate allowed).
 */
export async function signInWithPasswordAndApprove(browser: Browser, link: string, account: PasswordAccount): Promise<void> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    const page = await context.newPage();
    await page.goto(link);
    await page.fill('input[name=username]', account.name);
    await page.fill('input[name=password]', account.password);
    const approve = page.getByRole('button', { name: 'Approve', exact: true });
    await Promise.all([approve.waitFor(), page.getByRole('button', { name: 'Sign in', exact: true }).click()]);
    await expect(page.locator('body').innerText()).resolves.toContain(`signed in as ${account.name}`);
    await Promise.all([page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback\?/), approve.click()]);
    await expect(page.locator('body').innerText()).resolves.toContain('You can close this window');
  } finally {
    await context.close();
  }
}

/**
 * The person with a device code's link: Continue on the code's page, sign in as the named account, Continue again,
 * Approve, until "Your device is connected".
 */
export async function approveDeviceWithPassword(browser: Browser, link: string, account: PasswordAccount): Promise<void> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    const page = await context.newPage();
    await page.goto(link);
    for (let step = 0; step < 8; step++) {
      const text = await page.locator('body').innerText();
      if (text.includes('Your device is connected')) return;
      const button = async (name: string) => page.getByRole('button', { name, exact: true }).click();
      await Promise.all([
        page.waitForEvent('framenavigated'),
        (await page.locator('input[name=username]').count()) > 0
          ? page.fill('input[name=username]', account.name).then(() => page.fill('input[name=password]', account.password)).then(() => button('Sign in'))
          : text.includes('Approve') ? button('Approve') : button('Continue'),
      ]);
    }
    throw new Error(`the device sign-in did not end: ${await page.locator('body').innerText()}`);
  } finally {
    await context.close();
  }
}
