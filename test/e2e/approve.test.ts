// A third-party MCP client that does its own OAuth (Claude Code, the MCP
// Inspector, the SDK's auth()) against `delegate serve`, approved by the
// owner as a person would. Found in review (s22mcp): the client's
// authorization URL answered 403 "run `delegate login` there", and `login`
// signs in only the CLI's own request, so nobody could ever approve it; the
// tests hid it by signing an owner assertion with owner-key.json themselves.
// Now the page names `delegate approve '<url>'` (or the user code), which
// signs the owner in for exactly that request through its own /start; the
// consent page is always shown for it; and what approve is given is checked.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser as Chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { launchChromium } from '../browser/chromium.js';
import { InMemoryProvider } from '../interop/support.js';
import { DEVICE_CODE_GRANT, Browser, authorizeUrl, pkcePair, postForm, registerDeviceClient, registerPublicClient } from '../support/oauth-flow.js';
import { NOBODY, RECORDER, asRoot, listenAsNobody } from '../support/foreign-listener.js';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { START_URL, killLeftovers, ownerLinkBehind, runCli, startCli, startServer, type Running } from './run.js';

let chromium: Chromium;
let home: string;
let ports: string[];
let issuer: string;
let agentUrl: string;
let serve: Running;

beforeAll(async () => {
  builtModule('cli/main.js');
  chromium = await launchChromium();
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-approve-')), 'home');
  const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
  ports = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
  issuer = `http://127.0.0.1:${auth}`;
  agentUrl = `http://127.0.0.1:${agent}/mcp`;
  serve = await startServer(['serve', ...ports], home);
}, 60_000);

