// Forged audit records from outside: a registered agent other than
// CalendarAgent (`evil`) reports tool calls to POST /audit under another
// user's grant, another client and a made-up actor chain. A report must name
// a token that was issued for the reporter's own resource; who acted, for
// whom and under which grant are then the AS's own record of that token.
// Also: CalendarAgent's stdio path (reporting to /audit) writes the same
// record as its HTTP path (the store in its own process) for the same call,
// with a credential in the call's arguments replaced by a marker on both (so
// /audit takes it), and `delegate audit` says who reported a record.
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { decodeJwt, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAgent } from '../../src/authz/index.js';
import { serveAgentOverStdio } from '../../src/agent/stdio.js';
import { runCli } from '../../src/cli/program.js';
import { auditRecord, type AuditSink, type ResourceAuditRecord } from '../../src/resource/audit.js';
import { remoteAuditSink } from '../../src/resource/audit-remote.js';
import type { AccessTokenClaims } from '../../src/delegation/index.js';
import type { AuditRecord } from '../../src/store/index.js';
import { es256Key, registerTestAgent, type TestAuthz } from '../support/authz.js';
import { postForm } from '../support/oauth-flow.js';
import { ownerApproves, redeemCode } from '../support/owner-flow.js';
import { fakeIo } from '../cli/fake-io.js';
import { mcpHeaders, rawRequest } from '../agent/http.js';
import { JWT_BEARER, REDIRECT, agentAssertion, exchangeAsAgent, lastAuditSeq, auditSince, startStack, stateChangedBy, userTokens, type Stack, type UserTokens } from './stack.js';

type Agent = { clientId: string; privateJwk: JWK };

let stack: Stack;
let owner: UserTokens;
let ownerId: string;
let evil: Agent;
let relay: Agent;
const evilResource = 'http://127.0.0.1:9/evil';
const relayResource = 'http://127.0.0.1:9/relay';

beforeAll(async () => {
  stack = await startStack();
  // The owner's delegation to a client of CalendarAgent: the grant the forger files its records under.
  owner = await userTokens(stack);
  ownerId = String(decodeJwt(owner.accessToken).sub);
  evil = await registerTestAgent(stack as unknown as TestAuthz, 'evil', evilResource);
  // An agent whose users' tokens reach evil's resource downstream: the way a token with a chain reaches evil.
  // registerAgent refuses another agent's URL downstream (test/security/agent-binding.test.ts); the relay's record
  // is what a registration from before that refusal left in the store.
  const relayKey = await es256Key();
  const downstream = [{ type: 'calendar', resource: evilResource, scopes: ['helper:use'] }];
  await registerAgent(
    stack.store,
    stack.issuer,
    {
      clientId: 'relay',
      resourceUrl: relayResource,
      scopes: ['relay:use'],
      jwks: { keys: [relayKey.publicJwk as Record<string, unknown>] },
      downstream: [],
      profile: { name: 'relay', softwareId: 'test/relay', softwareVersion: '1', operator: { name: 'Test', contact: 'test@example.test' }, description: 'A test agent.', limitations: [] },
    },
    Date.now(),
  );
  await stack.store.upsertResource({ ...(await stack.store.resourceByUrl(relayResource))!, downstream });
  relay = { clientId: 'relay', privateJwk: relayKey.privateJwk };
});
afterAll(async () => stack?.close());

/** The owner approves a new public client for `resource`; its access token. */
async function ownerTokenFor(resource: string, scope: string): Promise<string> {
  const target = { issuer: stack.issuer, agentUrl: resource, ownerJwk: stack.ownerJwk };
  const code = await ownerApproves(target, { scope, redirectUri: REDIRECT });
  const res = await redeemCode(target, code, {}, REDIRECT);
  if (res.status !== 200) throw new Error(`code redemption: ${JSON.stringify(res.body)}`);
  return String(res.body.access_token);
}

/** POST /audit as `as`, with a record as given (a JSON object, or text sent as is). */
async function report(as: Agent, record: unknown) {
  return postForm(`${stack.issuer}/audit`, {
    client_id: as.clientId,
    client_assertion_type: JWT_BEARER,
    client_assertion: await agentAssertion(stack, { kid: as.privateJwk.kid }, { iss: as.clientId, sub: as.clientId }, as.privateJwk),
    record: typeof record === 'string' ? record : JSON.stringify(record),
  });
}

/** The record as a resource server with the store in its own process writes it for a call with `token`. */
function inProcessRecord(token: string, resource: string, detail: Record<string, unknown>): ResourceAuditRecord {
  return auditRecord('tool_call', decodeJwt(token) as unknown as AccessTokenClaims, resource, detail);
}

