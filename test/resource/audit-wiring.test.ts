// The servers as the CLI builds them from a data directory (src/cli/servers.ts)
// record what the resource servers do on the store's hash-chained audit log:
// a find_slot call at CalendarAgent (`tool_call`) and the calendar read it
// made (`freebusy_read`), each with its actor chain and grant, between the
// authorization server's own events, and the chain still verifies.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Paths } from '../../src/config.js';
import { loadOrCreateOwnerKey } from '../../src/client/owner-login.js';
import type { Store } from '../../src/store/index.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { startCliServers, type CliServers } from '../support/cli-servers.js';

const REDIRECT = 'http://127.0.0.1:43123/callback';
let servers: CliServers;
let paths: Paths;
let store: Store;
let urls: CliServers['urls'];

beforeAll(async () => {
  servers = await startCliServers('delegate-audit-wiring-');
  ({ paths, store, urls } = servers);
});

afterAll(async () => {
  await servers?.close();
});

async function userToken(): Promise<{ clientId: string; accessToken: string }> {
  const clientId = await registerPublicClient(urls.issuer, [REDIRECT]);
  const { verifier, challenge } = pkcePair();
  const browser = new Browser();
  const ownerJwk = await loadOrCreateOwnerKey(paths.ownerKey);
  const page = await signInAndOpenConsent(
    browser,
    urls.issuer,
    ownerJwk,
    authorizeUrl(urls.issuer, { clientId, redirectUri: REDIRECT, resource: urls.agentUrl, scope: 'slots:find', state: 's', challenge }),
  );
  expect(page.status).toBe(200);
  const decision = await browser.post(`${urls.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
  const code = callbackParams(decision.location!).get('code')!;
  const res = await postForm(`${urls.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId, resource: urls.agentUrl });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { clientId, accessToken: String(res.body.access_token) };
}

describe('the resource servers’ audit records, as the CLI wires them', () => {
  it('a find_slot call and the calendar read behind it are on the log with their chains, and the log verifies', async () => {
    const user = await userToken();
    const client = new Client({ name: 'audit-wiring', version: '0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(urls.agentUrl), { requestInit: { headers: { Authorization: `Bearer ${user.accessToken}` } } }));
    let result: CallToolResult;
    try {
      result = (await client.callTool({ name: 'find_slot', arguments: { duration: '30m' } })) as CallToolResult;
    } finally {
      await client.close();
    }
    expect(result.isError, JSON.stringify(result.content)).toBeFalsy();

    const claims = decodeJwt(user.accessToken);
    const records = await store.listAudit({ grant: String(claims.grant_id) });
    const read = records.find((r) => r.event === 'freebusy_read');
    const call = records.find((r) => r.event === 'tool_call');
    expect(read).toMatchObject({
      user: claims.sub,
      client: 'calendar-agent',
      resource: urls.calendarUrl,
      actors: ['calendar-agent', user.clientId, claims.sub],
      detail: { outcome: 'ok', calendars: ['demo'] },
    });
    expect(call).toMatchObject({
      user: claims.sub,
      client: user.clientId,
      resource: urls.agentUrl,
      actors: [user.clientId, claims.sub],
      detail: { jti: claims.jti, tool: 'find_slot', outcome: 'ok', arguments: { duration: '30m' } },
    });
    // The read happened during the call, so it is recorded first; the exchange (by the AS) before both.
    expect(read!.seq).toBeLessThan(call!.seq);
    expect(records.some((r) => r.event === 'token_exchanged' && r.seq < read!.seq)).toBe(true);
    expect(JSON.stringify(records)).not.toContain(user.accessToken);
    expect(await store.verifyAudit()).toMatchObject({ ok: true });
  });

  // Found in review (s33audit): a call the MCP layer refused before the tool ran (arguments the tool's input schema
  // refuses) left no record, though every tool call at CalendarAgent is on the log. (A tool it does not have is a
  // JSON-RPC error, -32602, not a tool call.)
  it('a call refused before any tool ran is recorded as refused, with the refusal; a call the tool answered, once', async () => {
    const user = await userToken();
    const claims = decodeJwt(user.accessToken);
    const client = new Client({ name: 'audit-wiring', version: '0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(urls.agentUrl), { requestInit: { headers: { Authorization: `Bearer ${user.accessToken}` } } }));
    const calls: CallToolResult[] = [];
    try {
      for (const [name, args] of [
        ['find_slot', { duration: '3'.repeat(65) }],
        ['find_slot', { duration: ['30m'] }],
        ['find_slot', { duration: '30m', calendars: Array.from({ length: 70 }, (_, i) => `c${i}`) }],
        ['find_slot', { duration: '30m' }],
      ] as const) {
        calls.push((await client.callTool({ name, arguments: args })) as CallToolResult);
      }
    } finally {
      await client.close();
    }
    expect(calls.map((c) => Boolean(c.isError))).toEqual([true, true, true, false]);
    const records = (await store.listAudit({ grant: String(claims.grant_id) })).filter((r) => r.event === 'tool_call');
    expect(records.map((r) => [r.detail.tool, r.detail.outcome])).toEqual([
      ['find_slot', 'refused'],
      ['find_slot', 'refused'],
      ['find_slot', 'refused'],
      ['find_slot', 'ok'],
    ]);
    for (const record of records) expect(record).toMatchObject({ user: claims.sub, client: user.clientId, resource: urls.agentUrl, actors: [user.clientId, claims.sub] });
    expect(records[0]!.detail).toMatchObject({ arguments: { duration: expect.stringMatching(/^3+/) }, message: expect.stringContaining('Input validation error') });
    expect(records[1]!.detail).toMatchObject({ arguments: { duration: ['30m'] }, message: expect.stringContaining('Input validation error') });
    expect(records[2]!.detail.message).toContain('more than the maximum of 64 elements');
    expect(await store.verifyAudit()).toMatchObject({ ok: true });
  });
});
