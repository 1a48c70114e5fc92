// CalendarAgent end to end, on real servers on loopback ports: the real
// authorization server (SQLite store, local bootstrap), the real calendar
// backend over the demo calendar, and the agent, called through the MCP SDK
// client with a token obtained by the owner's sign-in and consent. The agent's
// outgoing requests pass through a recording fetch, so the test can show
// where the user's token went (only to the AS's token endpoint) and what the
// calendar saw (the exchanged token).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { decodeJwt } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { buildAgentServer } from '../../src/agent/server.js';
import { createTokenExchanger, TokenExchangeError } from '../../src/agent/exchange.js';
import { agentMcpDeps, createAgentMcpServer } from '../../src/agent/mcp.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { buildCalendarServer } from '../../src/calendar/server.js';
import type { Store } from '../../src/store/index.js';
import type { AccessTokenClaims } from '../../src/delegation/index.js';
import { es256Key, registerTestAgent, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { createApp } from '../../src/http/app.js';

interface Sent {
  method: string;
  url: string;
  authorization: string | null;
  body: string;
}

let authz: TestAuthz;
let calendar: FastifyInstance | undefined;
let agent: FastifyInstance;
let user: { clientId: string; accessToken: string };
const sent: Sent[] = [];

/** A fetch that records what the agent sends before sending it for real. */
const recordingFetch: typeof fetch = async (input, init) => {
  const url = input instanceof Request ? input.url : String(input);
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  sent.push({ method: init?.method ?? 'GET', url, authorization: headers.get('authorization'), body: typeof init?.body === 'string' ? init.body : '' });
  return fetch(input, init);
};

function calendarsFor(store: Store) {
  return async (sub: string) => {
    const owner = await store.userById(sub);
    if (!owner) return undefined;
    const calendars = await store.listCalendars(owner.id);
    return { timeZone: owner.timeZone, calendars: calendars.filter((c) => c.kind === 'file').map((c) => ({ name: c.name, path: c.source })) };
  };
}

async function startCalendar(): Promise<FastifyInstance> {
  const app = await buildCalendarServer({ resourceUrl: authz.calendarUrl, issuer: authz.issuer, calendarsFor: calendarsFor(authz.store) });
  await app.listen({ port: Number(new URL(authz.calendarUrl).port), host: '127.0.0.1' });
  return app;
}

/** The owner signs in, approves the consent page for a freshly registered client, and the client redeems the code. */
async function userToken(): Promise<{ clientId: string; accessToken: string }> {
  const redirectUri = 'http://127.0.0.1:43123/callback';
  const clientId = await registerPublicClient(authz.issuer, [redirectUri]);
  const { verifier, challenge } = pkcePair();
  const browser = new Browser();
  const page = await signInAndOpenConsent(
    browser,
    authz.issuer,
    authz.ownerJwk,
    authorizeUrl(authz.issuer, { clientId, redirectUri, resource: authz.agentUrl, scope: 'slots:find', state: 's', challenge }),
  );
  expect(page.status).toBe(200);
  const decision = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
  const code = callbackParams(decision.location!).get('code')!;
  const res = await postForm(`${authz.issuer}/token`, {
    grant_type: 'authorization_code',
    code,
    code_verifier: verifier,
    redirect_uri: redirectUri,
    client_id: clientId,
    resource: authz.agentUrl,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { clientId, accessToken: String(res.body.access_token) };
}

async function withClient<T>(token: string, use: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ name: 'agent-e2e', version: '0.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(authz.agentUrl), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

const findSlot = (token: string, args: Record<string, string | number>) =>
  withClient(token, async (client) => (await client.callTool({ name: 'find_slot', arguments: args })) as CallToolResult);

const tokenRequests = () => sent.filter((s) => s.method === 'POST' && s.url === `${authz.issuer}/token`);
const calendarRequests = () => sent.filter((s) => s.url.startsWith(`${authz.calendarUrl}/`));

beforeAll(async () => {
  authz = await startTestAuthz();
  calendar = await startCalendar();
  agent = await buildAgentServer({
    resourceUrl: authz.agentUrl,
    issuer: authz.issuer,
    calendarUrl: authz.calendarUrl,
    clientId: authz.agent.clientId,
    privateKey: authz.agent.privateJwk,
    fetchFn: recordingFetch,
    // Long enough for a cold first parse of the calendar on a busy machine, short enough for the hang test.
    calendarTimeoutMs: 3_000,
  });
  await agent.listen({ port: Number(new URL(authz.agentUrl).port), host: '127.0.0.1' });
  user = await userToken();
});

afterAll(async () => {
  await agent?.close();
  await calendar?.close();
  await authz?.close();
});

describe('find_slot through the whole delegation path', () => {
  it('finds free slots in working hours, in the owner’s time zone, with structured and text results', async () => {
    const result = await findSlot(user.accessToken, { duration: '30m' });
    expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
    const out = result.structuredContent as { found: boolean; timeZone: string; start?: string; end?: string; slots: Array<{ start: string; end: string; timeZone: string }> };
    expect(out.timeZone).toBe('Europe/Berlin');
    expect(out.found).toBe(true);
    expect(out.start).toBe(out.slots[0]!.start);
    expect(out.end).toBe(out.slots[0]!.end);
    expect(out.slots.length).toBeGreaterThan(0);
    expect(out.slots.length).toBeLessThanOrEqual(5);
    for (const slot of out.slots) {
      expect(slot.timeZone).toBe('Europe/Berlin');
      expect(slot.start).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0[12]:00$/);
      expect(Date.parse(slot.end) - Date.parse(slot.start)).toBe(30 * 60_000);
      // Working hours in Berlin: the local clock reads 09:00–17:00, Monday to Friday.
      const hour = Number(slot.start.slice(11, 13));
      const endClock = slot.end.slice(11, 16);
      expect(hour).toBeGreaterThanOrEqual(9);
      expect(endClock <= '17:00').toBe(true);
      const weekday = new Date(`${slot.start.slice(0, 10)}T12:00:00Z`).getUTCDay();
      expect([1, 2, 3, 4, 5]).toContain(weekday);
      expect(Date.parse(slot.start)).toBeGreaterThanOrEqual(Date.now() - 60_000);
    }
    const text = result.content.find((c) => c.type === 'text');
    expect(text && 'text' in text ? text.text : '').toMatch(/^First free 30-minute slot: \w{3} \d{1,2} \w{3} \d{4}, \d{2}:\d{2}–\d{2}:\d{2} \(Europe\/Berlin\)/);
    // MCP Tools, Structured Content: the structured result also as serialized JSON in a text block, after the prose.
    expect(result.content).toHaveLength(2);
    expect(result.content[1]).toEqual({ type: 'text', text: JSON.stringify(result.structuredContent) });
  });

  it('answers a client that listed the tools first, so the SDK client checks the result against the output schema', async () => {
    const result = await withClient(user.accessToken, async (client) => {
      await client.listTools();
      return (await client.callTool({ name: 'find_slot', arguments: { duration: '1h' } })) as CallToolResult;
    });
    expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
    expect(JSON.parse((result.content[1] as { text: string }).text)).toEqual(result.structuredContent);
  });

  it('exchanged the user’s token for a calendar token: calendar audience, freebusy:read only, the agent as actor', async () => {
    const exchange = tokenRequests().at(-1)!;
    const form = new URLSearchParams(exchange.body);
    expect(form.get('grant_type')).toBe('urn:ietf:params:oauth:grant-type:token-exchange');
    expect(form.get('subject_token')).toBe(user.accessToken);
    expect(form.get('resource')).toBe(authz.calendarUrl);
    expect(form.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');

    const used = calendarRequests().at(-1)!;
    const calendarToken = used.authorization!.replace(/^Bearer /, '');
    const claims = decodeJwt(calendarToken) as unknown as AccessTokenClaims;
    const subject = decodeJwt(user.accessToken) as unknown as AccessTokenClaims;
    expect(claims).toMatchObject({
      iss: authz.issuer,
      aud: authz.calendarUrl,
      scope: 'freebusy:read',
      client_id: 'calendar-agent',
      sub: subject.sub,
      grant_id: subject.grant_id,
      act: { sub: 'calendar-agent', act: { sub: user.clientId } },
    });
    expect(claims.exp).toBeLessThanOrEqual(subject.exp);
  });

  it('never passes the user’s token through: it went to the token endpoint only, in the request body', async () => {
    const carrying = sent.filter((s) => s.body.includes(user.accessToken) || s.url.includes(user.accessToken) || s.authorization?.includes(user.accessToken));
    expect(carrying.length).toBeGreaterThan(0);
    for (const s of carrying) {
      expect(s.url).toBe(`${authz.issuer}/token`);
      expect(s.authorization).toBeNull();
    }
    for (const s of calendarRequests()) expect(s.authorization).not.toContain(user.accessToken);
  });

  it('refuses the user’s own token at the calendar backend (a passthrough would not work)', async () => {
    const res = await fetch(`${authz.calendarUrl}/freebusy?from=${new Date().toISOString()}&to=${new Date(Date.now() + 86_400_000).toISOString()}`, {
      headers: { Authorization: `Bearer ${user.accessToken}` },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('reuses the cached exchange on the next call instead of exchanging again', async () => {
    const exchangesBefore = tokenRequests().length;
    const tokenBefore = calendarRequests().at(-1)!.authorization;
    const result = await findSlot(user.accessToken, { duration: '1h', timeZone: 'America/New_York' });
    expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
    expect((result.structuredContent as { timeZone: string }).timeZone).toBe('America/New_York');
    expect(tokenRequests().length).toBe(exchangesBefore);
    expect(calendarRequests().at(-1)!.authorization).toBe(tokenBefore);
  });

  it('exchanges separately for another user token', async () => {
    const other = await userToken();
    const exchangesBefore = tokenRequests().length;
    const result = await findSlot(other.accessToken, { duration: '15m' });
    expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
    expect(tokenRequests().length).toBe(exchangesBefore + 1);
  });

  // Found in review (s31mcp): `{"duration": 30}` was refused by the input schema ("expected string, received number")
  // while "45" was taken as minutes and the tool's own message invited "45 (minutes)".
  it('takes a whole number of minutes as the duration, and as a span', async () => {
    const result = await findSlot(user.accessToken, { duration: 30 });
    expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
    const out = result.structuredContent as { found: boolean; slots: Array<{ start: string; end: string }> };
    expect(out.found).toBe(true);
    for (const slot of out.slots) expect(Date.parse(slot.end) - Date.parse(slot.start)).toBe(30 * 60_000);
    expect((result.content[0] as { text: string }).text).toMatch(/^First free 30-minute slot: /);
    // A span too: slots start on multiples of 60 minutes after local midnight.
    const hourly = await findSlot(user.accessToken, { duration: 45, step: 60 });
    expect(hourly.isError, JSON.stringify(hourly.content)).toBeFalsy();
    const starts = (hourly.structuredContent as { slots: Array<{ start: string; end: string }> }).slots;
    expect(starts.length).toBeGreaterThan(0);
    for (const slot of starts) {
      expect(slot.start.slice(14, 16)).toBe('00');
      expect(Date.parse(slot.end) - Date.parse(slot.start)).toBe(45 * 60_000);
    }
  });
});

// Found in review (s31mcp): a browser page fetching CalendarAgent's metadata with MCP-Protocol-Version failed, the
// preflight answered 405 with no CORS headers, where the authorization server's metadata answers one.
describe('CORS preflights for the metadata of all three servers', () => {
  const corsOf = async (url: string) => {
    const res = await fetch(url, {
      method: 'OPTIONS',
      headers: { Origin: 'http://localhost:16274', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'mcp-protocol-version' },
    });
    return { status: res.status, headers: Object.fromEntries([...res.headers].filter(([name]) => name.startsWith('access-control-'))) };
  };

  it('answers them at the agent and the calendar backend as the authorization server answers for its own', async () => {
    const as = await corsOf(`${authz.issuer}/.well-known/oauth-authorization-server`);
    expect(as.status).toBe(204);
    expect(as.headers['access-control-allow-headers']?.toLowerCase()).toContain('mcp-protocol-version');
    const agentOrigin = new URL(authz.agentUrl).origin;
    for (const url of [`${agentOrigin}/.well-known/oauth-protected-resource/mcp`, `${agentOrigin}/.well-known/oauth-protected-resource`, `${authz.calendarUrl}/.well-known/oauth-protected-resource`]) {
      expect(await corsOf(url), url).toEqual(as);
      const get = await fetch(url, { headers: { Origin: 'http://localhost:16274', 'MCP-Protocol-Version': '2025-11-25' } });
      expect(get.status, url).toBe(200);
      expect(get.headers.get('access-control-allow-origin'), url).toBe('*');
    }
  });
});

/** find_slot for 45 minutes through the MCP server without HTTP (as stdio uses it), acting under `callerToken`. */
async function findSlotInProcess(callerToken: () => string | undefined): Promise<CallToolResult> {
  const server = createAgentMcpServer(
    agentMcpDeps({ issuer: authz.issuer, calendarUrl: authz.calendarUrl, clientId: authz.agent.clientId, privateKey: authz.agent.privateJwk, callerToken }),
  );
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'stdio-like', version: '0.0.0' });
  await client.connect(clientSide);
  try {
    return (await client.callTool({ name: 'find_slot', arguments: { duration: '45m' } })) as CallToolResult;
  } finally {
    await client.close();
    await server.close();
  }
}

describe('the MCP server without HTTP (as a stdio transport will use it)', () => {
  it('acts under the token it is given, through a linked transport pair', async () => {
    const result = await findSlotInProcess(() => user.accessToken);
    expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ found: true, timeZone: 'Europe/Berlin' });
  });

  it('says so when there is no delegation to act under', async () => {
    const result = await findSlotInProcess(() => undefined);
    expect(result.isError).toBe(true);
    expect(JSON.stringify(result.content)).toMatch(/no delegation/);
  });
});

describe('exchanges the authorization server refuses', () => {
  it('an exchange attempted by a different client is refused (invalid_request, RFC 8693 §2.2.2)', async () => {
    const other = await registerTestAgent(authz, 'other-agent', 'http://127.0.0.1:9/mcp');
    const key = { privateJwk: other.privateJwk };
    const stranger = createTokenExchanger({ issuer: authz.issuer, clientId: 'other-agent', privateKey: key.privateJwk });
    const error = await stranger.exchange(user.accessToken, { resource: authz.calendarUrl, scope: 'freebusy:read' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenExchangeError);
    expect((error as TokenExchangeError).code).toBe('invalid_request');
  });

  it('a tool call under a delegation the AS no longer honours is a tool error that names the reason and asks to sign in again', async () => {
    // Over stdio nothing checks the caller's token at the door: the exchange's refusal (invalid_request,
    // RFC 8693 §2.2.2) is what the person sees, and it must not read as a passing fault ("try again shortly").
    const ended = await userToken();
    await authz.store.revokeGrant(String(decodeJwt(ended.accessToken).grant_id), Date.now(), 'test');
    const result = await findSlotInProcess(() => ended.accessToken);
    expect(result.isError).toBe(true);
    const text = JSON.stringify(result.content);
    expect(text).toMatch(/would not let CalendarAgent act on this delegation: The (subject token has been revoked|delegation behind the subject token has ended)\. Sign in again\./);
    expect(text).not.toMatch(/try again shortly/i);
  });

  it('a client that cannot prove it is the agent is refused (invalid_client)', async () => {
    const impostorKey = await es256Key();
    const impostor = createTokenExchanger({ issuer: authz.issuer, clientId: 'calendar-agent', privateKey: { ...impostorKey.privateJwk, kid: authz.agent.privateJwk.kid } });
    await expect(impostor.exchange(user.accessToken, { resource: authz.calendarUrl, scope: 'freebusy:read' })).rejects.toMatchObject({ code: 'invalid_client' });
  });

  it('after the grant is revoked, the AS refuses to exchange its token and the agent refuses it at the door', async () => {
    const revoked = await userToken();
    await authz.store.revokeGrant(String(decodeJwt(revoked.accessToken).grant_id), Date.now(), 'test');
    const exchanger = createTokenExchanger({ issuer: authz.issuer, clientId: authz.agent.clientId, privateKey: authz.agent.privateJwk });
    await expect(exchanger.exchange(revoked.accessToken, { resource: authz.calendarUrl, scope: 'freebusy:read' })).rejects.toMatchObject({ code: 'invalid_request' });
    // The agent learns of it through its revocation list (test/resource/revocation-delay.test.ts measures how soon).
    const ask = () =>
      fetch(authz.agentUrl, {
        method: 'POST',
        headers: { Authorization: `Bearer ${revoked.accessToken}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
    let res = await ask();
    for (let i = 0; res.status !== 401 && i < 500; i++) res = await new Promise((r) => setTimeout(r, 20)).then(ask);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(((await res.json()) as { error_description: string }).error_description).toMatch(/revoked/);
  });
});

describe('a calendar backend that is down or slow', () => {
  it('gives a clear tool error when the calendar is down, and the agent stays up', async () => {
    await calendar!.close();
    calendar = undefined;
    const started = Date.now();
    const result = await findSlot(user.accessToken, { duration: '30m' });
    expect(result.isError).toBe(true);
    expect(JSON.stringify(result.content)).toMatch(/calendar at .* could not be reached/);
    expect(Date.now() - started).toBeLessThan(3_000);
    const tools = await withClient(user.accessToken, (client) => client.listTools());
    expect(tools.tools[0]!.name).toBe('find_slot');
  });

  it('gives a clear tool error within the timeout when the calendar hangs', async () => {
    // A calendar that accepts the request and never answers (the one stand-in here: a real backend cannot be made to hang).
    const hanging = createApp();
    hanging.get('/freebusy', () => new Promise(() => undefined));
    await hanging.listen({ port: Number(new URL(authz.calendarUrl).port), host: '127.0.0.1' });
    try {
      const started = Date.now();
      const result = await findSlot(user.accessToken, { duration: '30m' });
      expect(result.isError).toBe(true);
      expect(JSON.stringify(result.content)).toMatch(/did not answer within 3 s/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await hanging.close();
    }
  });
});
