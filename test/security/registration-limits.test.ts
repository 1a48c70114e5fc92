// Open registration (RFC 7591) bounded, as §3 allows against denial of service.
// Found in review: any local program, or a page in the owner's browser (CORS
// allows /register), registered ~77 KB clients at 188 a second without end,
// and nothing ever deleted them; `scope` was echoed as registered but bound
// nothing; clients with no grant that issues tokens were registered. Every
// request here goes over HTTP to the servers the CLI builds, from loopback
// (several addresses of 127/8, which count as one source).
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_METADATA_BYTES, REGISTRATION_LIMITS } from '../../src/authz/register.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postJson } from '../support/oauth-flow.js';
import { ownerCode, queryRows, redeemCode, startStack, stateChangedBy, type Stack } from './stack.js';

const DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';
const valid = { client_name: 'app', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** POST /register with a JSON body, sent from `from` (a loopback address of this machine). */
function registerFrom(issuer: string, body: unknown, from = '127.0.0.1', headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${issuer}/register`, { method: 'POST', localAddress: from, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text || '{}') as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const clientCount = (stack: { paths: { db: string } }) => Number(queryRows(stack, 'SELECT count(*) AS n FROM clients')[0]!.n);

describe('a flood of registrations from loopback (default limits)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack.close());

  it('takes the burst allowance from all of 127/8 as one source, then answers 429 too_many_requests with Retry-After and registers nothing more', async () => {
    const burst = REGISTRATION_LIMITS[0]!.limit;
    const before = clientCount(stack);
    const sources = ['127.0.0.1', '127.0.0.2', '127.45.6.7'];
    let sent = 0;
    const statuses: number[] = [];
    // Eight at a time, as the reviewer's flood sent them.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = sent++; i < burst; i = sent++) statuses.push((await registerFrom(stack.issuer, valid, sources[i % sources.length])).status);
      }),
    );
    expect(statuses.filter((s) => s === 201)).toHaveLength(burst);
    expect(clientCount(stack)).toBe(before + burst);

    // Web pages count apart from native clients (found in a later review: a page could lock every app out), so the
    // reviewer's browser page floods the pages' budget the same way, from anywhere in 127/8 and from any origin.
    const pages = ['http://localhost:47230', 'https://evil.example', 'null'];
    sent = 0;
    const pageStatuses: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = sent++; i < burst; i = sent++) pageStatuses.push((await registerFrom(stack.issuer, valid, sources[i % sources.length], { origin: pages[i % pages.length]! })).status);
      }),
    );
    expect(pageStatuses.filter((s) => s === 201)).toHaveLength(burst);
    expect(clientCount(stack)).toBe(before + 2 * burst);

    for (const from of ['127.0.0.1', '127.0.0.9', '127.200.1.1']) {
      for (const headers of [{}, { origin: 'http://localhost:47230' }] as Array<Record<string, string>>) {
        // A native client (no Origin), and the reviewer's browser page: a cross-origin fetch, which CORS lets read the answer.
        const { result, changed } = await stateChangedBy(stack, () => registerFrom(stack.issuer, valid, from, headers));
        expect(result.status, from).toBe(429);
        expect(result.body.error).toBe('too_many_requests');
        expect(String(result.body.error_description)).toMatch(/too many clients .* try again in \d+ seconds/i);
        const retryAfter = Number(result.headers['retry-after']);
        expect(retryAfter).toBeGreaterThanOrEqual(1);
        expect(retryAfter).toBeLessThanOrEqual(60);
        expect(result.headers['cache-control']).toMatch(/no-store/);
        if ('origin' in headers) expect(result.headers['access-control-allow-origin']).toBe('*');
        expect(changed).toEqual([]);
      }
    }
    expect(clientCount(stack)).toBe(before + 2 * burst);
  });
});

describe('the registration limits (options of buildAuthServer), on a clock moved by hand', () => {
  let authz: TestAuthz;
  let clock = Date.now();
  const db = () => ({ paths: { db: `${authz.home}/delegate.db` } });
  beforeAll(async () => {
    authz = await startTestAuthz({ now: () => clock, registrationLimits: [{ limit: 3, windowMs: 60_000 }, { limit: 5, windowMs: 86_400_000 }] });
  });
  afterAll(async () => authz.close());

  it('counts only registrations made, per window: the burst frees up after a minute, the daily one after a day', async () => {
    // Refused registrations make no client and are not counted.
    for (let i = 0; i < 10; i++) expect((await registerFrom(authz.issuer, { ...valid, grant_types: [] })).status).toBe(400);
    for (let i = 0; i < 3; i++) expect((await registerFrom(authz.issuer, valid, `127.0.0.${i + 1}`)).status).toBe(201);
    const burst = await stateChangedBy(db(), () => registerFrom(authz.issuer, valid, '127.0.0.4'));
    expect([burst.result.status, burst.result.body.error, burst.result.headers['retry-after']]).toEqual([429, 'too_many_requests', '60']);
    expect(burst.changed).toEqual([]);

    clock += 61_000;
    for (let i = 0; i < 2; i++) expect((await registerFrom(authz.issuer, valid)).status).toBe(201);
    const daily = await stateChangedBy(db(), () => registerFrom(authz.issuer, valid));
    expect([daily.result.status, daily.result.body.error]).toEqual([429, 'too_many_requests']);
    expect(Number(daily.result.headers['retry-after'])).toBe(86_400 - 61);
    expect(daily.changed).toEqual([]);

    clock += 86_400_000;
    expect((await registerFrom(authz.issuer, valid)).status).toBe(201);
  });

  it('a web page (a browser’s Origin) uses up only what pages get: the CLI and native clients (no Origin) still register (found in review: a page locked every app out for a day)', async () => {
    clock += 2 * 86_400_000; // a fresh day and minute for every budget
    const page = { origin: 'http://localhost:46801' };
    for (let i = 0; i < 3; i++) expect((await registerFrom(authz.issuer, valid, '127.0.0.1', page)).status).toBe(201);
    clock += 61_000;
    for (let i = 0; i < 2; i++) expect((await registerFrom(authz.issuer, valid, '127.0.0.1', page)).status).toBe(201);
    // The pages' daily budget is spent, from any origin (so not a budget per origin: the database's growth stays bounded).
    for (const origin of [page.origin, 'https://evil.example', 'null']) {
      const refused = await stateChangedBy(db(), () => registerFrom(authz.issuer, valid, '127.0.0.2', { origin }));
      expect([refused.result.status, refused.result.body.error], origin).toEqual([429, 'too_many_requests']);
      expect(refused.changed, origin).toEqual([]);
    }
    // What native clients register with is untouched: no Origin, or the AS's own.
    for (let i = 0; i < 3; i++) expect((await registerFrom(authz.issuer, valid, `127.0.0.${i + 3}`)).status).toBe(201);
    expect((await registerFrom(authz.issuer, valid, '127.0.0.9', { origin: new URL(authz.issuer).origin })).status).toBe(429); // the same budget: 4th in the minute
  });
});

describe('registration metadata bounds, grant types and scope', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack.close());

  const pad = (n: number) => 'a'.repeat(n);
  it.each([
    ['a contact of 3,000 characters', { contacts: [`${pad(2990)}@example.com`] }, 'invalid_client_metadata'],
    ['a redirect URI of 2,049 characters', { redirect_uris: [`https://app.example/${pad(2049 - 'https://app.example/'.length)}`] }, 'invalid_redirect_uri'],
    ['every field within its bound, 10 KB in all', { redirect_uris: Array.from({ length: 10 }, (_, i) => `https://x${i}.example/${pad(1000)}`) }, 'invalid_client_metadata'],
    [
      "the reviewer's 60 KB client",
      {
        redirect_uris: Array.from({ length: 10 }, (_, i) => `https://x${i}.example/${pad(1200)}`),
        ...Object.fromEntries(['client_name', 'client_uri', 'logo_uri', 'tos_uri', 'policy_uri', 'software_id', 'software_version'].map((f) => [f, pad(512)])),
        contacts: Array.from({ length: 20 }, () => pad(2200)),
      },
      'invalid_client_metadata',
    ],
    ['grant_types []', { grant_types: [], response_types: [] }, 'invalid_client_metadata'],
    ['grant_types ["refresh_token"] alone', { grant_types: ['refresh_token'], response_types: [] }, 'invalid_client_metadata'],
    ['grant_types ["refresh_token"] alone, no redirect URIs', { grant_types: ['refresh_token'], response_types: [], redirect_uris: undefined }, 'invalid_client_metadata'],
  ])('refuses %s with 400 and registers nothing', async (_name, patch, error) => {
    const { result, changed } = await stateChangedBy(stack, () => postJson(`${stack.issuer}/register`, { ...valid, ...patch }));
    expect([result.status, result.body.error]).toEqual([400, error]);
    expect(changed).toEqual([]);
  });

  it('still registers metadata up to the bounds: 20 contacts, long URIs, every text field', async () => {
    const body = {
      ...valid,
      redirect_uris: [`https://app.example/${pad(2000)}`],
      ...Object.fromEntries(['client_uri', 'logo_uri', 'tos_uri', 'policy_uri'].map((f) => [f, `https://app.example/${pad(200)}`])),
      contacts: Array.from({ length: 20 }, (_, i) => `ops-${i}-${pad(150)}@example.com`),
    };
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThan(MAX_METADATA_BYTES);
    const res = await postJson(`${stack.issuer}/register`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.contacts).toEqual(body.contacts);
  });

  it('registers a well-formed scope as nothing, and does not echo it as registered (RFC 7591 §3.2.1)', async () => {
    for (const scope of ['admin root', 'slots:find']) {
      const res = await postJson(`${stack.issuer}/register`, { ...valid, scope });
      expect(res.status).toBe(201);
      expect(res.body.scope, scope).toBeUndefined();
      const stored = await stack.store.clientById(String(res.body.client_id));
      expect(stored?.metadata.scope).toBeUndefined();
    }
    // A client that registered a narrow scope asks for what the resource offers and the owner approves (step-up).
    const narrow = await postJson(`${stack.issuer}/register`, { ...valid, redirect_uris: ['http://127.0.0.1:43123/callback'], scope: 'slots:find' });
    const approved = await ownerCode(stack, { clientId: String(narrow.body.client_id), scope: 'slots:find busy:read' });
    const tokens = await redeemCode(stack, approved);
    expect([tokens.status, tokens.body.scope]).toEqual([200, 'slots:find busy:read']);
  });

  it('still refuses a scope that is no list of scope tokens', async () => {
    const { result, changed } = await stateChangedBy(stack, () => postJson(`${stack.issuer}/register`, { ...valid, scope: 'a  b' }));
    expect([result.status, result.body.error]).toEqual([400, 'invalid_client_metadata']);
    expect(changed).toEqual([]);
  });
});

