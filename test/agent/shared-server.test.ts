// CalendarAgent's /mcp endpoint answers every caller with one McpServer
// (src/agent/mcp-post-transport.ts): what this must never let happen is one
// caller's request meeting another's inside it. Two callers at once with the
// same JSON-RPC id each get their own answer, from their own delegation, with
// their own request id on the calendar read and their own audit record; a
// cancellation or a hang-up from one caller stops nothing of another's; and
// initialize is answered for each caller by what it asked. The calendar reads
// are held open here, so that the calls overlap for sure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { decodeJwt } from 'jose';
import { buildAgentServer } from '../../src/agent/server.js';
import type { TokenExchanger } from '../../src/agent/exchange.js';
import type { ResourceAuditRecord } from '../../src/resource/audit.js';
import { es256Key } from '../support/authz.js';
import { initializeBody, mcpHeaders, rawRequest, type RawResponse } from './http.js';
import { freePort, testIssuer, type TestIssuer } from './support.js';

const ISSUER = 'http://127.0.0.1:8410';
const CALENDAR_URL = 'http://127.0.0.1:9';
const DAY = 86_400_000;
const tomorrow = new Date(Date.now() + DAY).toISOString().slice(0, 10);
/** Each user's one busy hour tomorrow (UTC): alice's first free slot is at 09:00, bob's at 10:00. */
const BUSY_HOUR: Record<string, number> = { alice: 10, bob: 9 };

let app: FastifyInstance;
let port: number;
let as: TestIssuer;
const audit: ResourceAuditRecord[] = [];
/** The calendar reads as the backend would see them: whose calendar token, and the X-Request-Id that came with it. */
const reads: Array<{ user: string; requestId: string | undefined }> = [];
/** Reads held until released, by user: `reached` once the read has come, `open()` lets it go on. */
const held = new Map<string, { reached: Promise<void>; arrive(): void; opened: Promise<void>; open(): void }>();

/** Holds the next reads of `user`'s calendar; the function returned releases them. */
function hold(user: string): () => void {
  let arrive!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  const opened = new Promise<void>((resolve) => (open = resolve));
  held.set(user, { reached, arrive, opened, open });
  return () => {
    held.delete(user);
    open();
  };
}

/** The calendar backend's answer for the user the calendar token names, once that user's read is released. */
const calendarFetch = (async (_url: string | URL | Request, init?: RequestInit) => {
  const headers = init!.headers as Record<string, string>;
  const user = String(decodeJwt(headers.Authorization!.replace('Bearer ', '')).sub);
  reads.push({ user, requestId: headers['x-request-id'] });
  const gate = held.get(user);
  if (gate) {
    gate.arrive();
    await gate.opened;
  }
  const hour = String(BUSY_HOUR[user]).padStart(2, '0');
  const body = { timeZone: 'UTC', busy: [{ start: `${tomorrow}T${hour}:00:00Z`, end: `${tomorrow}T${hour}:59:59Z` }] };
  return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
}) as typeof fetch;

/** A calendar token naming the caller's user, as the AS's exchange would give it. */
const exchanger: TokenExchanger = {
  async exchange(subjectToken) {
    const { sub, grant_id } = decodeJwt(subjectToken) as { sub: string; grant_id: string };
    return { accessToken: await as.token({ sub, grant_id, aud: CALENDAR_URL, scope: 'freebusy:read', act: { sub: 'calendar-agent' } }), expiresAt: Date.now() + 300_000, scope: 'freebusy:read' };
  },
  forget() {},
  cacheSize: 0,
};

beforeAll(async () => {
  port = await freePort();
  const resourceUrl = `http://127.0.0.1:${port}/mcp`;
  as = await testIssuer(ISSUER, { aud: resourceUrl });
  const key = await es256Key();
  app = await buildAgentServer({
    resourceUrl,
    issuer: ISSUER,
    calendarUrl: CALENDAR_URL,
    clientId: 'calendar-agent',
    privateKey: key.privateJwk,
    keys: as.keys,
    revocations: false,
    exchanger,
    fetchFn: calendarFetch,
    audit: async (record) => void audit.push(record),
  });
  await app.listen({ port, host: '127.0.0.1' });
});

afterAll(async () => {
  await app?.close();
});

const tokenFor = (user: string) => as.token({ sub: user, grant_id: `grt_${user}`, client_id: `client-${user}` });

const findSlot = (id: unknown) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'find_slot', arguments: { duration: '30m', from: `${tomorrow}T09:00:00Z`, to: `${tomorrow}T17:00:00Z`, timeZone: 'UTC', workingHours: 'mon-sun 09:00-17:00' } } });

function post(token: string, body: string, requestId?: string): Promise<RawResponse> {
  const extra: Record<string, string> = { 'MCP-Protocol-Version': '2025-06-18', ...(requestId ? { 'X-Request-Id': requestId } : {}) };
  return rawRequest({ port, method: 'POST', path: '/mcp', headers: mcpHeaders(token, extra), body });
}

/** The first free slot's start an answer gives, and the id it answers. */
function firstSlot(res: RawResponse): { id: unknown; start: unknown } {
  const answer = res.json() as { id: unknown; result: { structuredContent: { start?: string } } };
  return { id: answer.id, start: answer.result.structuredContent.start };
}

async function arrived(user: string): Promise<void> {
  await held.get(user)!.reached;
}

