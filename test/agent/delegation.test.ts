// CalendarAgent as a resource server of issue 3, on real loopback ports with
// tokens signed by a test issuer key: the per-tool scope challenge (a
// tools/call for a tool whose scope the token lacks gets 403
// insufficient_scope naming the union of scopes, before the tool runs), the
// list_busy tool, the user's calendar limits applied before any exchange,
// and the tool_call audit records with the full actor chain. The exchange is
// a stand-in that mints what the AS would (the calendar detail copied, the
// agent as actor); test/resource/revocation-delay.test.ts runs the real AS.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { decodeJwt } from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { buildAgentServer } from '../../src/agent/server.js';
import { agentMcpDeps, createAgentMcpServer } from '../../src/agent/mcp.js';
import type { TokenExchanger } from '../../src/agent/exchange.js';
import { buildCalendarServer } from '../../src/calendar/server.js';
import { STORE_CORRUPT_DESCRIPTION, STORE_FULL_DESCRIPTION, STORE_READ_ONLY_DESCRIPTION, type AccessTokenClaims } from '../../src/delegation/index.js';
import { TokenExchangeError } from '../../src/agent/errors.js';
import type { ResourceAuditRecord } from '../../src/resource/audit.js';
import { StoreError } from '../../src/store/index.js';
import { es256Key } from '../support/authz.js';
import { freePort, testIssuer, type TestIssuer } from './support.js';
import { mcpHeaders, rawRequest } from './http.js';

const ISSUER = 'http://127.0.0.1:8410';
const DAY = 86_400_000;
let dir: string;
let agentPort: number;
let agentUrl: string;
let calendarUrl: string;
let metadataUrl: string;
let userAs: TestIssuer;
let calendarAs: TestIssuer;
let agent: FastifyInstance;
let calendar: FastifyInstance;
let audit: ResourceAuditRecord[] = [];
/** The agent's audit sink fails (a disk full at the authorization server) while this is set. */
let auditFails = false;
/** What the audit sink throws while auditFails: a failure that may pass, unless a test says otherwise. */
let auditFailure: Error = new Error('the audit report timed out');
/** What the calendar backend's audit sink throws, while set: its read cannot be recorded either (the same full disk). */
let calendarAuditFailure: Error | undefined;
/** What the exchange throws, while set: the authorization server cannot issue the calendar token. */
let exchangeFailure: Error | undefined;
let exchanges = 0;
/** Tomorrow 10:00–11:00 UTC: the one busy time in the user's "work" calendar; "private" has 13:00–14:00. */
const tomorrow = new Date(Date.now() + DAY).toISOString().slice(0, 10);
const busyAt = (hour: number) => ({ start: Date.parse(`${tomorrow}T${String(hour).padStart(2, '0')}:00:00Z`), end: Date.parse(`${tomorrow}T${String(hour + 1).padStart(2, '0')}:00:00Z`) });

function ics(uid: string, hour: number): string {
  const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const { start, end } = busyAt(hour);
  return ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', 'BEGIN:VEVENT', `UID:${uid}`, `DTSTAMP:${stamp(Date.now())}`, `DTSTART:${stamp(start)}`, `DTEND:${stamp(end)}`, 'SUMMARY:secret meeting', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
}

/** What the AS's exchange does, as far as the agent can tell: a calendar token, the detail copied, the agent as actor. */
const exchanger: TokenExchanger = {
  async exchange(subjectToken) {
    exchanges++;
    if (exchangeFailure) throw exchangeFailure;
    const subject = decodeJwt(subjectToken) as unknown as AccessTokenClaims;
    const accessToken = await calendarAs.token({
      sub: subject.sub,
      grant_id: subject.grant_id,
      client_id: 'calendar-agent',
      scope: 'freebusy:read',
      act: { sub: 'calendar-agent', act: { sub: subject.client_id } },
      ...(subject.authorization_details ? { authorization_details: subject.authorization_details } : {}),
    });
    return { accessToken, expiresAt: Date.now() + 300_000, scope: 'freebusy:read' };
  },
  forget() {},
  cacheSize: 0,
};

