// POST /audit from outside: an agent reports the calls it served about its own
// resource; anyone else, or a report about another resource, is refused and
// nothing is written.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAuthz, registerTestAgent, type TestAuthz } from '../support/authz.js';
import { postForm, registerPublicClient } from '../support/oauth-flow.js';
import { clientAssertion } from './helpers.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

const record = (overrides: Record<string, unknown> = {}) =>
  JSON.stringify({ event: 'tool_call', user: 'usr_1', client: 'cli_1', grant: 'grt_1', resource: authz.agentUrl, actors: ['cli_1', 'usr_1'], detail: { tool: 'find_slot', outcome: 'ok' }, ...overrides });

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
    expect(last).toMatchObject({ event: 'tool_call', resource: authz.agentUrl, actors: ['cli_1', 'usr_1'], detail: { tool: 'find_slot', reported_by: 'calendar-agent' } });
    expect((await authz.store.verifyAudit()).ok).toBe(true);
  });

  it('refuses a report about another resource, an event the AS writes itself, a public client, and no authentication', async () => {
    const before = (await authz.store.listAudit()).length;
    expect((await report(record({ resource: authz.calendarUrl }))).body.error).toBe('unauthorized_client');
    expect((await report(record({ event: 'grant_revoked' }))).body.error).toBe('invalid_request');
    const other = await registerTestAgent(authz, 'reporter', 'http://127.0.0.1:9/reporter');
    expect((await report(record(), other)).body.error).toBe('unauthorized_client');
    const client = await registerPublicClient(authz.issuer);
    expect((await postForm(`${authz.issuer}/audit`, { client_id: client, record: record() })).body.error).toBe('unauthorized_client');
    const anonymous = await postForm(`${authz.issuer}/audit`, { record: record() });
    expect(anonymous.status).toBe(401);
    expect((await authz.store.listAudit()).length).toBe(before);
  });
});