/** A record as stored, without what the store adds (seq, time, hashes). */
function logged(r: AuditRecord) {
  return { event: r.event, user: r.user, client: r.client, grant: r.grant, resource: r.resource, actors: r.actors, detail: r.detail };
}

describe('forged audit records (POST /audit)', () => {
  it('the reported attack: evil files a find_slot call under the owner’s grant with CalendarAgent’s chain: 400 invalid_request, nothing appended', async () => {
    const forged = {
      event: 'tool_call',
      resource: evilResource,
      user: ownerId,
      grant: owner.grantId,
      client: 'calendar-agent',
      actors: ['calendar-agent', ownerId],
      detail: { tool: 'find_slot', outcome: 'ok' },
    };
    const { result: res, changed } = await stateChangedBy(stack, () => report(evil, forged));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request' });
    // Only the client assertion's jti is spent (RFC 7523 §3).
    expect(changed).toEqual(['used_once']);
    expect((await stack.store.listAudit({ grant: owner.grantId })).filter((r) => r.event === 'tool_call')).toEqual([]);
  });

  it.each([
    ['a jti that was never issued', () => ({ ...inProcessRecord(owner.accessToken, evilResource, { tool: 'find_slot', outcome: 'ok' }), detail: { jti: 'at_not-a-token', tool: 'find_slot', outcome: 'ok' } })],
    // Everything in it agrees with that token; only, the token was never evil's to serve.
    ['the owner’s token for CalendarAgent (another audience), user, grant, client and actors as that token says', () => inProcessRecord(owner.accessToken, evilResource, { tool: 'find_slot', outcome: 'ok' })],
  ])('evil naming %s: 400 invalid_request, nothing appended', async (_name, record) => {
    const forged = record();
    const { result: res, changed } = await stateChangedBy(stack, () => report(evil, forged));
    expect(res.body).toMatchObject({ error: 'invalid_request' });
    expect(res.status).toBe(400);
    expect(changed).toEqual(['used_once']);
  });

  it('evil reporting about CalendarAgent’s resource, with the owner’s real token: 400 unauthorized_client, nothing appended', async () => {
    const record = inProcessRecord(owner.accessToken, stack.agentUrl, { tool: 'find_slot', outcome: 'ok' });
    const { result: res, changed } = await stateChangedBy(stack, () => report(evil, record));
    expect(res.body).toMatchObject({ error: 'unauthorized_client' });
    expect(changed).toEqual(['used_once']);
  });

  describe('with a token that was really presented to evil', () => {
    let token: string;
    beforeAll(async () => {
      token = await ownerTokenFor(evilResource, 'helper:use');
    });

    it.each([
      ['another user', (r: ResourceAuditRecord) => ({ ...r, user: 'usr_someone-else' })],
      ['another client’s grant', (r: ResourceAuditRecord) => ({ ...r, grant: owner.grantId })],
      ['another client', (r: ResourceAuditRecord) => ({ ...r, client: 'calendar-agent' })],
      ['another actor chain', (r: ResourceAuditRecord) => ({ ...r, actors: ['calendar-agent', r.client, r.user] })],
      ['a chain without the user', (r: ResourceAuditRecord) => ({ ...r, actors: [r.client] })],
      ['another user, a number,', (r: ResourceAuditRecord) => ({ ...r, user: 42 })],
    ])('with %s than the token’s: 400 invalid_request, nothing appended', async (_name, change) => {
      const forged = change(inProcessRecord(token, evilResource, { tool: 'find_slot', outcome: 'ok' }));
      const { result: res, changed } = await stateChangedBy(stack, () => report(evil, forged));
      expect(res.body).toMatchObject({ error: 'invalid_request' });
      expect(res.status).toBe(400);
      expect(changed).toEqual(['used_once']);
    });

    it('the record as the token says (control): 204, appended as an in-process agent would write it, marked as evil’s report', async () => {
      const seq = await lastAuditSeq(stack);
      const record = inProcessRecord(token, evilResource, { tool: 'helper', outcome: 'ok' });
      expect((await report(evil, record)).status).toBe(204);
      const [appended, ...more] = await auditSince(stack, seq);
      expect(more).toEqual([]);
      expect(logged(appended!)).toEqual({ ...record, detail: { ...record.detail, reported_by: 'evil' } });
      expect(appended!.user).toBe(ownerId);
      // Only the token is named: user, grant, client and actors come from the AS's own records.
      const bare = { event: 'tool_call', resource: evilResource, detail: { jti: record.detail.jti, tool: 'helper', outcome: 'ok' } };
      expect((await report(evil, bare)).status).toBe(204);
      expect(logged((await auditSince(stack, appended!.seq))[0]!)).toEqual(logged(appended!));
      expect((await stack.store.verifyAudit()).ok).toBe(true);
    });
  });

  it('a token that expired more than 5 minutes ago: 400 invalid_request, nothing appended; one that expired a minute ago is still reported', async () => {
    // The AS's record of a token issued for evil's resource (as the exchange writes it), set to have expired.
    const token = await ownerTokenFor(evilResource, 'helper:use');
    const claims = decodeJwt(token);
    const issued = (await stack.store.issuedToken(String(claims.jti)))!;
    const expiredAt = (ago: number) => ({ ...issued, jti: `at_expired_${ago}_${crypto.randomUUID()}`, createdAt: Date.now() - ago - 600_000, expiresAt: Date.now() - ago });
    const stale = expiredAt(6 * 60_000);
    const recent = expiredAt(60_000);
    await stack.store.recordIssuedToken(stale);
    await stack.store.recordIssuedToken(recent);
    const recordFor = (jti: string) => ({ event: 'tool_call', resource: evilResource, detail: { jti, tool: 'helper', outcome: 'ok' } });

    const { result: res, changed } = await stateChangedBy(stack, () => report(evil, recordFor(stale.jti)));
    expect(res.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining('expired too long ago') });
    expect(changed).toEqual(['used_once']);
    expect((await report(evil, recordFor(recent.jti))).status).toBe(204);
  });

  it('a token whose grant was revoked more than 30 seconds (stale_after) ago: refused; within them: taken, marked with the revocation time (found in review: taken for up to 15 minutes after the revocation)', async () => {
    const token = await ownerTokenFor(evilResource, 'helper:use');
    const claims = decodeJwt(token);
    const recordFor = (jti: string) => ({ event: 'tool_call', resource: evilResource, detail: { jti, tool: 'helper', outcome: 'ok' } });
    const revokedAt = Date.now() - 60_000;
    expect(await stack.store.revokeGrant(String(claims.grant_id), revokedAt, 'test')).toBe(true);
    const { result: res, changed } = await stateChangedBy(stack, () => report(evil, recordFor(String(claims.jti))));
    expect(res.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining('revoked too long ago') });
    expect(changed).toEqual(['used_once']);

    // A token revoked a few seconds ago (its own revocation, not its grant's): a call served before the list reached the agent.
    const issued = (await stack.store.issuedToken(String(claims.jti)))!;
    const other = await ownerTokenFor(evilResource, 'helper:use');
    const fresh = (await stack.store.issuedToken(String(decodeJwt(other).jti)))!;
    const recent = { ...fresh, jti: `at_revoked_${crypto.randomUUID()}`, revokedAt: Date.now() - 5_000 };
    await stack.store.recordIssuedToken(recent);
    const seq = await lastAuditSeq(stack);
    expect((await report(evil, recordFor(recent.jti))).status).toBe(204);
    expect((await auditSince(stack, seq))[0]!.detail).toMatchObject({ jti: recent.jti, reported_after_revocation_at: recent.revokedAt });
    expect(issued.revokedAt).toBe(revokedAt);
  });

  it('a token that reached evil through an exchange: the chain is the token’s (relay ← client ← user), and no other', async () => {
    const relayUser = await ownerTokenFor(relayResource, 'relay:use');
    const exchanged = await exchangeAsAgent(stack, relayUser, { resource: evilResource, scope: 'helper:use' }, relay);
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    const token = String(exchanged.body.access_token);
    const record = inProcessRecord(token, evilResource, { tool: 'helper', outcome: 'ok' });
    expect(record.actors).toEqual(['relay', decodeJwt(relayUser).client_id, ownerId]);

    const dropped = await stateChangedBy(stack, () => report(evil, { ...record, actors: ['relay', ownerId] }));
    expect(dropped.result.body).toMatchObject({ error: 'invalid_request' });
    expect(dropped.changed).toEqual(['used_once']);

    const seq = await lastAuditSeq(stack);
    expect((await report(evil, record)).status).toBe(204);
    expect(logged((await auditSince(stack, seq))[0]!)).toEqual({ ...record, detail: { ...record.detail, reported_by: 'evil' } });
  });

  it('delegate audit names the agent that reported a record, and no reporter for the AS’s own records', async () => {
    const io = fakeIo({ DELEGATE_HOME: stack.home });
    expect(await runCli(['audit'], io)).toBe(0);
    const lines = io.out.trim().split('\n');
    const reported = lines.filter((l) => / tool_call /.test(l) && l.includes(evilResource));
    expect(reported.length).toBeGreaterThan(0);
    for (const line of reported) expect(line).toContain('reported by evil');
    for (const line of lines.filter((l) => / token_issued /.test(l))) expect(line).not.toContain('reported by');
  });
});