/** The user's token for the agent; `limits` become its calendar detail. */
function userToken(scope: string, limits?: Record<string, unknown>, claims: Partial<AccessTokenClaims> = {}) {
  return userAs.token({
    scope,
    sub: 'usr_owner',
    client_id: 'delegate-cli',
    grant_id: 'grt_user',
    authorization_details: [{ type: 'calendar', locations: [calendarUrl], actions: ['freebusy:read'], datatypes: ['freebusy'], ...limits }],
    ...claims,
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-agent-delegation-'));
  await writeFile(join(dir, 'work.ics'), ics('w@test', 10));
  await writeFile(join(dir, 'private.ics'), ics('p@test', 13));
  agentPort = await freePort();
  agentUrl = `http://127.0.0.1:${agentPort}/mcp`;
  metadataUrl = `http://127.0.0.1:${agentPort}/.well-known/oauth-protected-resource/mcp`;
  const calendarPort = await freePort();
  calendarUrl = `http://127.0.0.1:${calendarPort}`;
  userAs = await testIssuer(ISSUER, { aud: agentUrl });
  // One signing key for both audiences, as the AS has.
  calendarAs = { ...userAs, token: (claims = {}, header = {}) => userAs.token({ aud: calendarUrl, ...claims }, header) };

  calendar = await buildCalendarServer({
    resourceUrl: calendarUrl,
    issuer: ISSUER,
    keys: userAs.keys,
    revocations: false,
    audit: async () => {
      if (calendarAuditFailure) throw calendarAuditFailure;
    },
    calendarsFor: async (sub) =>
      sub === 'usr_owner'
        ? { timeZone: 'UTC', calendars: [{ name: 'work', path: join(dir, 'work.ics') }, { name: 'private', path: join(dir, 'private.ics') }] }
        : undefined,
  });
  await calendar.listen({ port: calendarPort, host: '127.0.0.1' });
  const key = await es256Key();
  agent = await buildAgentServer({
    resourceUrl: agentUrl,
    issuer: ISSUER,
    calendarUrl,
    clientId: 'calendar-agent',
    privateKey: key.privateJwk,
    keys: userAs.keys,
    revocations: false,
    exchanger,
    audit: async (record) => {
      if (auditFails) throw auditFailure;
      audit.push(record);
    },
  });
  await agent.listen({ port: agentPort, host: '127.0.0.1' });
});

afterAll(async () => {
  await agent?.close();
  await calendar?.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  audit = [];
  auditFails = false;
  auditFailure = new Error('the audit report timed out');
  calendarAuditFailure = undefined;
  exchangeFailure = undefined;
  exchanges = 0;
});

const toolCall = (name: string, args: Record<string, unknown>, id = 7) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

const post = (token: string, body: string, version = '2025-06-18') =>
  rawRequest({ port: agentPort, method: 'POST', path: '/mcp', headers: mcpHeaders(token, { 'MCP-Protocol-Version': version }), body });

async function callTool(token: string, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  const client = new Client({ name: 'delegation-test', version: '0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(agentUrl), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  try {
    return (await client.callTool({ name, arguments: args })) as CallToolResult;
  } finally {
    await client.close();
  }
}

const text = (result: CallToolResult) => (result.content?.[0] as { text: string } | undefined)?.text ?? '';

describe('the scope challenge (step-up)', () => {
  it('answers a tools/call for list_busy without busy:read with 403 naming both scopes, before the tool runs', async () => {
    const res = await post(await userToken('slots:find'), toolCall('list_busy', {}));
    expect(res.status).toBe(403);
    const challenge = String(res.headers['www-authenticate']);
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="slots:find busy:read"');
    expect(challenge).toContain(`resource_metadata="${metadataUrl}"`);
    expect(res.json()).toEqual({ error: 'insufficient_scope', error_description: 'list_busy needs the scope busy:read, which this token does not carry.' });
    expect(exchanges).toBe(0);
    expect(audit).toEqual([expect.objectContaining({ event: 'tool_call', detail: expect.objectContaining({ tool: 'list_busy', outcome: 'refused', missing_scope: ['busy:read'] }) })]);
  });

  it('answers find_slot without slots:find the same way, keeping the scope the token has', async () => {
    const res = await post(await userToken('busy:read'), toolCall('find_slot', { duration: '30m' }));
    expect(res.status).toBe(403);
    expect(String(res.headers['www-authenticate'])).toContain('scope="slots:find busy:read"');
  });

  it('refuses a batch if any call in it lacks its scope (protocol 2025-03-26, which has batches)', async () => {
    const batch = `[${toolCall('find_slot', { duration: '30m' }, 1)},${toolCall('list_busy', {}, 2)},${toolCall('list_busy', {}, 3)}]`;
    const res = await post(await userToken('slots:find'), batch, '2025-03-26');
    expect(res.status).toBe(403);
    expect(String(res.headers['www-authenticate'])).toContain('scope="slots:find busy:read"');
    expect((res.json() as { error_description: string }).error_description).toBe('list_busy needs the scope busy:read, which this token does not carry.');
  });

  it('answers a batch the protocol does not allow with 400 before judging its scopes: no step-up asked for, nothing recorded', async () => {
    const batch = `[${toolCall('find_slot', { duration: '30m' }, 1)},${toolCall('list_busy', {}, 2)}]`;
    const res = await post(await userToken('slots:find'), batch, '2025-06-18');
    expect(res.status).toBe(400);
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(res.json()).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.stringContaining('no JSON-RPC batches') } });
    expect(audit).toEqual([]);
    expect(exchanges).toBe(0);
  });

  it('lets other requests through with either scope: a busy:read token can list the tools and call list_busy', async () => {
    const result = await callTool(await userToken('busy:read'), 'list_busy', { from: tomorrow, to: tomorrow, timeZone: 'UTC' });
    expect(result.isError, text(result)).toBeFalsy();
    expect(result.structuredContent).toEqual({
      timeZone: 'UTC',
      window: { start: `${tomorrow}T00:00:00+00:00`, end: expect.stringMatching(/T00:00:00\+00:00$/) },
      busy: [
        { start: `${tomorrow}T10:00:00+00:00`, end: `${tomorrow}T11:00:00+00:00` },
        { start: `${tomorrow}T13:00:00+00:00`, end: `${tomorrow}T14:00:00+00:00` },
      ],
    });
    expect(text(result)).not.toMatch(/secret/);
  });
});

