// An MCP client other than the delegate CLI, connected over HTTP with the MCP
// SDK's own client and auth flow, after the calendar backend moved (the agent
// now reads it at another address than the one the owner approved). Found in
// review: its find_slot got HTTP 200 and a tool error saying to run
// `delegate login`, which re-approves only the CLI's grant (grants are per
// user, client and resource), so this client's still-valid token kept being
// refused and nothing made it authorize again. Now the agent answers the
// call with the MCP scope challenge (403 insufficient_scope, RFC 6750 §3.1);
// the SDK authorizes again, the owner gets the consent page naming the new
// address, and the retried call finds a slot. All real: the three servers as
// the CLI builds them, SQLite, the SDK client; the person is the test's browser.
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { unreachedCalendar } from '../../src/agent/delegation.js';
import { buildAgent, buildCalendar, storeAudit } from '../../src/cli/servers.js';
import { Browser, callbackParams, parseConsentForm, postForm, signInAndOpenConsent } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { REDIRECT, auditSince, lastAuditSeq, startStack, type Stack } from '../security/stack.js';

let stack: Stack | undefined;
const moved: FastifyInstance[] = [];

afterEach(async () => {
  for (const app of moved.splice(0)) await app.close();
  await stack?.close();
  stack = undefined;
});

/** An OAuthClientProvider kept in memory, as an MCP host keeps one; `keepRefreshToken: false` keeps access tokens only. */
function memoryProvider(keepRefreshToken: boolean) {
  let client: OAuthClientInformationMixed | undefined;
  let tokens: OAuthTokens | undefined;
  let verifier = '';
  const redirects: URL[] = [];
  const provider: OAuthClientProvider = {
    redirectUrl: REDIRECT,
    clientMetadata: {
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      client_name: 'Another MCP host',
    },
    state: () => 'state-1',
    clientInformation: () => client,
    saveClientInformation: (info) => void (client = info),
    tokens: () => tokens,
    saveTokens: (saved) => {
      const { refresh_token, ...rest } = saved;
      tokens = keepRefreshToken && refresh_token !== undefined ? { ...rest, refresh_token } : rest;
    },
    redirectToAuthorization: (url) => void redirects.push(url),
    saveCodeVerifier: (v) => void (verifier = v),
    codeVerifier: () => verifier,
    // As the SDK's own example providers do: the SDK drops what the AS refused (invalid_grant: the tokens) and asks again.
    invalidateCredentials: (scope) => {
      if (scope === 'all' || scope === 'tokens') tokens = undefined;
      if (scope === 'all' || scope === 'client') client = undefined;
    },
  };
  return { provider, redirects };
}

/** The SDK client on the agent, with every answer to a POST noted (status and challenge); `reconnect` starts a new transport, as after finishAuth. */
function sdkClient(agentUrl: string, provider: OAuthClientProvider) {
  const answers: Array<{ status: number; challenge: string | null }> = [];
  const open = () => ({
    client: new Client({ name: 'another-host', version: '1.0.0' }),
    transport: new StreamableHTTPClientTransport(new URL(agentUrl), {
      authProvider: provider,
      fetch: async (url, init) => {
        const res = await fetch(url, init);
        if (init?.method === 'POST' && String(url) === agentUrl) answers.push({ status: res.status, challenge: res.headers.get('www-authenticate') });
        return res;
      },
    }),
  });
  return { ...open(), answers, open };
}