/** find_slot called over HTTP at the agent with the owner's token: the answer, and the tool_call records it appended. */
async function findSlotOverHttp(args: Record<string, unknown>) {
  const seq = await lastAuditSeq(stack);
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'find_slot', arguments: args } });
  const res = await rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(owner.accessToken, { 'mcp-protocol-version': '2025-06-18' }), body });
  expect(res.status, res.text).toBe(200);
  const result = (JSON.parse(res.text) as { result: CallToolResult }).result;
  return { result, records: (await auditSince(stack, seq)).filter((r) => r.event === 'tool_call') };
}

/** find_slot called through CalendarAgent as `serve-agent --stdio` runs it (reporting to POST /audit): the result, and the records appended. */
async function findSlotOverStdio(args: Record<string, unknown>, wrapSink: (sink: AuditSink) => AuditSink = (sink) => sink) {
  const seq = await lastAuditSeq(stack);
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const agent = await serveAgentOverStdio({
    issuer: stack.issuer,
    calendarUrl: stack.calendarUrl,
    clientId: stack.agent.clientId,
    privateKey: stack.agent.privateJwk,
    resourceUrl: stack.agentUrl,
    audit: wrapSink(remoteAuditSink({ issuer: stack.issuer, clientId: stack.agent.clientId, privateKey: stack.agent.privateJwk })),
    callerToken: () => owner.accessToken,
    transport: serverSide,
  });
  const client = new Client({ name: 'stdio-like', version: '0.0.0' });
  await client.connect(clientSide);
  try {
    const result = (await client.callTool({ name: 'find_slot', arguments: args })) as CallToolResult;
    return { result, records: (await auditSince(stack, seq)).filter((r) => r.event === 'tool_call') };
  } finally {
    await client.close();
    await agent.close();
  }
}