describe('the user’s calendar limits at the agent', () => {
  it('refuses a window past the lookahead with a tool error naming the limit, before exchanging', async () => {
    const far = new Date(Date.now() + 10 * DAY).toISOString();
    for (const [tool, args] of [
      ['list_busy', { to: far }],
      ['find_slot', { duration: '30m', to: far }],
    ] as const) {
      const result = await callTool(await userToken('slots:find busy:read', { lookahead_days: 3 }), tool, args);
      expect(result.isError, tool).toBe(true);
      expect(text(result)).toMatch(/look 3 days ahead, until \d{4}-\d\d-\d\dT/);
    }
    expect(exchanges).toBe(0);
  });

  it('fits a default window to the lookahead and says so (list_busy)', async () => {
    const result = await callTool(await userToken('busy:read', { lookahead_days: 2 }), 'list_busy', { timeZone: 'UTC' });
    expect(result.isError, text(result)).toBeFalsy();
    const window = (result.structuredContent as { window: { start: string; end: string } }).window;
    expect(Date.parse(window.end) - Date.parse(window.start)).toBeLessThanOrEqual(2 * DAY);
    expect(text(result)).toMatch(/the delegation lets CalendarAgent look 2 days ahead/);
  });

  it('refuses a calendar outside the allowed ones, and with none named reads only the allowed ones', async () => {
    const token = await userToken('busy:read', { calendars: ['work'] });
    const refused = await callTool(token, 'list_busy', { calendars: ['private'] });
    expect(refused.isError).toBe(true);
    expect(text(refused)).toBe('The delegation allows only the calendar "work", not "private".');

    const allowed = await callTool(token, 'list_busy', { from: tomorrow, to: tomorrow, timeZone: 'UTC' });
    expect(allowed.isError, text(allowed)).toBeFalsy();
    expect((allowed.structuredContent as { busy: unknown[] }).busy).toEqual([{ start: `${tomorrow}T10:00:00+00:00`, end: `${tomorrow}T11:00:00+00:00` }]);
  });
});

