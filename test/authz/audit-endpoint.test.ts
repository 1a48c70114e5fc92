// POST /audit from outside: an agent reports the calls it served about its own
// resource, naming the token each was made with; anyone else, a report about
// another resource, or one about a token that is not on record is refused and
// nothing is written. (Forged users, grants and chains: test/security/audit-reports.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { startTestAuthz, registerTestAgent, type TestAuthz } from '../support/authz.js';
import { postForm, registerPublicClient } from '../support/oauth-flow.js';
import { clientAssertion, obtainTokens, type UserTokens } from './helpers.js';

let authz: TestAuthz;
let user: UserTokens;
let claims: { sub: string; client_id: string; grant_id: string; jti: string };
beforeAll(async () => {
  authz = await startTestAuthz();
  user = await obtainTokens(authz);
  claims = decodeJwt(user.accessToken) as typeof claims;
});
afterAll(async () => authz.close());

/** The record CalendarAgent sends for a call made with the user's token. */
const record = (overrides: Record<string, unknown> = {}) =>
  JSON.stringify({
    event: 'tool_call',
    user: claims.sub,
    client: claims.client_id,
    grant: claims.grant_id,
    resource: authz.agentUrl,
    actors: [claims.client_id, claims.sub],
    detail: { jti: claims.jti, tool: 'find_slot', outcome: 'ok' },
    ...overrides,
  });

async function report(rec: string, as = authz.agent) {
  return postForm(`${authz.issuer}/audit`, {
    client_id: as.clientId,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion(as.privateJwk, as.clientId, authz.issuer),
    record: rec,
  });
}

