// Discovery (RFC 8414, JWKS) and open registration (RFC 7591) from outside.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAgent } from '../../src/authz/index.js';
import { es256Key, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postJson } from '../support/oauth-flow.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

describe('metadata', () => {
  it('describes the server as RFC 8414 and the MCP authorization spec ask', async () => {
    const res = await fetch(`${authz.issuer}/.well-known/oauth-authorization-server`);
    expect(res.status).toBe(200);
    const m = (await res.json()) as Record<string, any>;
    expect(m.issuer).toBe(authz.issuer);
    expect(m.code_challenge_methods_supported).toEqual(['S256']);
    expect(m.response_types_supported).toEqual(['code']);
    expect(m.grant_types_supported).toEqual(expect.arrayContaining(['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:token-exchange']));
    expect(m.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(['none', 'private_key_jwt']));
    expect(m.scopes_supported).toEqual(expect.arrayContaining(['slots:find', 'freebusy:read']));
    expect(m.registration_endpoint).toBe(`${authz.issuer}/register`);
    expect(m.authorization_response_iss_parameter_supported).toBe(true);
    const jwks = (await (await fetch(m.jwks_uri)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwks.keys[0]!.d).toBeUndefined();
  });

  it('names the signing algorithms of every endpoint that takes JWT client authentication (RFC 8414 §2)', async () => {
    const m = (await (await fetch(`${authz.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    const methodLists = Object.keys(m).filter((k) => k.endsWith('_auth_methods_supported'));
    expect(methodLists).toEqual(expect.arrayContaining(['token_endpoint_auth_methods_supported', 'revocation_endpoint_auth_methods_supported', 'introspection_endpoint_auth_methods_supported']));
    for (const key of methodLists) {
      const methods = m[key] as string[];
      if (!methods.includes('private_key_jwt') && !methods.includes('client_secret_jwt')) continue;
      const algs = m[key.replace(/_auth_methods_supported$/, '_auth_signing_alg_values_supported')];
      expect(algs, `${key} lists a JWT method`).toEqual(['ES256']);
    }
  });

  it('keeps the signing key across restarts (it lives in the database)', async () => {
    const before = (await (await fetch(`${authz.issuer}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
    const keys = await authz.store.signingKeys();
    expect(keys.map((k) => k.kid)).toEqual(before.keys.map((k: { kid: string }) => k.kid));
  });
});

describe('registration', () => {
  const valid = { client_name: 'c', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] };

  it('registers a public loopback client and an https one', async () => {
    const res = await postJson(`${authz.issuer}/register`, valid);
    expect(res.status).toBe(201);
    expect(res.body.client_id).toMatch(/^cli_/);
    expect(res.body.client_secret).toBeUndefined();
    expect(res.body.redirect_uris).toEqual(valid.redirect_uris);
    const web = await postJson(`${authz.issuer}/register`, { ...valid, redirect_uris: ['https://app.example/cb'] });
    expect(web.status).toBe(201);
  });

  it('gives a confidential client a secret, stored only as a hash', async () => {
    const res = await postJson(`${authz.issuer}/register`, { ...valid, token_endpoint_auth_method: 'client_secret_basic' });
    expect(res.status).toBe(201);
    const secret = String(res.body.client_secret);
    expect(secret.length).toBeGreaterThanOrEqual(43);
    const stored = await authz.store.clientById(String(res.body.client_id));
    expect(stored?.secretHash).not.toBe(secret);
    expect(JSON.stringify(stored)).not.toContain(secret);
  });

  it.each([
    ['a non-loopback http URI', { redirect_uris: ['http://example.com/cb'] }, 'invalid_redirect_uri'],
    // RFC 8252 §7.3 names the loopback literals 127.0.0.1 and [::1] (§8.3 localhost) for redirect URIs: no other loopback address.
    ['an http URI on 127.0.0.2', { redirect_uris: ['http://127.0.0.2/cb'] }, 'invalid_redirect_uri'],
    ['an http URI on IPv4-mapped loopback', { redirect_uris: ['http://[::ffff:127.0.0.1]/cb'] }, 'invalid_redirect_uri'],
    ['a fragment', { redirect_uris: ['https://app.example/cb#x'] }, 'invalid_redirect_uri'],
    ['a custom scheme', { redirect_uris: ['javascript://alert(1)'] }, 'invalid_redirect_uri'],
    ['no redirect URIs', { redirect_uris: [] }, 'invalid_redirect_uri'],
    ['private_key_jwt', { token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata'],
    ['the token-exchange grant', { grant_types: ['urn:ietf:params:oauth:grant-type:token-exchange'] }, 'invalid_client_metadata'],
    ['an implicit response type', { response_types: ['token'] }, 'invalid_client_metadata'],
    ['a key set', { jwks: { keys: [] } }, 'invalid_client_metadata'],
    ['a non-string name', { client_name: 42 }, 'invalid_client_metadata'],
    // Found in review: printed raw by `delegate grants list`, this name erased its line and wrote another.
    ['a name that rewrites a terminal line', { client_name: '\r\u001b[2Kgrt_x  active  CalendarAgent via delegate CLI\n' }, 'invalid_client_metadata'],
    ['a name with a newline', { client_name: 'good\nfake line' }, 'invalid_client_metadata'],
    ['a name with a C1 control', { client_name: 'a\u009bb' }, 'invalid_client_metadata'],
    ['a name with a bidirectional override', { client_name: 'evil\u202egnp.exe' }, 'invalid_client_metadata'],
    ['a client_uri with DEL', { client_uri: 'https://example.com/\u007f' }, 'invalid_client_metadata'],
    ['a contact with a line separator', { contacts: ['a@example.com\u2028b'] }, 'invalid_client_metadata'],
  ])('refuses %s', async (_name, patch, error) => {
    const res = await postJson(`${authz.issuer}/register`, { ...valid, ...patch });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe(error);
  });

  // RFC 7591 §2: client_uri, logo_uri, tos_uri and policy_uri are URLs of web pages. Found in review (s25rfc):
  // `javascript:alert(1)` and `not a url` were stored and echoed (201).
  it.each([
    ['logo_uri', 'javascript:alert(1)'],
    ['client_uri', 'not a url'],
    ['tos_uri', 'http://app.example/tos'],
    ['policy_uri', 'data:text/html,<b>x</b>'],
    ['client_uri', 'HTTPS://app.example/'],
    ['logo_uri', 'https://user:pw@app.example/logo.png'],
    ['logo_uri', 'https://app.example/a logo.png'],
    ['client_uri', '//app.example/'],
    ['tos_uri', `https://app.example/${'t'.repeat(600)}`],
  ])('refuses %s %j: 400 invalid_client_metadata, no client', async (field, value) => {
    const before = (await authz.store.listClients()).length;
    const res = await postJson(`${authz.issuer}/register`, { ...valid, [field]: value });
    expect([res.status, res.body.error]).toEqual([400, 'invalid_client_metadata']);
    // The long one is refused by the bound on every text field (MAX_TEXT_LENGTH), which says so.
    expect(String(res.body.error_description)).toMatch(new RegExp(`^${field} must be (an absolute https URL|a string of at most 512 characters)`));
    expect((await authz.store.listClients()).length).toBe(before);
  });

  it('registers and echoes https page URLs, and http ones on a loopback address (the control)', async () => {
    const pages = { client_uri: 'https://app.example/', logo_uri: 'https://cdn.app.example/logo.png?v=2', tos_uri: 'https://app.example/legal#terms', policy_uri: 'http://127.0.0.1:5555/privacy' };
    const res = await postJson(`${authz.issuer}/register`, { ...valid, ...pages });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject(pages);
  });

  // The metadata lists private_key_jwt (agents authenticate that way), so the refusal says where such a client is
  // registered instead of reading as a contradiction (found in review).
  it('refuses private_key_jwt saying that agents and their keys are registered by the operator with `delegate agents register`', async () => {
    const res = await postJson(`${authz.issuer}/register`, { ...valid, token_endpoint_auth_method: 'private_key_jwt' });
    expect([res.status, res.body.error]).toEqual([400, 'invalid_client_metadata']);
    const description = String(res.body.error_description);
    expect(description).toContain('private_key_jwt is for agents');
    expect(description).toContain('`delegate agents register`');
    expect(description).toContain('not by dynamic registration');
    expect(description).toContain('none, client_secret_basic, client_secret_post');
    // Any other method still gets the list alone.
    const other = await postJson(`${authz.issuer}/register`, { ...valid, token_endpoint_auth_method: 'tls_client_auth' });
    expect([other.status, other.body.error]).toEqual([400, 'invalid_client_metadata']);
    expect(other.body.error_description).toBe('token_endpoint_auth_method must be one of none, client_secret_basic, client_secret_post.');
  });

  // RFC 7591 §2: redirect_uris are for redirect-based flows, and response_types defaults to "code"; a client
  // for the device grant alone (RFC 8628) uses neither. §3.1 lets the server provision values for what is omitted,
  // and §2.1 asks it not to let a client register itself into an inconsistent state.
  const DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';
  const deviceOnly = { client_name: 'tv', token_endpoint_auth_method: 'none', grant_types: [DEVICE] };

  it('registers a device-only client without redirect URIs, with response_types [] or omitted', async () => {
    for (const body of [{ ...deviceOnly, response_types: [] }, deviceOnly, { ...deviceOnly, grant_types: [DEVICE, 'refresh_token'] }]) {
      const res = await postJson(`${authz.issuer}/register`, body);
      expect(res.status, `${JSON.stringify(body)} → ${JSON.stringify(res.body)}`).toBe(201);
      expect(res.body).toMatchObject({ grant_types: body.grant_types, response_types: [], redirect_uris: [] });
      const stored = await authz.store.clientById(String(res.body.client_id));
      expect(stored).toMatchObject({ grantTypes: body.grant_types, redirectUris: [] });
    }
  });

  it('derives response_types ["code"] when omitted with authorization_code, and keeps the defaults of an empty request', async () => {
    const code = await postJson(`${authz.issuer}/register`, { ...valid, grant_types: ['authorization_code', DEVICE] });
    expect(code.body).toMatchObject({ grant_types: ['authorization_code', DEVICE], response_types: ['code'] });
    const defaults = await postJson(`${authz.issuer}/register`, { redirect_uris: valid.redirect_uris, token_endpoint_auth_method: 'none' });
    expect(defaults.body).toMatchObject({ grant_types: ['authorization_code'], response_types: ['code'] });
  });

  it.each([
    ['authorization_code without redirect URIs', { grant_types: ['authorization_code'], redirect_uris: undefined }, 'invalid_redirect_uri'],
    ['the default grant without redirect URIs', { grant_types: undefined, redirect_uris: undefined }, 'invalid_redirect_uri'],
    ['the device grant with response_types ["code"] given', { grant_types: [DEVICE], response_types: ['code'], redirect_uris: undefined }, 'invalid_client_metadata'],
    ['authorization_code with response_types [] given', { grant_types: ['authorization_code'], response_types: [] }, 'invalid_client_metadata'],
    ['a device-only client with an unsafe redirect URI', { grant_types: [DEVICE], redirect_uris: ['http://example.com/cb'] }, 'invalid_redirect_uri'],
    // Found in review: registered (201), though no grant of theirs could ever issue a token (RFC 7591 §2.1).
    ['grant_types []', { grant_types: [], response_types: [] }, 'invalid_client_metadata'],
    ['grant_types ["refresh_token"] alone', { grant_types: ['refresh_token'], response_types: [] }, 'invalid_client_metadata'],
  ])('still refuses %s', async (_name, patch, error) => {
    const before = (await authz.store.listClients()).length;
    const res = await postJson(`${authz.issuer}/register`, { ...valid, ...patch });
    expect([res.status, res.body.error]).toEqual([400, error]);
    expect((await authz.store.listClients()).length).toBe(before);
  });

  it('refuses a body that is not JSON, or too large', async () => {
    const form = await fetch(`${authz.issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'redirect_uris=x' });
    expect(form.status).toBe(400);
    const big = await fetch(`${authz.issuer}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...valid, client_name: 'x'.repeat(200_000) }) });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: string }).error).toBe('invalid_request');
  });
});

