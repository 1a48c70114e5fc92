// Any spec-following MCP client, not only delegate's: the MCP SDK's own
// Client and StreamableHTTPClientTransport with an OAuthClientProvider of
// the test's (in-memory, nothing of src/client), against `delegate serve`.
// It discovers the authorization server from the agent's 401 (RFC 9728,
// RFC 8414), registers dynamically (RFC 7591), authorizes with PKCE S256 and
// the resource indicator, and calls find_slot with the token it got.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approveAuthorization, InMemoryProvider, startServers, type Servers } from './support.js';

let servers: Servers;

beforeAll(async () => {
  servers = await startServers();
}, 60_000);

afterAll(async () => {
  await servers?.stop();
});

describe('an unmodified MCP SDK client', () => {
  it('discovers, registers, authorizes with PKCE and calls find_slot', async () => {
    const provider = new InMemoryProvider((url) => approveAuthorization(servers, url));
    const agentUrl = new URL(servers.agentUrl);

    const first = new Client({ name: 'sdk-interop', version: '1.0.0' });
    await expect(first.connect(new StreamableHTTPClientTransport(agentUrl, { authProvider: provider }))).rejects.toBeInstanceOf(UnauthorizedError);

    // Discovery: the agent's protected resource metadata named our authorization server.
    expect(provider.discovery?.resourceMetadata?.resource).toBe(servers.agentUrl);
    expect(provider.discovery?.authorizationServerUrl).toBe(servers.issuer);
    expect(provider.discovery?.authorizationServerMetadata?.issuer).toBe(servers.issuer);
    // Registration (RFC 7591) at the advertised endpoint.
    expect(provider.client?.client_id).toMatch(/^cli_/);
    // PKCE S256 and the resource indicator on the authorization request.
    const [authorization] = provider.authorizationUrls;
    expect(authorization!.origin).toBe(servers.issuer);
    expect(authorization!.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorization!.searchParams.get('resource')).toBe(servers.agentUrl);
    // The browser came back to the client's redirect URI with the code, the state and iss (RFC 9207).
    const landed = provider.landedOn!;
    expect(`${landed.origin}${landed.pathname}`).toBe(provider.redirectUrl);
    expect(landed.searchParams.get('state')).toBe(provider.state());
    expect(landed.searchParams.get('iss')).toBe(servers.issuer);

    const transport = new StreamableHTTPClientTransport(agentUrl, { authProvider: provider });
    await transport.finishAuth(landed.searchParams.get('code')!);
    expect(provider.savedTokens?.token_type).toMatch(/^bearer$/i);
    expect(provider.savedTokens?.refresh_token).toBeTruthy();

    const client = new Client({ name: 'sdk-interop', version: '1.0.0' });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain('find_slot');
      const result = await client.callTool({ name: 'find_slot', arguments: { duration: '30m' } });
      expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
      const out = result.structuredContent as { found: boolean; start: string; end: string };
      expect(out.found).toBe(true);
      expect(Date.parse(out.end) - Date.parse(out.start)).toBe(30 * 60_000);
    } finally {
      await client.close();
    }
  });
});

// RFC 9728 §3.3: the metadata's `resource` must be identical to the URL the client used, or the client must not use
// it. The agent answers any loopback name (the Host check is against DNS rebinding only), so by http://localhost:<port>
// an SDK client got the challenge for http://127.0.0.1:<port>/mcp and auth() stopped at "Protected resource … does
// not match expected …", with no hint of the URL to use (found in spec review, s18). Now: 421, naming it.
describe('an unmodified MCP SDK client that names CalendarAgent by another loopback name', () => {
  it('is refused with 421 naming the URL the agent is published as, while the published URL gets the 401 challenge', async () => {
    const published = servers.agentUrl;
    const alias = new URL(published);
    alias.hostname = 'localhost';
    const named = `CalendarAgent is published as ${published}; connect to that URL.`;
    const neverSignsIn = () => Promise.reject(new Error('the browser should not be sent anywhere'));

    const provider = new InMemoryProvider(neverSignsIn);
    const client = new Client({ name: 'sdk-interop', version: '1.0.0' });
    const refused = await client.connect(new StreamableHTTPClientTransport(alias, { authProvider: provider })).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(StreamableHTTPError);
    expect((refused as StreamableHTTPError).code).toBe(421);
    expect((refused as Error).message).toContain(named);
    // Nothing of the OAuth dance began: no discovery kept, no client registered, no authorization.
    expect(provider.discovery).toBeUndefined();
    expect(provider.client).toBeUndefined();
    expect(provider.authorizationUrls).toEqual([]);

    // auth() called directly (as a client does that authorizes before connecting) stops with the same words.
    const direct = await auth(provider, { serverUrl: alias }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect((direct as Error | undefined)?.message).toContain(named);
    expect(provider.client).toBeUndefined();
    expect(provider.authorizationUrls).toEqual([]);

    // The metadata by that name is refused too (RFC 9728 §3.3: its `resource` would not be the URL used).
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      const res = await fetch(new URL(path, alias));
      expect(res.status, path).toBe(421);
      expect(res.headers.get('cache-control'), path).toMatch(/no-store/);
      expect(await res.json(), path).toEqual({ error: 'invalid_request', error_description: named });
    }

    // By the published URL: the usual 401 challenge, whose metadata the SDK accepts.
    const challenged = new InMemoryProvider(async () => new URL(`${provider.redirectUrl}?error=access_denied`));
    await expect(new Client({ name: 'sdk-interop', version: '1.0.0' }).connect(new StreamableHTTPClientTransport(new URL(published), { authProvider: challenged }))).rejects.toBeInstanceOf(
      UnauthorizedError,
    );
    expect(challenged.discovery?.resourceMetadata?.resource).toBe(published);
    expect(challenged.authorizationUrls).toHaveLength(1);
  });
});