describe('agents reporting to the audit log', () => {
  it('appends a tool call reported by the agent, marked as reported by it', async () => {
    const res = await report(record());
    expect(res.status).toBe(204);
    const last = (await authz.store.listAudit()).at(-1)!;
    expect(last).toMatchObject({
      event: 'tool_call',
      user: claims.sub,
      client: user.clientId,
      grant: claims.grant_id,
      resource: authz.agentUrl,
      actors: [user.clientId, claims.sub],
      detail: { jti: claims.jti, tool: 'find_slot', reported_by: 'calendar-agent' },
    });
    expect((await authz.store.verifyAudit()).ok).toBe(true);
  });

  it('refuses a report about another resource, an event the AS writes itself, no token or an unknown one, a public client, and no authentication', async () => {
    // Registered first: a registration is on the log itself (client_registered).
    const client = await registerPublicClient(authz.issuer);
    const before = (await authz.store.listAudit()).length;
    expect((await report(record({ resource: authz.calendarUrl }))).body.error).toBe('unauthorized_client');
    expect((await report(record({ event: 'grant_revoked' }))).body.error).toBe('invalid_request');
    expect((await report(record({ detail: { tool: 'find_slot', outcome: 'ok' } }))).body.error).toBe('invalid_request');
    expect((await report(record({ detail: { jti: 'at_unknown', tool: 'find_slot', outcome: 'ok' } }))).body.error).toBe('invalid_request');
    expect((await report('[]')).body.error).toBe('invalid_request');
    const other = await registerTestAgent(authz, 'reporter', 'http://127.0.0.1:9/reporter');
    expect((await report(record(), other)).body.error).toBe('unauthorized_client');
    // A public client is refused before it is looked up, as an unknown client_id is (was unauthorized_client: an oracle of which ids exist).
    expect((await postForm(`${authz.issuer}/audit`, { client_id: client, record: record() })).body.error).toBe('invalid_client');
    // As at /introspect (RFC 7662 §2.3): 401 with the Basic challenge, the credentials being absent.
    const anonymous = await postForm(`${authz.issuer}/audit`, { record: record() });
    expect([anonymous.status, anonymous.headers.get('www-authenticate')]).toEqual([401, 'Basic realm="delegate"']);
    expect((await authz.store.listAudit()).length).toBe(before);
  });

  it('refuses a detail nested more than 16 levels deep or longer than 16,384 characters, and writes the reports sent with it (found in review: one nested 10,000 deep overflowed the stack and took its group of records down)', async () => {
    const before = (await authz.store.listAudit()).length;
    const nested = (depth: number) => JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`) as unknown;
    // Written as text: JSON.stringify itself overflows on a value that deep (JSON.parse does not).
    const deep = record({ detail: { jti: claims.jti, tool: 'find_slot', arguments: 'DEEP' } }).replace('"DEEP"', `${'['.repeat(10_000)}${']'.repeat(10_000)}`);
    const answers = await Promise.all([report(deep), report(record()), report(deep), report(record())]);
    expect(answers.map((a) => a.status)).toEqual([400, 204, 400, 204]);
    expect(answers[0]!.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining('16 levels') });
    // The detail is level 1: arguments nested 15 deep make 16, 16 deep make 17.
    expect((await report(record({ detail: { jti: claims.jti, arguments: nested(15) } }))).status).toBe(204);
    expect((await report(record({ detail: { jti: claims.jti, arguments: nested(16) } }))).body.error).toBe('invalid_request');
    const long = await report(record({ detail: { jti: claims.jti, arguments: 'x'.repeat(16_384) } }));
    expect(long.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining('16384 characters') });
    expect((await authz.store.listAudit()).length).toBe(before + 3);
    expect(await authz.store.verifyAudit()).toMatchObject({ ok: true });
  });

  it.each([
    ['a tool name that prints a forged line', { tool: 'find_slot ok\n2026-12-05T05:00:00.000Z  #999  grant_revoked  for root' }],
    ['a tool name that erases its line', { tool: '\r\u001b[2K2026-12-05T05:00:01.000Z  #1000  token_revoked' }],
    ['an outcome with a C1 control', { tool: 'find_slot', outcome: 'ok\u009b2K' }],
    ['a decision with a bidirectional isolate', { tool: 'find_slot', decision: 'ok\u2066' }],
  ])('refuses %s with invalid_request, nothing appended (found in review: printed raw by delegate audit)', async (_name, fields) => {
    const before = (await authz.store.listAudit()).length;
    const res = await report(record({ detail: { jti: claims.jti, ...fields } }));
    expect(res.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining('control characters') });
    expect((await authz.store.listAudit()).length).toBe(before);
  });

  // Found in review (s30attack, info): a tool named "find_slot  ok  reported by nobody" was taken (204), and `delegate
  // audit` printed it as though its words were the record's own fields. A tool is named as MCP names tools; an outcome
  // is one the resource servers write.
  it.each([
    ['a tool name shaped as the line’s fields', { tool: 'find_slot  ok  reported by nobody', outcome: 'ok' }, 'as MCP names tools'],
    ['a tool name of 129 characters', { tool: 'x'.repeat(129), outcome: 'ok' }, 'as MCP names tools'],
    ['a tool name that is no string', { tool: 5, outcome: 'ok' }, 'as MCP names tools'],
    ['an outcome no server writes', { tool: 'find_slot', outcome: 'approved by the owner' }, 'ok, error, refused'],
  ])('refuses %s with invalid_request, nothing appended', async (_name, fields, said) => {
    const before = (await authz.store.listAudit()).length;
    const res = await report(record({ detail: { jti: claims.jti, ...fields } }));
    expect(res.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining(said) });
    expect((await authz.store.listAudit()).length).toBe(before);
    // The control: MCP's tool name characters, and each outcome CalendarAgent writes.
    for (const outcome of ['ok', 'error', 'refused']) expect((await report(record({ detail: { jti: claims.jti, tool: 'calendar.find-slot_2', outcome } }))).status).toBe(204);
  });

  // Found in review (s23audit): each of these was stored as sent (204), and `delegate audit` printed the forged
  // keys as if the AS had written them ("… find_slot approved busy:read ok time zone Europe/Paris").
  it.each([
    ['an administrator’s by and name', { by: 'cli', name: 'root' }],
    ['a decision and a scope', { decision: 'approved', scope: 'busy:read' }],
    ['a time zone', { timeZone: 'Europe/Paris' }],
    ['the AS’s own reported_after_revocation_at', { reported_after_revocation_at: 1 }],
    ['a password', { password: 'hunter2' }],
  ])('refuses a tool_call detail holding %s, a key the AS owns or no agent writes, with invalid_request; nothing appended', async (_name, fields) => {
    const before = (await authz.store.listAudit()).length;
    const res = await report(record({ detail: { jti: claims.jti, tool: 'find_slot', outcome: 'ok', ...fields } }));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining('is not among them') });
    expect((await authz.store.listAudit()).length).toBe(before);
  });

  it.each([
    ['a live access token in the arguments', () => ({ arguments: { note: user.accessToken } })],
    ['a refresh token in the message', () => ({ outcome: 'error', message: `failed with ${user.refreshToken}` })],
    ['a password among the arguments', () => ({ arguments: { password: 'hunter2' } })],
  ])('refuses a detail holding %s with invalid_request; nothing appended (docs/internals.md: the token itself is never written)', async (_name, fields) => {
    const before = (await authz.store.listAudit()).length;
    const res = await report(record({ detail: { jti: claims.jti, tool: 'find_slot', outcome: 'ok', ...fields() } }));
    expect(res.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining('secret') });
    expect(JSON.stringify(await authz.store.listAudit())).not.toContain(user.accessToken);
    expect((await authz.store.listAudit()).length).toBe(before);
  });

  it('refuses a freebusy_read from an agent, whose resource is its MCP URL and no calendar backend; nothing appended', async () => {
    const before = (await authz.store.listAudit()).length;
    const res = await report(record({ event: 'freebusy_read', detail: { jti: claims.jti, outcome: 'ok', window: { from: 'a', to: 'b' }, calendars: ['work'] } }));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('unauthorized_client');
    expect((await authz.store.listAudit()).length).toBe(before);
  });

  it('names a refused key back only when it is a plain name', async () => {
    const res = await report(record({ detail: { jti: claims.jti, tool: 'find_slot', 'tool\u202e\u001b': 'x' } }));
    expect(res.body).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining('another key is not among them') });
  });

  it('takes every key CalendarAgent writes: arguments, a failed call’s message, a gate’s missing_scope and unreached', async () => {
    const res = await report(record({ detail: { jti: claims.jti, tool: 'find_slot', outcome: 'refused', arguments: { duration: '30m' }, message: 'no', missing_scope: ['busy:read'], unreached: true } }));
    expect(res.status).toBe(204);
  });
});
