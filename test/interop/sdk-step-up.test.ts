// Step-up to list_busy (busy:read) by the MCP TypeScript SDK 1.x's own client
// over HTTP: what README says about it, checked. The SDK's Client and
// StreamableHTTPClientTransport with an OAuthClientProvider of the test's
// (in memory); the owner approves each authorization request as a person
// does: `delegate approve '<url>'`, then Approve in headless Chromium.
// Found in review s27mcp (finding 1): README said that a client whose stored
// tokens are cleared "asks for both scopes"; it asks for slots:find only (the
// agent's 401 and its metadata name only slots:find, on purpose: a client that
// uses find_slot alone is never asked more), and list_busy failed again.
//
// What works, and what not, with SDK 1.x (its auth(): a 403 insufficient_scope
// makes it refresh when it holds a refresh token, and a refresh cannot widen a
// scope; typescript-sdk issue 2255):
// - a client that registered without the refresh_token grant steps up as the
//   MCP authorization spec says: the 403's scope goes into a new authorization
//   request;
// - a client holding a refresh token stops with "Server returned 403 after
//   trying upscoping"; clearing all its tokens does not help; dropping the
//   refresh token alone (the access token kept) and calling again on a new
//   transport does: the 403's scope goes into the authorization request.
import type { Browser as Chromium } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientMetadata } from '@modelcontextprotocol/sdk/shared/auth.js';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../browser/chromium.js';
import { START_URL, startCli } from '../e2e/run.js';
import { InMemoryProvider, startServers, type Servers } from './support.js';

let servers: Servers;
let chromium: Chromium;

beforeAll(async () => {
  chromium = await launchChromium();
  servers = await startServers();
}, 60_000);

afterAll(async () => {
  await chromium?.close();
  await servers?.stop();
});

/** The owner: `delegate approve --no-browser '<url>'`, its /start opened in Chromium, Approve; where the browser was sent (the client's redirect URI with the code). */
async function approveInChromium(authorizationUrl: URL, redirectUri: string, consentTexts: string[]): Promise<URL> {
  const cli = startCli(['approve', '--no-browser', '--auth-port', new URL(servers.issuer).port, authorizationUrl.href], servers.home);
  const start = await cli.loginUrl;
  expect(start).toMatch(START_URL);
  const page = await chromium.newPage();
  try {
    await page.goto(start);
    const approve = page.getByRole('button', { name: 'Approve', exact: true });
    await approve.waitFor();
    consentTexts.push(await page.locator('main').innerText());
    // Nothing listens at the client's redirect URI: the browser's request to it is what the client would receive.
    const [callback] = await Promise.all([page.waitForRequest((r) => r.url().startsWith(redirectUri)), approve.click()]);
    const run = await cli.done;
    expect(run.code, run.stderr).toBe(0);
    return new URL(callback.url());
  } finally {
    await page.close();
  }
}

/** A provider whose owner approves in Chromium; `refreshTokens: false` registers without the refresh_token grant. */
function provider(options: { refreshTokens: boolean }): { provider: InMemoryProvider; consentTexts: string[] } {
  const consentTexts: string[] = [];
  const p: InMemoryProvider = new (class extends InMemoryProvider {
    override get clientMetadata(): OAuthClientMetadata {
      const metadata = super.clientMetadata;
      return options.refreshTokens ? metadata : { ...metadata, grant_types: ['authorization_code'] };
    }
  })((url) => approveInChromium(url, p.redirectUrl, consentTexts));
  return { provider: p, consentTexts };
}

const agentUrl = () => new URL(servers.agentUrl);
const codeOf = (p: InMemoryProvider) => p.landedOn!.searchParams.get('code')!;
const scopeOf = (p: InMemoryProvider) => String(decodeJwt(p.savedTokens!.access_token).scope);
const refusedWith = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);

/** Signs in as an SDK client first does (the 401, the authorization request, finishAuth) and connects. */
async function signedIn(p: InMemoryProvider): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  expect(await refusedWith(new Client({ name: 'sdk-step-up', version: '1.0.0' }).connect(new StreamableHTTPClientTransport(agentUrl(), { authProvider: p })))).toBeInstanceOf(
    UnauthorizedError,
  );
  return connectedAfter(p, new StreamableHTTPClientTransport(agentUrl(), { authProvider: p }));
}

