// RFC 6749 §5.2 from outside: a client that authenticated with HTTP Basic and
// failed gets 401 invalid_client with a Basic challenge, at every endpoint
// that authenticates clients (RFC 7009 §2.2.1 and RFC 7662 §2.3 say the same
// by reference), not only at /token. A client that did not use the header gets
// 400 invalid_client: a 401 must carry a challenge (RFC 9110 §15.5.2); except at
// /introspect, where invalid credentials are 401 with the challenge however they
// were sent (RFC 7662 §2.3), and at /audit, answered alike (its callers too are
// servers: the agents that report to it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postForm, postJson } from '../support/oauth-flow.js';
import { clientAssertion } from './helpers.js';

let authz: TestAuthz;
let confidential: { id: string; secret: string };
beforeAll(async () => {
  authz = await startTestAuthz();
  const res = await postJson(`${authz.issuer}/register`, {
    client_name: 'confidential',
    redirect_uris: ['http://127.0.0.1/callback'],
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
    response_types: ['code'],
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  confidential = { id: String(res.body.client_id), secret: String(res.body.client_secret) };
});
afterAll(async () => authz.close());

/** Each endpoint with the parameters it reads before it authenticates the client. */
const endpoints: Array<[string, string, Record<string, string>]> = [
  ['/token (authorization_code)', '/token', { grant_type: 'authorization_code', code: 'x', redirect_uri: 'http://127.0.0.1/callback' }],
  ['/token (device_code)', '/token', { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: 'x' }],
  ['/revoke', '/revoke', { token: 'x' }],
  ['/introspect', '/introspect', { token: 'x' }],
  ['/device_authorization', '/device_authorization', { resource: 'http://127.0.0.1:1/mcp' }],
  ['/audit', '/audit', { record: '{}' }],
];

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('a failed HTTP Basic client authentication', () => {
  it.each(endpoints)('at %s: 401 invalid_client with WWW-Authenticate: Basic', async (_name, path, params) => {
    const wrongSecret = await postForm(`${authz.issuer}${path}`, params, { authorization: basic(confidential.id, 'wrong') });
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body.error).toBe('invalid_client');
    expect(wrongSecret.headers.get('www-authenticate')).toMatch(/^Basic realm="[^"]+"$/);

    const unknownClient = await postForm(`${authz.issuer}${path}`, params, { authorization: basic('cli_nobody', 'x') });
    expect(unknownClient.status).toBe(401);
    expect(unknownClient.headers.get('www-authenticate')).toMatch(/^Basic /);

    const malformed = await postForm(`${authz.issuer}${path}`, params, { authorization: `Basic ${Buffer.from('no-colon').toString('base64')}` });
    expect(malformed.status).toBe(401);
    expect(malformed.body.error).toBe('invalid_client');
    expect(malformed.headers.get('www-authenticate')).toMatch(/^Basic /);

    // Another scheme, or Basic with a tab, is no way to authenticate here, but still an attempt with the header (§5.2).
    for (const authorization of ['Bearer abc', `Basic\t${Buffer.from(`${confidential.id}:${confidential.secret}`).toString('base64')}`]) {
      const other = await postForm(`${authz.issuer}${path}`, { ...params, client_id: confidential.id, client_secret: 'wrong' }, { authorization });
      expect([authorization.slice(0, 6), other.status, other.body.error]).toEqual([authorization.slice(0, 6), 401, 'invalid_client']);
      expect(other.headers.get('www-authenticate')).toMatch(/^Basic realm="[^"]+"$/);
    }
  });

  // RFC 9110 §15.5.2: no 401 without a challenge, so 400 (RFC 6749 §5.2's default) when none is sent; a Basic one
  // could make a browser-based client's user agent ask for a password. /introspect and /audit are answered below.
  const browserFacing = endpoints.filter(([, path]) => path !== '/introspect' && path !== '/audit');
  it.each(browserFacing)('at %s: 400 and no Basic challenge when the client did not use the Authorization header', async (_name, path, params) => {
    for (const body of [{ ...params, client_id: confidential.id, client_secret: 'wrong' }, { ...params, client_id: 'cli_nobody' }, params]) {
      const res = await postForm(`${authz.issuer}${path}`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error).toBe('invalid_client');
      expect(res.headers.get('www-authenticate')).toBeNull();
    }
  });
});

// RFC 7662 §2.3: credentials that are invalid at the introspection endpoint are answered 401, however they were sent.
// Its callers are resource servers, with no browser to ask anyone for a password, so the challenge costs nothing.
// Found in review (s25rfc): a wrong client_secret_post and a replayed client_assertion were 400.
describe('invalid client credentials at /introspect, sent in the body or not at all', () => {
  const introspect = (body: Record<string, string>) => postForm(`${authz.issuer}/introspect`, { token: 'x', ...body });
  const expectChallenged = (res: Awaited<ReturnType<typeof introspect>>, what: string) => {
    expect([what, res.status, res.body.error]).toEqual([what, 401, 'invalid_client']);
    // Basic is the one HTTP authentication scheme the endpoint takes (client_secret_post and private_key_jwt have none).
    expect(res.headers.get('www-authenticate'), what).toMatch(/^Basic realm="[^"]+"$/);
    expect(res.headers.get('cache-control'), what).toMatch(/no-store/);
  };

  it('a wrong client_secret_post, an unknown client, a client naming itself only, none: 401 invalid_client with the Basic challenge', async () => {
    expectChallenged(await introspect({ client_id: confidential.id, client_secret: 'wrong' }), 'wrong secret');
    expectChallenged(await introspect({ client_id: 'cli_nobody', client_secret: 'x' }), 'unknown client');
    expectChallenged(await introspect({ client_id: confidential.id }), 'no secret');
    expectChallenged(await introspect({}), 'no client');
  });

  it('a replayed client_assertion: 401 invalid_client with the Basic challenge; the first use is answered (the control)', async () => {
    const assertion = await clientAssertion(authz.agent.privateJwk, authz.agent.clientId, authz.issuer);
    const body = { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion };
    const first = await introspect(body);
    expect([first.status, first.body]).toEqual([200, { active: false }]);
    expectChallenged(await introspect(body), 'replayed assertion');
  });

  it('the right secret in the body is answered (the control), and a request without a token is still 400 invalid_request', async () => {
    const reg = await postJson(`${authz.issuer}/register`, { client_name: 'post', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'client_secret_post' });
    const post = { client_id: String(reg.body.client_id), client_secret: String(reg.body.client_secret) };
    expectChallenged(await introspect({ ...post, client_secret: 'wrong' }), 'wrong client_secret_post');
    const ok = await introspect(post);
    expect([ok.status, ok.body]).toEqual([200, { active: false }]);
    const noToken = await postForm(`${authz.issuer}/introspect`, post);
    expect([noToken.status, noToken.body.error, noToken.headers.get('www-authenticate')]).toEqual([400, 'invalid_request', null]);
  });
});

// /audit answers as /introspect does: its callers are agents (servers), which send their private_key_jwt in the body.
// Found in review (s26): wrong credentials in the body were 400 here and 401 with the challenge at /introspect.
describe('invalid client credentials at /audit, sent in the body or not at all, are answered as at /introspect', () => {
  const audit = (body: Record<string, string>) => postForm(`${authz.issuer}/audit`, { record: '{}', ...body });
  const expectChallenged = (res: Awaited<ReturnType<typeof audit>>, what: string) => {
    expect([what, res.status, res.body.error]).toEqual([what, 401, 'invalid_client']);
    expect(res.headers.get('www-authenticate'), what).toMatch(/^Basic realm="[^"]+"$/);
    expect(res.headers.get('cache-control'), what).toMatch(/no-store/);
  };

  it('a wrong client_secret_post, an unknown client, a client naming itself only, none: 401 invalid_client with the Basic challenge, as at /introspect', async () => {
    const cases: Array<[string, Record<string, string>]> = [
      ['wrong secret', { client_id: confidential.id, client_secret: 'wrong' }],
      ['unknown client', { client_id: 'cli_nobody', client_secret: 'x' }],
      ['no secret', { client_id: confidential.id }],
      ['no client', {}],
    ];
    for (const [what, body] of cases) {
      const [atAudit, atIntrospect] = await Promise.all([audit(body), postForm(`${authz.issuer}/introspect`, { token: 'x', ...body })]);
      expectChallenged(atAudit, what);
      expect([what, atAudit.status, atAudit.body, atAudit.headers.get('www-authenticate')]).toEqual([what, atIntrospect.status, atIntrospect.body, atIntrospect.headers.get('www-authenticate')]);
    }
  });

  it('a replayed client_assertion: 401 invalid_client with the Basic challenge; its first use reaches the record (the control)', async () => {
    const assertion = await clientAssertion(authz.agent.privateJwk, authz.agent.clientId, authz.issuer);
    const body = { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion };
    const first = await audit(body);
    // Authenticated: the record itself ({}) is what is refused.
    expect([first.status, first.body.error]).toEqual([400, 'invalid_request']);
    expectChallenged(await audit(body), 'replayed assertion');
  });
});