// RFC 6749 §3.3: an agent's scopes are scope-tokens, as every request names them. Found in review (regress21e):
// 'agenda:write ' and 'x"y' were registered, no request could then name them, and /authorize's invalid_scope listed
// the agent's scopes run together ("offers only: agenda:write  x'y").
describe('an agent registered by the operator (registerAgent)', () => {
  const register = async (clientId: string, resourceUrl: string, scopes: string[]) => {
    const key = await es256Key();
    const profile = { name: clientId, softwareId: 't', softwareVersion: '1', operator: { name: 'T', contact: 't@example.test' }, description: 'd', limitations: [] };
    return registerAgent(authz.store, authz.issuer, { clientId, resourceUrl, scopes, jwks: { keys: [key.publicJwk as Record<string, unknown>] }, downstream: [], profile }, Date.now());
  };

  it.each([['agenda:write '], ['x"y'], ['a\\b'], ['a b'], [''], ['agenda:wr\u00eete'], ['\u001b[31m']])('refuses the scope %j, registering nothing', async (scope) => {
    const resourceUrl = 'http://127.0.0.1:9000/mcp';
    await expect(register('helper', resourceUrl, ['agenda:read', scope])).rejects.toThrow(`${JSON.stringify(scope)} is not a scope: a scope is one word of printable ASCII`);
    expect(await authz.store.resourceByUrl(resourceUrl)).toBeUndefined();
    expect(await authz.store.clientById('helper')).toBeUndefined();
  });

  it('registers scope-tokens of every character RFC 6749 §3.3 allows (the control)', async () => {
    const resourceUrl = 'http://127.0.0.1:9001/mcp';
    const scopes = ['agenda:write', "x'y", '!#$%&()*+,-./:;<=>?@[]^_`{|}~'];
    await register('helper-ok', resourceUrl, scopes);
    expect((await authz.store.resourceByUrl(resourceUrl))?.scopes).toEqual(scopes);
  });
});