/** The owner follows the authorization URL the SDK asked to open, sees the consent page and approves it; the code. */
async function ownerApproves(s: Stack, url: URL): Promise<{ html: string; code: string }> {
  const browser = new Browser();
  const page = await signInAndOpenConsent(browser, s.issuer, s.ownerJwk, url.href);
  expect(page.status, `no consent page: ${page.status} ${page.location}`).toBe(200);
  const answer = await browser.post(`${s.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
  const code = callbackParams(answer.location!).get('code');
  expect(code, `no code: ${answer.status} ${answer.location}`).toBeTruthy();
  return { html: page.html, code: code! };
}

/** The calendar backend moves to another port: the AS records CalendarAgent reading there (as a start on that port does), and the agent restarts reading there. */
async function moveCalendar(s: Stack): Promise<string> {
  const newCalendar = `http://127.0.0.1:${await freePort()}`;
  const calendar = await buildCalendar(s.store, s.paths, newCalendar, s.issuer);
  await calendar.listen({ port: Number(new URL(newCalendar).port), host: '127.0.0.1' });
  moved.push(calendar);
  const agentRecord = (await s.store.resourceByUrl(s.agentUrl))!;
  await s.store.upsertResource({ ...agentRecord, downstream: agentRecord.downstream.map((d) => ({ ...d, resource: newCalendar })) });
  await s.apps.agent.close();
  const agent = await buildAgent(s.paths, { issuer: s.issuer, calendarUrl: newCalendar, agentUrl: s.agentUrl }, undefined, storeAudit(s.store));
  await agent.listen({ port: s.ports.agent, host: '127.0.0.1' });
  moved.push(agent);
  return newCalendar;
}

function findSlot(client: Client) {
  return client.callTool({ name: 'find_slot', arguments: { duration: '30m' } }) as Promise<CallToolResult>;
}

/** Connects as the SDK's auth flow has it: the first try asks for the owner's approval, finishAuth redeems it. */
async function connectAuthorized(s: Stack, c: ReturnType<typeof sdkClient>, redirects: URL[]): Promise<Client> {
  await expect(c.client.connect(c.transport)).rejects.toBeInstanceOf(UnauthorizedError);
  expect(redirects).toHaveLength(1);
  await c.transport.finishAuth((await ownerApproves(s, redirects[0]!)).code);
  const { client, transport } = c.open();
  await client.connect(transport);
  const before = await findSlot(client);
  expect(before.isError, JSON.stringify(before.content)).toBeFalsy();
  return client;
}

describe('an MCP client over HTTP after the calendar moved', () => {
  it('gets the scope challenge, authorizes again through the consent page naming the new address, and find_slot then succeeds', { timeout: 30_000 }, async () => {
    stack = await startStack();
    const oldCalendar = stack.calendarUrl;
    const { provider, redirects } = memoryProvider(false);
    const c = sdkClient(stack.agentUrl, provider);
    const client = await connectAuthorized(stack, c, redirects);

    const newCalendar = await moveCalendar(stack);
    const seq = await lastAuditSeq(stack);
    await expect(findSlot(client)).rejects.toBeInstanceOf(UnauthorizedError); // the SDK went to authorize again
    // Refused before the tool ran: recorded as refused, and no exchange was tried.
    expect((await auditSince(stack, seq)).map((r) => [r.event, r.detail?.outcome, r.detail?.unreached])).toEqual([['tool_call', 'refused', true]]);
    const challenged = c.answers.at(-1)!;
    expect(challenged.status).toBe(403);
    expect(challenged.challenge).toContain('error="insufficient_scope"');
    expect(challenged.challenge).toContain('scope="slots:find"');
    expect(challenged.challenge).toContain(`resource_metadata="${new URL('/.well-known/oauth-protected-resource/mcp', stack.agentUrl).href}"`);
    expect(challenged.challenge).toContain(`The delegation reaches ${oldCalendar}, not ${newCalendar}`);
    expect(redirects).toHaveLength(2);
    expect(redirects[1]!.searchParams.get('scope')).toBe('slots:find');

    // The consent page names the new address (the grant does not reach it); approved, the grant moves.
    const again = await ownerApproves(stack, redirects[1]!);
    expect(again.html).toContain(`at <strong>127.0.0.1:${new URL(newCalendar).port}</strong>`);
    await c.transport.finishAuth(again.code);
    const retried = await findSlot(client);
    expect(retried.isError, JSON.stringify(retried.content)).toBeFalsy();
    expect(retried.structuredContent).toHaveProperty('start');
    await client.close();
  });

  // Found after review (stop 17): a client holding a refresh token refreshed on the challenge, got a token that
  // reached the old address again, was challenged the same way, and gave up (403 after trying upscoping). The AS now
  // refuses that refresh (invalid_grant), so the SDK drops its tokens and authorizes again.
  it('with a refresh token: the refresh is refused, the SDK authorizes again through the consent page, and find_slot then succeeds', { timeout: 30_000 }, async () => {
    stack = await startStack();
    const { provider, redirects } = memoryProvider(true);
    const c = sdkClient(stack.agentUrl, provider);
    const client = await connectAuthorized(stack, c, redirects);
    const refreshToken = (await provider.tokens())?.refresh_token;
    expect(refreshToken).toBeTruthy();

    const newCalendar = await moveCalendar(stack);
    await expect(findSlot(client)).rejects.toBeInstanceOf(UnauthorizedError); // refused refresh, then off to authorize
    expect(redirects).toHaveLength(2);
    const again = await ownerApproves(stack, redirects[1]!);
    expect(again.html).toContain(`at <strong>127.0.0.1:${new URL(newCalendar).port}</strong>`);
    await c.transport.finishAuth(again.code);
    const retried = await findSlot(client);
    expect(retried.isError, JSON.stringify(retried.content)).toBeFalsy();
    // The refused refresh token was left as it was: it refreshes now that the grant reaches the new address.
    const res = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(refreshToken), client_id: String((await provider.clientInformation())?.client_id) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    await client.close();
  });
});

describe('unreachedCalendar (the check behind the challenge)', () => {
  const detail = (locations: unknown) => ({ type: 'calendar', locations, actions: ['freebusy:read'] }) as never;
  it('is silent for a token that reaches the calendar (written either way), has no calendar detail, or names no location', () => {
    expect(unreachedCalendar({ authorization_details: [detail(['http://127.0.0.1:8411'])] }, 'http://127.0.0.1:8411/')).toBeUndefined();
    expect(unreachedCalendar({ authorization_details: [detail(['http://127.0.0.1:8411/'])] }, 'http://127.0.0.1:8411')).toBeUndefined();
    expect(unreachedCalendar({}, 'http://127.0.0.1:8411')).toBeUndefined();
    expect(unreachedCalendar({ authorization_details: [{ type: 'other', locations: ['http://127.0.0.1:9'] }] }, 'http://127.0.0.1:8411')).toBeUndefined();
    expect(unreachedCalendar({ authorization_details: [detail(undefined)] }, 'http://127.0.0.1:8411')).toBeUndefined();
  });
  it('names where the token reaches and where the agent reads when the calendar moved', () => {
    expect(unreachedCalendar({ authorization_details: [detail(['http://127.0.0.1:8411'])] }, 'http://127.0.0.1:9411')).toBe(
      'The delegation reaches http://127.0.0.1:8411, not http://127.0.0.1:9411, where CalendarAgent now reads the calendar: authorize it again to approve the new address.',
    );
  });
});