describe('the audit of tool calls', () => {
  it('records each call with the full actor chain, the grant, the resource and the outcome', async () => {
    const token = await userToken('busy:read', undefined, { jti: 'at_call_1' });
    await callTool(token, 'list_busy', { from: tomorrow, to: tomorrow, timeZone: 'UTC' });
    await callTool(token, 'list_busy', { from: 'yesterday' });
    expect(audit).toEqual([
      {
        event: 'tool_call',
        user: 'usr_owner',
        client: 'delegate-cli',
        grant: 'grt_user',
        resource: agentUrl,
        actors: ['delegate-cli', 'usr_owner'],
        detail: { jti: 'at_call_1', tool: 'list_busy', outcome: 'ok', arguments: { from: tomorrow, to: tomorrow, timeZone: 'UTC' } },
      },
      expect.objectContaining({ detail: expect.objectContaining({ outcome: 'error', message: expect.stringMatching(/"from" must be/) }) }),
    ]);
    expect(JSON.stringify(audit)).not.toContain(token);
  });

  it('names a sub-agent’s chain when one calls with an exchanged token', async () => {
    const token = await userToken('busy:read', undefined, { client_id: 'sub-agent', act: { sub: 'sub-agent', act: { sub: 'planner', act: { sub: 'delegate-cli' } } } });
    await callTool(token, 'list_busy', { from: tomorrow, to: tomorrow, timeZone: 'UTC' });
    expect(audit[0]!.actors).toEqual(['sub-agent', 'planner', 'delegate-cli', 'usr_owner']);
  });
});

describe('a tool call that cannot be recorded in the audit log', () => {
  it('withholds a successful result: calendar data does not leave unrecorded', async () => {
    auditFails = true;
    const result = await callTool(await userToken('busy:read'), 'list_busy', { from: tomorrow, to: tomorrow, timeZone: 'UTC' });
    expect(result.isError).toBe(true);
    expect(text(result)).toBe('list_busy ran, but the call could not be recorded in the audit log, so its result is withheld. Try again shortly.');
    expect(result.structuredContent).toBeUndefined();
    expect(JSON.stringify(result)).not.toContain(`${tomorrow}T10:00`);
  });

  // Found in review: a full or read-only store said "Try again shortly" too, where only a person can mend it; and the
  // note on a failed call named neither.
  const storesThatCannotWrite = [
    ['STORE_FULL', 'its storage is full, and nothing can be recorded until space is freed.'],
    ['STORE_READ_ONLY', 'its storage is read-only, and nothing can be recorded until it is made writable.'],
    ['STORE_CORRUPT', 'its storage is damaged, and nothing can be recorded until an administrator restores it.'],
  ] as const;
  describe.each(storesThatCannotWrite)('a store that cannot take the record (%s)', (code, words) => {
    const callWith = async (args: Record<string, unknown>) => {
      auditFails = true;
      auditFailure = new StoreError(code, 'The database /x/delegate.db cannot be written.');
      const result = await callTool(await userToken('busy:read'), 'list_busy', args);
      expect(result.isError).toBe(true);
      expect(text(result)).not.toMatch(/\/x\/delegate\.db|try again shortly/i);
      return text(result);
    };

    it('is named in the withheld result, without "Try again shortly"', async () => {
      expect(await callWith({ from: tomorrow, to: tomorrow, timeZone: 'UTC' })).toBe(`list_busy ran, but the call could not be recorded in the audit log, so its result is withheld: ${words}`);
    });

    it('is named in a failed call’s note', async () => {
      const said = await callWith({ from: 'yesterday' });
      expect(said).toMatch(/^"from" must be /);
      expect(said.endsWith(` This call could not be recorded in the audit log: ${words}`)).toBe(true);
      expect(said).not.toMatch(/withheld/);
    });

    // Found at stop 20: on a full disk the calendar backend's read could not be recorded either, and find-slot's line
    // named the full storage twice, once in the backend's words and again in the note.
    it('is named once when the failure it notes already names it (the calendar’s read could not be recorded either)', async () => {
      calendarAuditFailure = new StoreError(code, 'The database /x/delegate.db cannot be written.');
      const said = await callWith({ from: tomorrow, to: tomorrow, timeZone: 'UTC' });
      expect(said).toBe(`The calendar failed (HTTP 500): The read could not be recorded in the audit log: ${words} This call could not be recorded in the audit log either.`);
      expect(said.split(words.slice(0, -1)).length - 1).toBe(1);
    });

    it('is named once when the authorization server named its own store’s state (no calendar token)', async () => {
      const description = { STORE_FULL: STORE_FULL_DESCRIPTION, STORE_READ_ONLY: STORE_READ_ONLY_DESCRIPTION, STORE_CORRUPT: STORE_CORRUPT_DESCRIPTION }[code];
      exchangeFailure = new TokenExchangeError('server_error', 'The token exchange failed.', description);
      const said = await callWith({ from: tomorrow, to: tomorrow, timeZone: 'UTC' });
      expect(said).toBe(`The authorization server could not issue a calendar token (server_error): ${description} This call could not be recorded in the audit log either.`);
      expect(said.match(/storage is (full|read-only|damaged)/g)).toHaveLength(1);
    });
  });

  it('still says why a call failed, and that it could not be recorded (over HTTP)', async () => {
    auditFails = true;
    const result = await callTool(await userToken('busy:read'), 'list_busy', { from: 'yesterday' });
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/^"from" must be .* This call could not be recorded in the audit log\.$/s);
    expect(text(result)).not.toMatch(/withheld/);
  });
});