// Setup registers CalendarAgent at every start (bootstrapLocal, { onlyIfMoved }); found in review: each start re-signed
// its statement (a new iat), a `serve` refused for a port in use too.
describe('setup registering an agent that is on record as it is', () => {
  const setupRecord = { by: 'setup', onlyIfMoved: true };
  const profile = { name: 'Helper', softwareId: 't', softwareVersion: '1', operator: { name: 'T', contact: 't@example.test' }, description: 'd', limitations: ['none'] };
  const registration = async (clientId: string, resourceUrl: string) => ({
    clientId,
    resourceUrl,
    scopes: ['agenda:read'],
    jwks: { keys: [(await es256Key()).publicJwk as Record<string, unknown>] },
    downstream: [],
    profile,
  });
  const later = (seconds: number) => Date.now() + seconds * 1000;

  it('writes nothing: the statement stays the one signed first', async () => {
    const agent = await registration('as-it-is', 'http://127.0.0.1:9002/mcp');
    const first = await registerAgent(authz.store, authz.issuer, agent, later(0), setupRecord);
    const again = await registerAgent(authz.store, authz.issuer, agent, later(5), setupRecord);
    expect(again.client.metadata.agent_statement).toBe(first.client.metadata.agent_statement);
    expect((await authz.store.clientById('as-it-is'))?.metadata.agent_statement).toBe(first.client.metadata.agent_statement);
  });

  it.each([
    ['a new software version', 1, (a: Awaited<ReturnType<typeof registration>>) => ({ ...a, profile: { ...a.profile, softwareVersion: '2' } })],
    ['a new operator contact', 2, (a: Awaited<ReturnType<typeof registration>>) => ({ ...a, profile: { ...a.profile, operator: { name: 'T', contact: 'u@example.test' } } })],
    ['another scope', 3, (a: Awaited<ReturnType<typeof registration>>) => ({ ...a, scopes: ['agenda:read', 'agenda:write'] })],
  ])('signs again for %s, and stores it', async (_what, n, change) => {
    const agent = await registration(`changed-${n}`, `http://127.0.0.1:${9003 + n}/mcp`);
    const first = await registerAgent(authz.store, authz.issuer, agent, later(0), setupRecord);
    const changed = change(agent);
    const again = await registerAgent(authz.store, authz.issuer, changed, later(5), setupRecord);
    expect(again.client.metadata.agent_statement).not.toBe(first.client.metadata.agent_statement);
    expect((await authz.store.clientById(agent.clientId))?.metadata.software_version).toBe(changed.profile.softwareVersion);
    expect((await authz.store.resourceByUrl(agent.resourceUrl))?.scopes).toEqual(changed.scopes);
  });

  // Found in review (s29): with any one of these three checks left out, the tests above still passed.
  it('binds the record to a new agent key (agent-key.json replaced)', async () => {
    const agent = await registration('new-key', 'http://127.0.0.1:9021/mcp');
    await registerAgent(authz.store, authz.issuer, agent, later(0), setupRecord);
    const rekeyed = { ...agent, jwks: { keys: [(await es256Key()).publicJwk as Record<string, unknown>] } };
    await registerAgent(authz.store, authz.issuer, rekeyed, later(5), setupRecord);
    expect((await authz.store.clientById('new-key'))?.jwks).toEqual(rekeyed.jwks);
  });

  it('signs for another issuer (another --auth-port)', async () => {
    const agent = await registration('new-issuer', 'http://127.0.0.1:9022/mcp');
    await registerAgent(authz.store, 'http://127.0.0.1:9999', agent, later(0), setupRecord);
    await registerAgent(authz.store, authz.issuer, agent, later(5), setupRecord);
    expect(decodeJwt(String((await authz.store.clientById('new-issuer'))?.metadata.agent_statement)).iss).toBe(authz.issuer);
  });

  it('records another downstream (another --calendar-port)', async () => {
    const calendar = (port: number) => [{ type: 'calendar', resource: `http://127.0.0.1:${port}`, scopes: ['freebusy:read'] }];
    const agent = { ...(await registration('new-downstream', 'http://127.0.0.1:9023/mcp')), downstream: calendar(9031) };
    await registerAgent(authz.store, authz.issuer, agent, later(0), setupRecord);
    await registerAgent(authz.store, authz.issuer, { ...agent, downstream: calendar(9032) }, later(5), setupRecord);
    expect((await authz.store.resourceByUrl('http://127.0.0.1:9023/mcp'))?.downstream).toEqual(calendar(9032));
  });

  it('signs again when the statement on record does not verify (signed by a key that is not the current one)', async () => {
    const agent = await registration('unverified', 'http://127.0.0.1:9010/mcp');
    const first = await registerAgent(authz.store, authz.issuer, agent, later(0), setupRecord);
    const client = (await authz.store.clientById('unverified'))!;
    const [header, payload] = String(first.client.metadata.agent_statement).split('.');
    await authz.store.updateClient({ ...client, metadata: { ...client.metadata, agent_statement: `${header}.${payload}.AAAA` } });
    const again = await registerAgent(authz.store, authz.issuer, agent, later(5), setupRecord);
    expect(again.client.metadata.agent_statement).not.toBe(`${header}.${payload}.AAAA`);
    expect((await authz.store.clientById('unverified'))?.metadata.agent_statement).toBe(again.client.metadata.agent_statement);
  });
});

describe('DNS rebinding', () => {
  it('refuses a Host that is not this server', async () => {
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${authz.issuer}/.well-known/oauth-authorization-server`, { headers: { host: 'evil.example:80' } }, (res) => resolve(res.statusCode!));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(421);
  });
});
