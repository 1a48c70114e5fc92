// Headless Chromium for tests that stand for a person: Debian's `chromium`
// driven by playwright-core, started with the flags this sandboxed machine
// needs (no sandbox as root, no background network); and the client's
// loopback callback the browser lands on after a consent.
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { chromium, type Browser } from 'playwright-core';

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