/** A compact JWT's shape (three base64url runs, the first starting `eyJ`), as a string argument may have it. */
const JWT_SHAPED = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln';

// Found in review (s24): a refusal's reason and a failed call's message were taken with any character, and
// `delegate audit` prints them as the record's why. Refused at POST /audit as tool, outcome, decision and scope are;
// the CLI still escapes what is stored (test/cli/stored-text.test.ts). evil's resource is one relay reaches
// downstream, so evil reports free/busy reads as a calendar backend does.
describe('control characters in a reported reason or message (POST /audit)', () => {
  let token: string;
  beforeAll(async () => {
    token = await ownerTokenFor(evilResource, 'helper:use');
  });
  const read = (reason: string) => ({ event: 'freebusy_read', resource: evilResource, detail: { jti: String(decodeJwt(token).jti), outcome: 'refused', reason } });
  const call = (message: string) => ({ event: 'tool_call', resource: evilResource, detail: { jti: String(decodeJwt(token).jti), tool: 'helper', outcome: 'error', message } });
  const missing = (scope: string) => ({ event: 'tool_call', resource: evilResource, detail: { jti: String(decodeJwt(token).jti), tool: 'helper', outcome: 'refused', missing_scope: ['busy:read', scope] } });

  it.each([
    ['an escape sequence', 'beyond the window\u001b[2K'],
    ['a carriage return', 'beyond\r2026-12-05T05:00:00.000Z  #9  grant_revoked'],
    ['a line feed', 'beyond\n2026-12-05T05:00:00.000Z  #9  grant_revoked  for root'],
    ['a NUL', 'beyond\u0000'],
    ['a C1 control (CSI)', 'beyond\u009b2K'],
    ['a bidirectional override', 'beyond \u202etoor'],
  ])('refuses %s with 400 invalid_request, in a free/busy reason, a tool call’s message and a missing scope; nothing appended', async (_name, text) => {
    for (const [field, record] of [['reason', read(text)], ['message', call(text)], ['missing_scope', missing(text)]] as const) {
      const { result: res, changed } = await stateChangedBy(stack, () => report(evil, record));
      expect(res.status, field).toBe(400);
      expect(res.body, field).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining(`detail.${field} must not contain control characters`) });
      expect(changed, field).toEqual(['used_once']);
    }
  });

  it('takes a plain reason and message (control), and delegate audit prints each as the record’s why', async () => {
    const seq = await lastAuditSeq(stack);
    expect((await report(evil, read('beyond the window the grant allows'))).status).toBe(204);
    expect((await report(evil, call('the backend did not answer'))).status).toBe(204);
    expect((await auditSince(stack, seq)).map((r) => r.event)).toEqual(['freebusy_read', 'tool_call']);
    const io = fakeIo({ DELEGATE_HOME: stack.home });
    expect(await runCli(['audit', '--client', String(decodeJwt(token).client_id)], io)).toBe(0);
    expect(io.out).toContain('(beyond the window the grant allows)');
    expect(io.out).toContain('(the backend did not answer)');
  });
});

