// Additions that were off the audit log (found in review, s24): a client
// registered at /register (RFC 7591) and the owner account (with its demo
// calendar) that the first `serve` creates. Each now appends a record in its
// change's transaction, never a secret, and `delegate audit` shows it on a
// readable line. Over a real stack set up as `serve` sets it up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrap } from '../../src/cli/servers.js';
import { runCli } from '../../src/cli/program.js';
import { failAuditRecords } from '../support/fail-audit.js';
import { postJson } from '../support/oauth-flow.js';
import { fakeIo } from '../cli/fake-io.js';
import { startStack, type Stack } from '../security/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack?.close());

const records = async (event: string) => (await stack.store.listAudit({ events: [event] }));

async function auditLines(...args: string[]): Promise<string[]> {
  const io = fakeIo({ DELEGATE_HOME: stack.home });
  expect(await runCli(['audit', ...args], io), io.err).toBe(0);
  return io.out.trim().split('\n');
}

describe('a client registered at /register', () => {
  it('appends client_registered: its id, name, redirect URIs, grant types, auth method and source address, never the secret', async () => {
    const res = await postJson(`${stack.issuer}/register`, {
      client_name: 'Secretive App',
      redirect_uris: ['https://app.example.test/cb', 'http://127.0.0.1:7777/callback'],
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
    });
    expect(res.status).toBe(201);
    const clientId = String(res.body.client_id);
    const secret = String(res.body.client_secret);
    expect(secret.length).toBeGreaterThan(20);
    const [record, ...more] = (await records('client_registered')).filter((r) => r.client === clientId);
    expect(more).toEqual([]);
    expect(record).toMatchObject({
      event: 'client_registered',
      client: clientId,
      user: null,
      grant: null,
      detail: {
        client_name: 'Secretive App',
        redirect_uris: ['https://app.example.test/cb', 'http://127.0.0.1:7777/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'client_secret_basic',
        source_address: '127.0.0.1',
      },
    });
    const stored = JSON.stringify(await stack.store.listAudit());
    expect(stored).not.toContain(secret);
    expect(stored).not.toContain((await stack.store.clientById(clientId))!.secretHash!);
    expect((await stack.store.verifyAudit()).ok).toBe(true);

    const line = (await auditLines('--event', 'client_registered', '--client', clientId)).join('\n');
    expect(line).toMatch(new RegExp(`^\\S+  #\\d+  client_registered  by ${clientId}  redirect app\\.example\\.test,127\\.0\\.0\\.1:7777 from 127\\.0\\.0\\.1 name "Secretive App"$`));
  });

  it('a public client of an app’s private-use scheme: its line names the scheme', async () => {
    const res = await postJson(`${stack.issuer}/register`, { client_name: 'Phone App', redirect_uris: ['com.example.app:/oauth'], token_endpoint_auth_method: 'none' });
    expect(res.status).toBe(201);
    const [line] = await auditLines('--client', String(res.body.client_id));
    expect(line).toContain('redirect com.example.app: from 127.0.0.1 name "Phone App"');
  });

  // Found in review (s24new2): the name was printed raw between quotes, so a name could forge the fields after it.
  it('a name holding quotes cannot pass for the redirect host or the source: it comes last, quoted as JSON quotes it', async () => {
    const forged = 'Calendar" redirect 127.0.0.1:8410 from 10.1.2.3 "x';
    const res = await postJson(`${stack.issuer}/register`, { client_name: forged, redirect_uris: ['http://127.0.0.1:9999/cb'], token_endpoint_auth_method: 'none' });
    expect(res.status).toBe(201);
    const [line] = await auditLines('--client', String(res.body.client_id));
    expect(line).toMatch(/  redirect 127\.0\.0\.1:9999 from 127\.0\.0\.1 name "Calendar\\" redirect 127\.0\.0\.1:8410 from 10\.1\.2\.3 \\"x"$/);
  });

  it('a refused registration appends nothing', async () => {
    const before = (await stack.store.listAudit()).length;
    const res = await postJson(`${stack.issuer}/register`, { client_name: 'Bad', redirect_uris: ['http://app.example.test/cb'] });
    expect(res.status).toBe(400);
    expect((await stack.store.listAudit()).length).toBe(before);
  });

  it('a registration whose record cannot be written (a full disk) registers no client, and the retry registers and records one', async () => {
    const clients = (await stack.store.listClients()).length;
    const restore = failAuditRecords(stack.home, 'client_registered');
    try {
      const res = await postJson(`${stack.issuer}/register`, { client_name: 'Unrecorded', redirect_uris: ['http://127.0.0.1/cb'], token_endpoint_auth_method: 'none' });
      expect(res.status).toBeGreaterThanOrEqual(500);
      expect((await stack.store.listClients()).length).toBe(clients);
    } finally {
      restore();
    }
    const res = await postJson(`${stack.issuer}/register`, { client_name: 'Unrecorded', redirect_uris: ['http://127.0.0.1/cb'], token_endpoint_auth_method: 'none' });
    expect(res.status).toBe(201);
    expect((await records('client_registered')).filter((r) => r.client === res.body.client_id)).toHaveLength(1);
  });
});

describe('the owner account the first serve creates', () => {
  it('appends user_added (by setup, marked owner) and calendar_added for its demo calendar, once: a later start adds none', async () => {
    const owner = (await stack.store.ownerUser())!;
    expect(await records('user_added')).toEqual([expect.objectContaining({ user: owner.id, detail: { by: 'setup', name: owner.name, owner: true } })]);
    expect(await records('calendar_added')).toEqual([expect.objectContaining({ user: owner.id, detail: expect.objectContaining({ by: 'setup', name: 'demo', kind: 'file' }) })]);

    await bootstrap(stack.store, stack.paths, { issuer: stack.issuer, calendarUrl: stack.calendarUrl, agentUrl: stack.agentUrl }, Date.now());
    expect(await records('user_added')).toHaveLength(1);
    expect(await records('calendar_added')).toHaveLength(1);

    const [line] = await auditLines('--event', 'user_added');
    expect(line).toMatch(new RegExp(`^\\S+  #\\d+  user_added  for ${owner.name}  by setup  owner$`));
  });
});