afterAll(async () => {
  await chromium?.close();
  serve?.child.kill('SIGTERM');
  await serve?.done;
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

/**
 * The SDK's client with a provider that only records where it would send the person (as an MCP client author writes
 * one), or with `provider` again (its registration kept, its tokens dropped: asked anew).
 */
async function clientAsksForAuthorization(provider = new InMemoryProvider(async () => new URL('about:blank'))): Promise<{ provider: InMemoryProvider; url: URL }> {
  provider.savedTokens = undefined;
  const refused = await new Client({ name: 'third-party', version: '1.0.0' })
    .connect(new StreamableHTTPClientTransport(new URL(agentUrl), { authProvider: provider }))
    .then(() => undefined, (error: unknown) => error);
  expect(refused).toBeInstanceOf(UnauthorizedError);
  return { provider, url: provider.authorizationUrls.at(-1)! };
}

/** `delegate approve ARGS…` as the sign-in page wrote it (one shell word in single quotes, the others plain). */
function shellWords(command: string): string[] {
  return [...command.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

/** Runs what the page says, in this data directory; resolves with the /start address it prints. */
async function approveAsThePageSays(pageText: string, inHome = home): Promise<{ cli: Running; start: string }> {
  const command = /delegate approve .*/.exec(pageText)?.[0];
  expect(command, pageText).toBeDefined();
  const [, , ...args] = shellWords(command!);
  const cli = startCli(['approve', '--no-browser', ...args], inHome);
  const start = await cli.loginUrl;
  expect(start).toMatch(START_URL);
  return { cli, start };
}

/** Opens the /start address in Chromium, where the consent page must be shown; Approve; the code the browser took to the client's redirect URI. */
async function approveInChromium(start: string, redirectUri: string, device = false): Promise<{ code: string | null; consentText: string }> {
  const page = await chromium.newPage();
  try {
    await page.goto(start);
    if (device) {
      // The device's code page first: the code is the one the device shows.
      const go = page.getByRole('button', { name: 'Continue', exact: true });
      await go.waitFor();
      await go.click();
    }
    const approve = page.getByRole('button', { name: 'Approve', exact: true });
    await approve.waitFor();
    const consentText = await page.locator('main').innerText();
    if (device) {
      await Promise.all([page.waitForURL(/\/consent|\/device/), approve.click()]);
      await page.getByText('Your device is connected').waitFor();
      return { code: null, consentText };
    }
    // Nothing listens at the client's redirect URI here: the browser's request to it is what the client would receive.
    const [callback] = await Promise.all([page.waitForRequest((r) => r.url().startsWith(redirectUri)), approve.click()]);
    return { code: new URL(callback.url()).searchParams.get('code'), consentText };
  } finally {
    await page.close();
  }
}

describe('delegate approve: an MCP client doing its own OAuth, approved by the owner', () => {
  it('the SDK client’s URL, the page’s `delegate approve`, Approve in Chromium: the client gets tokens and calls find_slot; again, the consent page is shown again', { timeout: 120_000 }, async () => {
    let same: InMemoryProvider | undefined;
    for (const round of [1, 2]) {
      const { provider, url } = await clientAsksForAuthorization(same);
      same = provider;
      const page = await chromium.newPage();
      const opened = await page.goto(url.href);
      expect(opened?.status()).toBe(403);
      const said = await page.locator('main').innerText();
      await page.close();
      expect(said).toContain(`delegate approve --auth-port ${new URL(issuer).port} '${url.href}'`);

      const { cli, start } = await approveAsThePageSays(said);
      const { code, consentText } = await approveInChromium(start, provider.redirectUrl);
      // Always asked, and the app is never taken for the owner's own command (its name is its own claim).
      expect(consentText, `round ${round}`).toContain('SDK interop client');
      expect(consentText).toContain('not checked');
      const run = await cli.done;
      expect(run.code, run.stderr).toBe(0);
      expect(code).toBeTruthy();

      const transport = new StreamableHTTPClientTransport(new URL(agentUrl), { authProvider: provider });
      await transport.finishAuth(code!);
      const client = new Client({ name: 'third-party', version: '1.0.0' });
      await client.connect(transport);
      const result = await client.callTool({ name: 'find_slot', arguments: { duration: '30m' } });
      await client.close();
      expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
      expect((result.structuredContent as { found: boolean }).found).toBe(true);
    }
  });

  it('a device client’s user code: `delegate approve CODE`, Continue and Approve in Chromium, and the device’s poll gets tokens', { timeout: 90_000 }, async () => {
    const clientId = await registerDeviceClient(issuer);
    const started = await postForm(`${issuer}/device_authorization`, { client_id: clientId, scope: 'slots:find', resource: agentUrl });
    expect(started.status).toBe(200);
    const { user_code: userCode, device_code: deviceCode, verification_uri_complete: complete } = started.body as Record<string, string>;

    // The page the device names says what to run.
    const page = await chromium.newPage();
    await page.goto(complete!);
    expect(await page.locator('main').innerText()).toContain(`delegate approve --auth-port ${new URL(issuer).port} ${userCode}`);
    await page.close();

    const cli = startCli(['approve', '--no-browser', userCode!.toLowerCase(), '--auth-port', new URL(issuer).port], home);
    const start = await cli.loginUrl;
    const { consentText } = await approveInChromium(start, 'http://127.0.0.1/callback', true);
    expect(consentText).toContain('not checked');
    expect((await cli.done).code).toBe(0);
    const tokens = await postForm(`${issuer}/token`, { grant_type: DEVICE_CODE_GRANT, device_code: deviceCode!, client_id: clientId });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body.access_token).toBeTruthy();
  });
});

// Found in review (s22new): on `serve --host ::1` the page printed `delegate approve --auth-port N 'http://[::1]:N/…'`
// and approve refused it (exit 2, "not on … http://127.0.0.1:N"): it looked for the server on 127.0.0.1 only. It now
// takes the loopback address the URL names; a user code alone names none, so the page prints the device page's URL.
describe('delegate approve on a server started with serve --host ::1', () => {
  it('the pages’ commands, run as printed: an authorization request’s link is signed for [::1]; a device page’s names its URL, and the device gets tokens', { timeout: 90_000 }, async (context) => {
    const v6 = await new Promise<boolean>((resolve) => {
      const probe = createNetServer().once('error', () => resolve(false));
      probe.listen(0, '::1', () => probe.close(() => resolve(true)));
    });
    if (!v6) return context.skip();
    const v6Home = join(home, '..', 'home-v6');
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    const v6Issuer = `http://[::1]:${auth}`;
    const server = await startServer(['serve', '--host', '::1', '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], v6Home);
    try {
      const app = await registerPublicClient(v6Issuer);
      const request = new URL(authorizeUrl(v6Issuer, { clientId: app, redirectUri: 'http://127.0.0.1/callback', resource: `http://[::1]:${agent}/mcp`, state: 's', challenge: pkcePair().challenge }));
      const asked = await chromium.newPage();
      expect((await asked.goto(request.href))?.status()).toBe(403);
      const { cli: approving, start: startHere } = await approveAsThePageSays(await asked.locator('main').innerText(), v6Home);
      await asked.close();
      const link = new URL(await ownerLinkBehind(startHere));
      expect(link.origin).toBe(v6Issuer);
      expect(link.searchParams.get('next')).toBe(`${request.pathname}${request.search}`);
      const approved = await approving.done;
      expect(approved.code, approved.stderr).toBe(0);

      const clientId = await registerDeviceClient(v6Issuer);
      const started = await postForm(`${v6Issuer}/device_authorization`, { client_id: clientId, scope: 'slots:find', resource: `http://[::1]:${agent}/mcp` });
      expect(started.status, JSON.stringify(started.body)).toBe(200);
      const { user_code: userCode, device_code: deviceCode, verification_uri_complete: complete } = started.body as Record<string, string>;
      const page = await chromium.newPage();
      await page.goto(complete!);
      const said = await page.locator('main').innerText();
      await page.close();
      expect(said).toContain(`delegate approve --auth-port ${auth} '${v6Issuer}/device?user_code=${userCode}'`);

      const { cli, start } = await approveAsThePageSays(said, v6Home);
      await approveInChromium(start, 'http://[::1]/callback', true);
      const run = await cli.done;
      expect(run.code, run.stderr).toBe(0);
      const tokens = await postForm(`${v6Issuer}/token`, { grant_type: DEVICE_CODE_GRANT, device_code: deviceCode!, client_id: clientId });
      expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);

      // Its own data directory only: the same URL from another one is refused before anything is signed (exit 1).
      const elsewhere = await runCli(['approve', '--no-browser', '--auth-port', String(auth), complete!], home);
      expect(elsewhere.code, elsewhere.stderr).toBe(1);
      expect(elsewhere.stderr).not.toMatch(/\/start/);
    } finally {
      server.child.kill('SIGTERM');
      await server.done;
    }
  });
});

// Found in review (s23local): another user registered an app named "Claude Code" whose redirect URI was the port his own
// program listened on; `delegate approve` and the consent page both spoke as if the app were the owner's, and his
// program got the code. Both now name that user's uid before the owner decides. (`nobody`: root only, as CI runs.)
describe.skipIf(!asRoot)("delegate approve when another user's program listens at the app's redirect URI", () => {
  it('says so before the browser opens, and the consent page says so too', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const squatter = await listenAsNobody(port);
    try {
      const redirectUri = `http://127.0.0.1:${port}/callback`;
      const app = await registerPublicClient(issuer, [redirectUri]);
      const request = authorizeUrl(issuer, { clientId: app, redirectUri, resource: agentUrl, state: 's', challenge: pkcePair().challenge });
      const cli = startCli(['approve', '--no-browser', request, '--auth-port', new URL(issuer).port], home);
      const start = await cli.loginUrl;
      const said = cli.stderr();
      const warning = `delegate: The app's answer goes to a program of another user of this computer (uid ${NOBODY}), the one listening at 127.0.0.1:${port}, not to a program of yours, whatever name the app gave: approve only if you mean to let that user act for you.`;
      expect(said).toContain(warning);
      expect(said.indexOf(warning)).toBeLessThan(said.indexOf(start));
      const { consentText } = await approveInChromium(start, redirectUri);
      expect(consentText).toContain(`Its answer goes to a program of another user of this computer (uid ${NOBODY})`);
      expect((await cli.done).code).toBe(0);
    } finally {
      squatter.stop();
    }
  });
});

// Found in review (s23new): for `http://localhost:<port>/callback` the authorization server's own socket on
// 127.0.0.1:<port> settled the lookup, and `nobody` on [::1]:<port>, where Chromium goes first, went unnamed.
describe.skipIf(!asRoot)('delegate approve for a localhost redirect URI when another user listens on [::1] only', () => {
  it('says so before the browser opens, and the consent page says so too', { timeout: 60_000 }, async () => {
    const port = Number(new URL(issuer).port);
    const squatter = await listenAsNobody(port, RECORDER.replace("'127.0.0.1'", "'::1'"));
    try {
      const redirectUri = `http://localhost:${port}/callback`;
      const app = await registerPublicClient(issuer, [redirectUri]);
      const request = authorizeUrl(issuer, { clientId: app, redirectUri, resource: agentUrl, state: 's', challenge: pkcePair().challenge });
      const cli = startCli(['approve', '--no-browser', request, '--auth-port', String(port)], home);
      const start = await cli.loginUrl;
      expect(cli.stderr()).toContain(`delegate: The app's answer goes to a program of another user of this computer (uid ${NOBODY}), the one listening at localhost:${port}, not to a program of yours`);
      const { consentText } = await approveInChromium(start, redirectUri);
      expect(consentText).toContain(`Its answer goes to a program of another user of this computer (uid ${NOBODY}), the one listening at localhost:${port}`);
      expect((await cli.done).code).toBe(0);
    } finally {
      squatter.stop();
    }
  });
});

describe('delegate approve refuses what is not this server’s request', () => {
  const portOf = () => ['--auth-port', new URL(issuer).port];

  it('a URL on another origin or port, another path, or no URL at all: exit 2, one line, nothing signed', { timeout: 60_000 }, async () => {
    const { url } = await clientAsksForAuthorization();
    const otherPort = new URL(url.href);
    otherPort.port = String(Number(otherPort.port) + 1);
    const otherHost = new URL(url.href);
    otherHost.hostname = 'localhost';
    const cases = [otherPort.href, otherHost.href, `http://evil.example${url.pathname}${url.search}`, `${issuer}/token`, `${issuer}/login/owner?next=${encodeURIComponent(url.pathname + url.search)}`, `${issuer}/authorize`, 'not a url'];
    for (const target of cases) {
      const run = await runCli(['approve', '--no-browser', target, ...portOf()], home);
      expect(run.code, `${target}: ${run.stderr}`).toBe(2);
      expect(run.stderr.trim().split('\n'), target).toHaveLength(1);
      expect(run.stderr).not.toMatch(/\/start/);
    }
  });

  // Found in review (s30): a mistyped user code, or the URL of an app the server does not know, got a link, and then
  // "Signed in for that request. Approve or deny it on the page in your browser" (exit 0) while the page said the code
  // is not valid, or "Unknown app"; without a browser, the mistyped code waited out --login-timeout.
  it('a request the server does not wait on (a user code no device shows, an app it does not know, a redirect URI it did not register, a scope the agent does not offer): exit 1, one line saying why, no link', { timeout: 60_000 }, async () => {
    const { url } = await clientAsksForAuthorization();
    const wrongRedirect = new URL(url.href);
    wrongRedirect.searchParams.set('redirect_uri', 'http://127.0.0.1:1/elsewhere');
    const wrongScope = new URL(url.href);
    wrongScope.searchParams.set('scope', 'nothing:here');
    const cases: [string, RegExp][] = [
      ['BCDF-GHJK', /^delegate: No device sign-in waits with the code BCDF-GHJK at http:\/\/127\.0\.0\.1:\d+: /],
      [`${issuer}/device?user_code=bcdfghjk`, /^delegate: No device sign-in waits with the code BCDF-GHJK at /],
      [`${issuer}/authorize?response_type=code&client_id=cli_nope`, /^delegate: Nothing to approve: the authorization server at http:\/\/127\.0\.0\.1:\d+ refuses that request \(Unknown app: The app that sent you here is not registered with this server\. If it registered here before, its registration has lapsed: an app that gets no delegation within a day of registering is forgotten\. Remove the app's saved sign-in for this server, and connect it again: it registers anew\.\) Start again from the app\.\n$/],
      [wrongRedirect.href, /refuses that request \(This sign-in request is not safe to follow: The address the app asked to return you to is not one it registered/],
      // Refused once the app is known: the answer would go back to the app; here it is said, and not sent.
      [wrongScope.href, /refuses that request \(invalid_scope: The resource offers only: /],
    ];
    for (const [target, said] of cases) {
      // Bounded: before this was checked, each waited for its link to be opened.
      const run = await runCli(['approve', '--no-browser', '--login-timeout', '5s', target, ...portOf()], home);
      expect(run.code, `${target}: ${run.stderr}`).toBe(1);
      expect(run.stderr.trim().split('\n'), target).toHaveLength(1);
      expect(run.stderr, target).toMatch(said);
      expect(run.stderr).not.toMatch(/\/start|Signed in/);
    }
  });

  it('a valid authorization URL still gets its link, the check having changed nothing (looked at twice more first): approved, the app gets its code; decided, it is refused before a link', { timeout: 90_000 }, async () => {
    // The check's look (a GET of /authorize without a session) made no pending request that stands in the real one's way.
    const { provider, url } = await clientAsksForAuthorization();
    for (let i = 0; i < 2; i++) expect((await fetch(url, { redirect: 'manual' })).status).toBe(403);
    const cli = startCli(['approve', '--no-browser', url.href, ...portOf()], home);
    const { code } = await approveInChromium(await cli.loginUrl, provider.redirectUrl);
    expect(code).toBeTruthy();
    expect((await cli.done).code).toBe(0);
    // Decided, the same request is refused before a link: already decided.
    const again = await runCli(['approve', '--no-browser', '--login-timeout', '5s', url.href, ...portOf()], home);
    expect(again.code, again.stderr).toBe(1);
    expect(again.stderr).toMatch(/refuses that request \(invalid_request: This request was already decided; start again from the app\.\)/);
    expect(again.stderr).not.toMatch(/\/start/);
  });

  it('the link behind /start works once, for that request only: tampered after signing, or used again, it is refused; /start sends on once', { timeout: 60_000 }, async () => {
    const { url } = await clientAsksForAuthorization();
    const cli = startCli(['approve', '--no-browser', url.href, ...portOf()], home);
    const link = new URL(await ownerLinkBehind(await cli.loginUrl));
    expect((await cli.done).code).toBe(0);
    expect(link.searchParams.get('next')).toBe(`${url.pathname}${url.search}`);

    // Tampered: the same assertion, sent on to a request with a wider scope.
    const tampered = new URL(link.href);
    const wider = new URL(url.href);
    wider.searchParams.set('scope', 'slots:find busy:read');
    tampered.searchParams.set('next', `${wider.pathname}${wider.search}`);
    const refused = await new Browser().get(tampered.href);
    expect(refused.status).toBe(403);
    expect(refused.headers.get('set-cookie')).toBeNull();

    // Untouched, it works (the tampered try did not spend it), and once only.
    const first = await new Browser().follow(link.href);
    expect(first.status).toBe(200);
    expect(first.html).toContain('Approve');
    const again = await new Browser().get(link.href);
    expect(again.status).toBe(403);
    expect(again.html).toContain('already used');
  });

  it('a second visit to /start sends nobody on', { timeout: 60_000 }, async () => {
    const { url } = await clientAsksForAuthorization();
    const cli = startCli(['approve', '--no-browser', url.href, ...portOf()], home);
    const start = await cli.loginUrl;
    await ownerLinkBehind(start);
    const second = await fetch(start, { redirect: 'manual' }).then(
      (res) => res.status,
      () => 'closed',
    );
    expect(second === 'closed' || second === 400).toBe(true);
    expect((await cli.done).code).toBe(0);
  });
});

// Found in review (s28new3): with `serve` stopped after approve printed its /start, the browser was sent on to the
// refused port and approve said "Signed in for that request" (exit 0).
describe('delegate approve whose server stopped before its /start was opened', () => {
  it('ends at /start saying no authorization server answers; the browser is sent nowhere', { timeout: 60_000 }, async () => {
    const root = await mkdtemp(join(tmpdir(), 'delegate-e2e-approve-stopped-'));
    try {
      const [auth, agent] = [await freePort(), await freePort()];
      const own = ['--auth-port', String(auth), '--calendar-port', String(await freePort()), '--agent-port', String(agent)];
      const server = await startServer(['serve', ...own], join(root, 'home'));
      // A request the server waits on (one it refuses is refused before any link is given).
      const stoppedIssuer = `http://127.0.0.1:${auth}`;
      const request = authorizeUrl(stoppedIssuer, { clientId: await registerPublicClient(stoppedIssuer), redirectUri: 'http://127.0.0.1/callback', resource: `http://127.0.0.1:${agent}/mcp`, state: 's', challenge: pkcePair().challenge });
      const cli = startCli(['approve', '--no-browser', '--login-timeout', '60s', ...own, request], join(root, 'home'));
      const start = await cli.loginUrl;
      server.child.kill('SIGTERM');
      await server.done;
      const answer = await new Browser().get(start);
      expect(answer.status).toBe(500);
      expect(answer.location).toBeNull();
      const run = await cli.done;
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`No delegate authorization server answers at http://127.0.0.1:${auth}: the request can be approved only while the server that it was made at runs`);
      expect(run.stderr).not.toContain('Signed in for that request');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