describe('CalendarAgent reports over stdio what it records over HTTP', () => {
  it('the same find_slot call makes the same record on both paths (the stdio one marked as reported)', async () => {
    const args = { duration: '30m', timeZone: 'Europe/Berlin' };
    const viaHttp = await findSlotOverHttp(args);
    expect(viaHttp.records).toHaveLength(1);
    const viaStdio = await findSlotOverStdio(args);
    expect(viaStdio.result.isError, JSON.stringify(viaStdio.result.content)).toBeFalsy();
    expect(viaStdio.records).toHaveLength(1);
    const http = logged(viaHttp.records[0]!);
    expect(logged(viaStdio.records[0]!)).toEqual({ ...http, detail: { ...http.detail, reported_by: 'calendar-agent' } });
    expect(http.detail.jti).toBe(decodeJwt(owner.accessToken).jti);
  });

  // Found in the s24 brief: POST /audit refuses a detail holding a credential's shape, and the stdio agent's report of
  // this call was refused, so the call failed with "could not be recorded". Both paths now write the marker.
  it('a find_slot argument shaped like a JWT: recorded on both paths with the marker in its place, never the value', async () => {
    const args = { duration: '30m', timeZone: JWT_SHAPED };
    const viaHttp = await findSlotOverHttp(args);
    const viaStdio = await findSlotOverStdio(args);
    for (const { result, records } of [viaHttp, viaStdio]) {
      expect(JSON.stringify(result.content)).not.toContain('could not be recorded');
      expect(records).toHaveLength(1);
      expect(records[0]!.detail).toMatchObject({ tool: 'find_slot', arguments: { duration: '30m', timeZone: '[redacted]' } });
      expect(JSON.stringify(records[0])).not.toContain(JWT_SHAPED);
    }
    const http = logged(viaHttp.records[0]!);
    expect(logged(viaStdio.records[0]!)).toEqual({ ...http, detail: { ...http.detail, reported_by: 'calendar-agent' } });
  });

  it('a tool call refused for its scope, with an argument named like a credential: recorded with the marker in its place', async () => {
    const seq = await lastAuditSeq(stack);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'list_busy', arguments: { duration: '30m', password: 'hunter2' } } });
    const res = await rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(owner.accessToken, { 'mcp-protocol-version': '2025-06-18' }), body });
    expect(res.status, res.text).toBe(403);
    const records = (await auditSince(stack, seq)).filter((r) => r.event === 'tool_call');
    expect(records).toHaveLength(1);
    expect(records[0]!.detail).toMatchObject({ tool: 'list_busy', outcome: 'refused', arguments: { duration: '30m', password: '[redacted]' } });
    expect(JSON.stringify(records[0])).not.toContain('hunter2');
  });
});

// Found at stop 24: a report POST /audit refused as it is (400 invalid_request) withheld the result with "Try again
// shortly", which can never help; the withheld result now says what the authorization server refused.
describe('a stdio report the authorization server refuses as it is', () => {
  it('withholds the result naming the refusal, without "Try again shortly", and nothing is recorded', async () => {
    // An agent that adds a key no tool_call record takes: the AS refuses the record (400 invalid_request).
    const addsForeignKey = (sink: AuditSink): AuditSink => (record, context) => sink({ ...record, detail: { ...record.detail, note: 'extra' } }, context);
    const { result, records } = await findSlotOverStdio({ duration: '30m' }, addsForeignKey);
    expect(result.isError).toBe(true);
    const text = (result.content as Array<{ type: string; text: string }>)[0]!.text;
    expect(text).toMatch(/^find_slot ran, but the call could not be recorded in the audit log, so its result is withheld: The authorization server refused the audit record: A tool_call record.s detail takes .*; note is not among them\.$/);
    expect(text).not.toContain('Try again');
    expect(records).toEqual([]);
  });
});