describe('one MCP server for every caller of /mcp', () => {
  it('answers two callers using the same JSON-RPC id at once each from their own delegation, with their own request id and audit record', async () => {
    const [alice, bob] = [await tokenFor('alice'), await tokenFor('bob')];
    audit.length = 0;
    reads.length = 0;
    const releaseAlice = hold('alice');
    const aliceAnswer = post(alice, findSlot(1), 'req-alice');
    await arrived('alice');
    // Bob's call runs start to end while alice's waits on her calendar.
    const bobAnswer = await post(bob, findSlot(1), 'req-bob');
    releaseAlice();
    const aliceRes = await aliceAnswer;
    expect([aliceRes.status, bobAnswer.status]).toEqual([200, 200]);
    expect(firstSlot(aliceRes)).toEqual({ id: 1, start: `${tomorrow}T09:00:00+00:00` });
    expect(firstSlot(bobAnswer)).toEqual({ id: 1, start: `${tomorrow}T10:00:00+00:00` });
    expect(reads).toEqual([
      { user: 'alice', requestId: 'req-alice' },
      { user: 'bob', requestId: 'req-bob' },
    ]);
    expect(audit.map((r) => [r.user, r.client, r.detail.outcome])).toEqual([
      ['bob', 'client-bob', 'ok'],
      ['alice', 'client-alice', 'ok'],
    ]);
  });

  it("lets no caller cancel another's call: a cancellation names only a request of its own POST", async () => {
    const [alice, bob] = [await tokenFor('alice'), await tokenFor('bob')];
    const releaseAlice = hold('alice');
    const aliceAnswer = post(alice, findSlot('same'));
    await arrived('alice');
    // Whatever id the server may know alice's request by, and the id alice gave it.
    for (const requestId of ['same', ...Array.from({ length: 50 }, (_, i) => i)]) {
      const cancel = await post(bob, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId } }));
      expect(cancel.status).toBe(202);
    }
    releaseAlice();
    const res = await aliceAnswer;
    expect(firstSlot(res)).toEqual({ id: 'same', start: `${tomorrow}T09:00:00+00:00` });
  });

  it("goes on answering others when a caller hangs up in the middle of its call", async () => {
    const [alice, bob] = [await tokenFor('alice'), await tokenFor('bob')];
    const releaseAlice = hold('alice');
    const gone = new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/mcp', headers: mcpHeaders(alice, { 'MCP-Protocol-Version': '2025-06-18' }) });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.end(findSlot(5));
      void arrived('alice').then(() => req.destroy());
    });
    await gone;
    const releaseBob = hold('bob');
    const bobAnswer = post(bob, findSlot(5));
    await arrived('bob');
    releaseAlice();
    releaseBob();
    expect(firstSlot(await bobAnswer)).toEqual({ id: 5, start: `${tomorrow}T10:00:00+00:00` });
    // And the server takes new calls from the one that left.
    expect(firstSlot(await post(alice, findSlot(6)))).toEqual({ id: 6, start: `${tomorrow}T09:00:00+00:00` });
  });

  // Found in review (regress19d), as with the SDK's transport before: a batch holding a request and its own cancellation
  // was never answered (the server sends nothing for a cancelled request), and a batch of one was answered with a bare
  // object (JSON-RPC 2.0 §6: a batch gets an array).
  it('answers a batch that cancels one of its own requests with the others’ answers, and a batch of one with an array', async () => {
    const alice = await tokenFor('alice');
    const batch = (messages: unknown[]) => rawRequest({ port, method: 'POST', path: '/mcp', headers: mcpHeaders(alice, { 'MCP-Protocol-Version': '2025-03-26' }), body: JSON.stringify(messages) });
    const cancel = (requestId: unknown) => ({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId } });
    const both = await batch([JSON.parse(findSlot(7)), { jsonrpc: '2.0', id: 8, method: 'ping' }, cancel(7)]);
    expect(both.status).toBe(200);
    expect(both.json()).toEqual([{ jsonrpc: '2.0', id: 8, result: {} }]);
    const alone = await batch([JSON.parse(findSlot(9)), cancel(9)]);
    expect(alone.status).toBe(202);
    const one = await batch([{ jsonrpc: '2.0', id: 1, method: 'ping' }]);
    expect(one.json()).toEqual([{ jsonrpc: '2.0', id: 1, result: {} }]);
    // A single message is answered with a single answer, as before.
    const single = await rawRequest({ port, method: 'POST', path: '/mcp', headers: mcpHeaders(alice, { 'MCP-Protocol-Version': '2025-03-26' }), body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }) });
    expect(single.json()).toEqual({ jsonrpc: '2.0', id: 2, result: {} });
  });

  it('answers each initialize by the version its caller asks for, whoever initialized before', async () => {
    const [alice, bob] = [await tokenFor('alice'), await tokenFor('bob')];
    const asking = (token: string, version: string, name: string) => {
      const body = JSON.parse(initializeBody) as { params: Record<string, unknown> };
      body.params = { ...body.params, protocolVersion: version, clientInfo: { name, version: '1' }, capabilities: name === 'alice' ? { sampling: {} } : {} };
      return rawRequest({ port, method: 'POST', path: '/mcp', headers: mcpHeaders(token), body: JSON.stringify(body) });
    };
    const [a, b] = await Promise.all([asking(alice, '2024-11-05', 'alice'), asking(bob, '2025-06-18', 'bob')]);
    const result = (res: RawResponse) => (res.json() as { result: Record<string, unknown> }).result;
    expect(result(a)).toMatchObject({ protocolVersion: '2024-11-05', capabilities: { tools: { listChanged: false } }, serverInfo: { name: 'calendar-agent' } });
    expect(result(b)).toMatchObject({ protocolVersion: '2025-06-18', capabilities: { tools: { listChanged: false } }, serverInfo: { name: 'calendar-agent' } });
    expect(result(a).instructions).toEqual(result(b).instructions);
  });
});