async function connectedAfter(p: InMemoryProvider, transport: StreamableHTTPClientTransport): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  await transport.finishAuth(codeOf(p));
  const client = new Client({ name: 'sdk-step-up', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

const findSlot = (client: Client) => client.callTool({ name: 'find_slot', arguments: { duration: '30m' } });
const listBusy = (client: Client) => client.callTool({ name: 'list_busy', arguments: {} });

describe('step-up to list_busy by an MCP SDK 1.x client over HTTP', () => {
  it('registered without the refresh_token grant: the 403 leads to an authorization request for both scopes, and list_busy works after it', { timeout: 120_000 }, async () => {
    const { provider: p, consentTexts } = provider({ refreshTokens: false });
    const { client, transport } = await signedIn(p);
    try {
      expect(p.authorizationUrls[0]!.searchParams.get('scope')).toBe('slots:find');
      expect(p.savedTokens?.refresh_token).toBeUndefined();
      expect(scopeOf(p)).toBe('slots:find');
      expect((await findSlot(client)).isError).toBeFalsy();

      // list_busy: 403 insufficient_scope; with no refresh token the SDK asks for the 403's scope, and the owner approves.
      expect(await refusedWith(listBusy(client))).toBeInstanceOf(UnauthorizedError);
      expect(p.authorizationUrls).toHaveLength(2);
      expect(p.authorizationUrls[1]!.searchParams.get('scope')).toBe('slots:find busy:read');
      expect(consentTexts[1]).not.toContain('Nothing more than today');
      await transport.finishAuth(codeOf(p));
      expect(scopeOf(p)).toBe('slots:find busy:read');
      const busy = await listBusy(client);
      expect(busy.isError, JSON.stringify(busy.content)).toBeFalsy();
      expect((await findSlot(client)).isError).toBeFalsy();
    } finally {
      await client.close();
    }
  });

  it('holding a refresh token: stops after refreshing; clearing its tokens asks for slots:find again; dropping only the refresh token steps up', { timeout: 180_000 }, async () => {
    const { provider: p, consentTexts } = provider({ refreshTokens: true });
    const first = await signedIn(p);
    try {
      expect(p.savedTokens?.refresh_token).toBeTruthy();
      expect((await findSlot(first.client)).isError).toBeFalsy();
      // The SDK refreshes (same scope: RFC 6749 §6), gets the same 403 and stops; nobody was asked.
      const stopped = await refusedWith(listBusy(first.client));
      expect(stopped).toBeInstanceOf(StreamableHTTPError);
      expect((stopped as StreamableHTTPError).code).toBe(403);
      expect((stopped as Error).message).toContain('Server returned 403 after trying upscoping');
      expect(p.authorizationUrls).toHaveLength(1);
      expect(scopeOf(p)).toBe('slots:find');
    } finally {
      await first.client.close();
    }

    // Its tokens cleared (registration kept): the 401 names slots:find, and so the request asks for nothing more.
    p.savedTokens = undefined;
    const cleared = await signedIn(p);
    try {
      expect(p.authorizationUrls).toHaveLength(2);
      expect(p.authorizationUrls[1]!.searchParams.get('scope')).toBe('slots:find');
      expect(consentTexts[1]).toContain('Nothing more than today');
      expect(scopeOf(p)).toBe('slots:find');
      expect(await refusedWith(listBusy(cleared.client))).toMatchObject({ code: 403, message: expect.stringContaining('Server returned 403 after trying upscoping') });
    } finally {
      await cleared.client.close();
    }

    // The refresh token dropped, the access token kept, a new transport: the 403's scope goes into the authorization request.
    const { refresh_token: _dropped, ...accessOnly } = p.savedTokens!;
    p.savedTokens = accessOnly;
    const transport = new StreamableHTTPClientTransport(agentUrl(), { authProvider: p });
    const client = new Client({ name: 'sdk-step-up', version: '1.0.0' });
    await client.connect(transport);
    try {
      expect(await refusedWith(listBusy(client))).toBeInstanceOf(UnauthorizedError);
      expect(p.authorizationUrls).toHaveLength(3);
      expect(p.authorizationUrls[2]!.searchParams.get('scope')).toBe('slots:find busy:read');
      expect(consentTexts[2]).not.toContain('Nothing more than today');
      await transport.finishAuth(codeOf(p));
      expect(scopeOf(p)).toBe('slots:find busy:read');
      expect(p.savedTokens?.refresh_token).toBeTruthy();
      const busy = await listBusy(client);
      expect(busy.isError, JSON.stringify(busy.content)).toBeFalsy();
    } finally {
      await client.close();
    }
  });
});