describe('the sweep of registered clients nobody used', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack.close());
  const exists = (clientId: string) => queryRows(stack, 'SELECT 1 FROM clients WHERE client_id = ?', clientId).length === 1;

  it('deletes a client a day after it registered if it never got a grant; keeps one with a grant (revoked or not), agents, and younger ones', async () => {
    const unused = String((await postJson(`${stack.issuer}/register`, valid)).body.client_id);
    const confidential = String((await postJson(`${stack.issuer}/register`, { ...valid, token_endpoint_auth_method: 'client_secret_basic' })).body.client_id);
    const used = await ownerCode(stack);
    expect((await redeemCode(stack, used)).status).toBe(200);
    const revoked = await ownerCode(stack);
    const revokedTokens = await redeemCode(stack, revoked);
    const revocation = await fetch(`${stack.issuer}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: String(revokedTokens.body.refresh_token), client_id: revoked.clientId }),
    });
    expect(revocation.status).toBe(200);
    // A code approved and never redeemed: a grant exists.
    const unredeemed = await ownerCode(stack);
    const agents = queryRows(stack, "SELECT client_id FROM clients WHERE kind = 'agent'").map((r) => String(r.client_id));
    expect(agents.length).toBeGreaterThan(0);

    await stack.store.sweep(Date.now() + 23 * 3_600_000);
    expect([unused, confidential].map(exists)).toEqual([true, true]);

    const late = Date.now() + 25 * 3_600_000;
    await stack.store.sweep(late);
    expect([unused, confidential].map(exists)).toEqual([false, false]);
    expect([used.clientId, revoked.clientId, unredeemed.clientId, ...agents].map(exists)).toEqual([true, true, true, ...agents.map(() => true)]);
    // Its app registering afresh is refused nothing: the id it had is simply unknown now.
    const refused = await fetch(`${stack.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'x', code_verifier: 'y'.repeat(43), redirect_uri: valid.redirect_uris[0]!, client_id: unused }),
    });
    expect(((await refused.json()) as { error: string }).error).toBe('invalid_client');
  });

  it('leaves a client with a pending device authorization to the sweep of those (no foreign-key failure)', async () => {
    const device = String((await postJson(`${stack.issuer}/register`, { client_name: 'tv', token_endpoint_auth_method: 'none', grant_types: [DEVICE] })).body.client_id);
    const started = await fetch(`${stack.issuer}/device_authorization`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: device, resource: stack.agentUrl }),
    });
    expect(started.status).toBe(200);
    await stack.store.sweep(Date.now() + 25 * 3_600_000);
    const pending = queryRows(stack, 'SELECT 1 FROM device_authorizations WHERE client_id = ?', device).length;
    expect(exists(device)).toBe(pending > 0);
  });
});
