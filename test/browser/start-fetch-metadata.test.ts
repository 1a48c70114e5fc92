// /start of the CLI's loopback listeners (src/client/loopback.ts) in a real browser. Found in review (s22new): a page
// on another origin in the owner's browser could fetch('http://127.0.0.1:<port>/start', {mode: 'no-cors'}): it
// passes the Host and owner checks, so it used up `delegate approve`'s one /start (approve said "Signed in" though
// the owner saw nothing, and the owner's own visit then found the port closed), and reached login's /start as well.
// Now a browser that sends Fetch Metadata gets /start only for a top-level navigation no other site started.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoopbackListener, startOnlyListener } from '../../src/client/loopback.js';
import { launchChromium } from './chromium.js';

let chromium: Browser;
let pages: Server;
let pagesPort: number;

/** Stands for both the owner's sign-in link (/link) and, on `localhost`, another site's page (/evil?…). */
beforeAll(async () => {
  chromium = await launchChromium();
  pages = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    if (url.pathname === '/link') return res.end('<title>owner link</title>');
    const start = JSON.stringify(url.searchParams.get('start'));
    const how = url.searchParams.get('how');
    if (how === 'fetch') return res.end(`<script>fetch(${start}, {mode: 'no-cors', credentials: 'include'}).then(() => (document.title = 'done'), () => (document.title = 'failed'))</script>`);
    if (how === 'frame') return res.end(`<iframe src=${start} onload="document.title = 'done'"></iframe>`);
    return res.end(`<script>location.href = ${start}</script>`);
  });
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
  pagesPort = (pages.address() as AddressInfo).port;
});

afterAll(async () => {
  await chromium?.close();
  await new Promise((resolve) => pages?.close(resolve));
});

const LINK = () => `http://127.0.0.1:${pagesPort}/link`;

/** Another site's page (localhost: another origin, and cross-site to 127.0.0.1) reaching `start` the way `how` says. */
async function anotherSiteReaches(start: string, how: 'fetch' | 'frame' | 'navigate'): Promise<Page> {
  const page = await chromium.newPage();
  await page.goto(`http://localhost:${pagesPort}/evil?how=${how}&start=${encodeURIComponent(start)}`);
  if (how === 'navigate') await page.waitForURL(start);
  else await page.waitForFunction("document.title !== ''", null, { timeout: 10_000 });
  return page;
}

/** The owner opens the printed address: it must end on the link. */
async function ownerOpens(start: string): Promise<void> {
  const page = await chromium.newPage();
  try {
    await page.goto(start);
    expect(await page.title()).toBe('owner link');
  } finally {
    await page.close();
  }
}

const ATTACKS = ['fetch', 'frame', 'navigate'] as const;

describe('approve’s one-time /start', () => {
  it.each(ATTACKS)('another site’s %s is refused and does not use it up; the owner’s own visit then works', async (how) => {
    let made = 0;
    const listener = await startOnlyListener({ timeoutMs: 20_000 }, async () => {
      made += 1;
      return LINK();
    });
    try {
      const visited = listener.visited();
      let early = false;
      void visited.then(() => (early = true), () => undefined);
      const attacker = await anotherSiteReaches(listener.startUrl, how);
      if (how === 'navigate') expect(await attacker.content()).toContain('address bar');
      await attacker.close();
      expect(made).toBe(0);
      expect(early).toBe(false);
      await ownerOpens(listener.startUrl);
      await visited;
      expect(made).toBe(1);
    } finally {
      await listener.close();
    }
  });
});

describe('login’s /start', () => {
  it.each(ATTACKS)('another site’s %s gets no link made; the owner’s own visit does', async (how) => {
    let made = 0;
    const listener = await startLoopbackListener({ timeoutMs: 20_000 });
    try {
      listener.expect({ state: 's', issuer: 'http://127.0.0.1:1', requireIss: true }, async () => {
        made += 1;
        return LINK();
      });
      const attacker = await anotherSiteReaches(listener.startUrl, how);
      await attacker.close();
      expect(made).toBe(0);
      await ownerOpens(listener.startUrl);
      expect(made).toBe(1);
    } finally {
      await listener.close();
    }
  });
});
