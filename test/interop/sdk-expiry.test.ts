// An MCP TypeScript SDK 1.x client that stepped up to busy:read, after its
// access token expired: one authorization, for both scopes, and list_busy
// works after it. Found in review (s31mcp), with this client against `delegate
// serve`: registered without the refresh_token grant (README's way to step up
// with SDK 1.x), its expired token got a 401 naming scope="slots:find" alone,
// it authorized for that, and list_busy's 403 asked for busy:read again: two
// authorizations (two consent pages) at every expiry. The SDK's Client, StreamableHTTPClientTransport
// and an OAuthClientProvider of the test's (in memory), against the three
// servers built as the CLI builds them (test/security/stack.ts); the owner
// approves each request as a person does: `delegate approve '<url>'` (the
// built CLI), the consent page, Approve (approveAuthorization). The expiry is
// the client's token re-signed by the AS's key with exp in the past, its other
// claims as issued: what the agent sees of that token ten minutes on.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientMetadata } from '@modelcontextprotocol/sdk/shared/auth.js';
import { SignJWT, decodeJwt, decodeProtectedHeader, importJWK, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issuerSigningKey, startStack, type Stack } from '../security/stack.js';
import { InMemoryProvider, approveAuthorization } from './support.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.close();
});

/** A client registered without the refresh_token grant, whose owner approves each request as a person does (`delegate approve`, the consent page, Approve). */
function provider(): InMemoryProvider {
  return new (class extends InMemoryProvider {
    override get clientMetadata(): OAuthClientMetadata {
      return { ...super.clientMetadata, grant_types: ['authorization_code'] };
    }
  })((url) => approveAuthorization(stack, url));
}

const agentUrl = () => new URL(stack.agentUrl);
const codeOf = (p: InMemoryProvider) => p.landedOn!.searchParams.get('code')!;
const scopeOf = (p: InMemoryProvider) => String(decodeJwt(p.savedTokens!.access_token).scope);
const refusedWith = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);
const findSlot = (client: Client) => client.callTool({ name: 'find_slot', arguments: { duration: '30m' } });
const listBusy = (client: Client) => client.callTool({ name: 'list_busy', arguments: {} });

/** The access token as the agent sees it once its ten minutes are over: the same claims, signed by the same key, exp passed. */
async function expired(token: string): Promise<string> {
  const key = await issuerSigningKey(stack);
  const header = decodeProtectedHeader(token);
  expect(header.kid).toBe(key.kid);
  const claims = decodeJwt(token);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...claims, iat: now - 720, exp: now - 120 })
    .setProtectedHeader({ alg: 'ES256', typ: String(header.typ), kid: key.kid })
    .sign((await importJWK(key.privateJwk, 'ES256')) as CryptoKey);
}

describe('an MCP SDK 1.x client (no refresh token) after a step-up, when its access token expires', () => {
  it('authorizes once, for both scopes, and list_busy works after it', { timeout: 60_000 }, async () => {
    const p = provider();
    // The first sign-in: slots:find.
    expect(await refusedWith(new Client({ name: 'sdk-expiry', version: '1.0.0' }).connect(new StreamableHTTPClientTransport(agentUrl(), { authProvider: p })))).toBeInstanceOf(
      UnauthorizedError,
    );
    const transport = new StreamableHTTPClientTransport(agentUrl(), { authProvider: p });
    await transport.finishAuth(codeOf(p));
    const client = new Client({ name: 'sdk-expiry', version: '1.0.0' });
    await client.connect(transport);
    try {
      expect(scopeOf(p)).toBe('slots:find');
      expect(p.savedTokens?.refresh_token).toBeUndefined();
      // The step-up: list_busy's 403 names both scopes, the SDK asks for them, the owner approves.
      expect(await refusedWith(listBusy(client))).toBeInstanceOf(UnauthorizedError);
      expect(p.authorizationUrls[1]!.searchParams.get('scope')).toBe('slots:find busy:read');
      await transport.finishAuth(codeOf(p));
      expect(scopeOf(p)).toBe('slots:find busy:read');
      expect((await listBusy(client)).isError).toBeFalsy();
      expect(p.authorizationUrls).toHaveLength(2);

      // Ten minutes on: the token has expired. The 401 names what it held, so the one authorization asks for both.
      p.savedTokens = { ...p.savedTokens!, access_token: await expired(p.savedTokens!.access_token) };
      expect(await refusedWith(listBusy(client))).toBeInstanceOf(UnauthorizedError);
      expect(p.authorizationUrls).toHaveLength(3);
      expect(p.authorizationUrls[2]!.searchParams.get('scope')).toBe('slots:find busy:read');
      await transport.finishAuth(codeOf(p));
      expect(scopeOf(p)).toBe('slots:find busy:read');
      const busy = await listBusy(client);
      expect(busy.isError, JSON.stringify(busy.content)).toBeFalsy();
      expect((await findSlot(client)).isError).toBeFalsy();
      // One authorization (one consent page, approveAuthorization) after the expiry, no second one for busy:read.
      expect(p.authorizationUrls).toHaveLength(3);
    } finally {
      await client.close();
    }
  });
});