describe('over a transport without the HTTP gate (stdio)', () => {
  /** CalendarAgent's MCP server under `token`, reached through an in-memory pair as a stdio client would; the list_busy answer. */
  async function listBusyOverStdio(token: string, deps: Pick<Parameters<typeof agentMcpDeps>[0], 'audit' | 'reauthorize'>): Promise<CallToolResult> {
    const key = await es256Key();
    const server = createAgentMcpServer(
      agentMcpDeps({ issuer: ISSUER, calendarUrl, clientId: 'calendar-agent', privateKey: key.privateJwk, callerToken: () => token, exchanger, ...deps }),
    );
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const client = new Client({ name: 'stdio-like', version: '0' });
    await client.connect(clientSide);
    try {
      return (await client.callTool({ name: 'list_busy', arguments: {} })) as CallToolResult;
    } finally {
      await client.close();
      await server.close();
    }
  }

  it('a refusal for a missing scope keeps its advice when the call cannot be recorded', async () => {
    const result = await listBusyOverStdio(await userToken('slots:find'), {
      reauthorize: (scopes) => `Run \`delegate login --scope ${scopes?.join(' ')}\` in a terminal, then ask again.`,
      audit: async () => {
        throw new Error('disk full');
      },
    });
    expect(result.isError).toBe(true);
    expect(text(result)).toBe(
      'list_busy needs the permission busy:read, which this delegation does not include. Run `delegate login --scope busy:read` in a terminal, then ask again. This call could not be recorded in the audit log.',
    );
    expect(exchanges).toBe(0);
  });

  it('the tool itself refuses a call whose delegation lacks its scope, and records it', async () => {
    const records: ResourceAuditRecord[] = [];
    const result = await listBusyOverStdio(await userToken('slots:find'), {
      audit: async (r) => {
        records.push(r);
      },
    });
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/needs the permission busy:read/);
    expect(exchanges).toBe(0);
    expect(records).toEqual([expect.objectContaining({ resource: agentUrl, detail: expect.objectContaining({ tool: 'list_busy', outcome: 'refused' }) })]);
  });
});
