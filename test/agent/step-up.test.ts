// Step-up on the real authorization server, calendar backend and agent: a
// client holding only slots:find calls list_busy, gets the agent's scope
// challenge (403 insufficient_scope naming both scopes), authorizes again with
// exactly the scope the challenge named, and the retried call succeeds; the
// new token keeps slots:find, so nothing was lost. Played at the wire level:
// how delegate's CLI reacts to the challenge is the client's own test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { decodeJwt } from 'jose';
import { auth, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed } from '@modelcontextprotocol/sdk/shared/auth.js';
import { buildAgentServer } from '../../src/agent/server.js';
import { buildCalendarServer } from '../../src/calendar/server.js';
import { SCOPE_BUSY_READ } from '../../src/delegation/index.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';

const REDIRECT = 'http://127.0.0.1:43123/callback';
let authz: TestAuthz;
let calendar: FastifyInstance;
let agent: FastifyInstance;

beforeAll(async () => {
  authz = await startTestAuthz();
  // bootstrapLocal registers CalendarAgent with the scopes of both its tools.
  expect((await authz.store.resourceByUrl(authz.agentUrl))?.scopes).toContain(SCOPE_BUSY_READ);
  calendar = await buildCalendarServer({
    resourceUrl: authz.calendarUrl,
    issuer: authz.issuer,
    calendarsFor: async (sub) => {
      const user = await authz.store.userById(sub);
      if (!user) return undefined;
      const calendars = await authz.store.listCalendars(user.id);
      return { timeZone: user.timeZone, calendars: calendars.filter((c) => c.kind === 'file').map((c) => ({ name: c.name, path: c.source })) };
    },
  });
  await calendar.listen({ port: Number(new URL(authz.calendarUrl).port), host: '127.0.0.1' });
  agent = await buildAgentServer({
    resourceUrl: authz.agentUrl,
    issuer: authz.issuer,
    calendarUrl: authz.calendarUrl,
    clientId: authz.agent.clientId,
    privateKey: authz.agent.privateJwk,
  });
  await agent.listen({ port: Number(new URL(authz.agentUrl).port), host: '127.0.0.1' });
});

afterAll(async () => {
  await agent?.close();
  await calendar?.close();
  await authz?.close();
});

/** The owner approves `scope` for `clientId` on the consent page; the client redeems the code. */
async function authorize(clientId: string, scope: string): Promise<{ accessToken: string; consentShown: boolean }> {
  const { verifier, challenge } = pkcePair();
  const browser = new Browser();
  const page = await signInAndOpenConsent(
    browser,
    authz.issuer,
    authz.ownerJwk,
    authorizeUrl(authz.issuer, { clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope, state: 's', challenge }),
  );
  let location = page.location;
  const consentShown = page.status === 200;
  if (consentShown) location = (await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' })).location;
  const code = callbackParams(location!).get('code');
  expect(code, `no code: ${page.status} ${location}`).toBeTruthy();
  const res = await postForm(`${authz.issuer}/token`, { grant_type: 'authorization_code', code: code!, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId, resource: authz.agentUrl });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { accessToken: String(res.body.access_token), consentShown };
}

function callTool(token: string, name: string, args: Record<string, unknown>) {
  return fetch(authz.agentUrl, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } }),
  });
}

/** The `scope` a Bearer challenge names. */
function challengedScope(res: Response): string | undefined {
  return /scope="([^"]*)"/.exec(res.headers.get('www-authenticate') ?? '')?.[1];
}

// Found in review (mcp-spec): the protected resource metadata listed every scope, and a client that starts without a
// challenge in hand (MCP's scope selection: all of scopes_supported) asked for busy:read up front.
describe('a client that signs in before any challenge', () => {
  it('asks for slots:find only (the MCP SDK’s auth(), discovering from the agent’s metadata)', async () => {
    let redirectedTo: URL | undefined;
    let client: OAuthClientInformationMixed | undefined;
    const provider: OAuthClientProvider = {
      redirectUrl: REDIRECT,
      clientMetadata: { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], client_name: 'scope-probe' },
      clientInformation: () => client,
      saveClientInformation: (info) => void (client = info),
      tokens: () => undefined,
      saveTokens: () => undefined,
      redirectToAuthorization: (url) => void (redirectedTo = url),
      saveCodeVerifier: () => undefined,
      codeVerifier: () => 'unused',
    };
    expect(await auth(provider, { serverUrl: authz.agentUrl })).toBe('REDIRECT');
    expect(redirectedTo?.searchParams.get('scope')).toBe('slots:find');
    expect(redirectedTo?.searchParams.get('resource')).toBe(authz.agentUrl);
  });
});

describe('step-up from slots:find to busy:read', () => {
  it('the challenge names the union; authorizing with it lets the retried call through without losing slots:find', async () => {
    const clientId = await registerPublicClient(authz.issuer, [REDIRECT]);
    const first = await authorize(clientId, 'slots:find');
    expect(first.consentShown).toBe(true);
    expect((await callTool(first.accessToken, 'find_slot', { duration: '30m' })).status).toBe(200);

    const refused = await callTool(first.accessToken, 'list_busy', {});
    expect(refused.status).toBe(403);
    expect(refused.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    const scope = challengedScope(refused);
    expect(scope).toBe('slots:find busy:read');

    const stepped = await authorize(clientId, scope!);
    expect(stepped.consentShown).toBe(true); // the request widens the grant, so the owner is asked
    expect(String(decodeJwt(stepped.accessToken).scope).split(' ').sort()).toEqual(['busy:read', 'slots:find']);

    const retried = await callTool(stepped.accessToken, 'list_busy', {});
    expect(retried.status).toBe(200);
    const body = (await retried.json()) as { result?: { isError?: boolean; structuredContent?: { busy: unknown[] }; content?: Array<{ type: string; text: string }> } };
    expect(body.result?.isError, JSON.stringify(body)).toBeFalsy();
    expect(Array.isArray(body.result?.structuredContent?.busy)).toBe(true);
    // The prose, then the structured result as serialized JSON (MCP Tools, Structured Content).
    expect(body.result?.content?.map((c) => c.type)).toEqual(['text', 'text']);
    expect(JSON.parse(body.result!.content![1]!.text)).toEqual(body.result?.structuredContent);
    expect((await callTool(stepped.accessToken, 'find_slot', { duration: '30m' })).status).toBe(200);
  });
});

describe('the scope gate with tool names that are no tool', () => {
  it.each(['toString', 'constructor', '__proto__', 'hasOwnProperty', 'no_such_tool'])(
    'a tools/call for %s is the JSON-RPC error -32602 "Unknown tool", not a 500 nor a step-up (found by fuzzing: Object.prototype was taken for the tool table)',
    async (name) => {
      const clientId = await registerPublicClient(authz.issuer, [REDIRECT]);
      const { accessToken } = await authorize(clientId, 'slots:find');
      const res = await callTool(accessToken, name, {});
      expect(res.status).toBe(200);
      // MCP Tools, Error Handling: an unknown tool is a protocol error (the SDK answered a result with isError).
      expect(await res.json()).toEqual({ jsonrpc: '2.0', id: 1, error: { code: -32602, message: `Unknown tool: ${name}` } });
    },
  );
});
