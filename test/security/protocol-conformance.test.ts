// Three protocol corrections from the oauth-core review, each tried from
// outside against the servers built as the CLI builds them, with the error
// code on the wire and the database unchanged:
// - /introspect takes no `none` client authentication (RFC 7662 §2.1; the
//   metadata leaves `none` out), and answers a public client exactly as it
//   answers an unknown client_id (no oracle of which client ids exist);
// - /authorize tells `request_uri` (request_uri_not_supported) from `request`
//   (request_not_supported), OpenID Connect Core §3.1.2.6, still redirecting
//   only where an error may go back;
// - a method an endpoint does not take is 405 with Allow (RFC 9110 §15.5.6)
//   and an RFC error body, on all three servers; an unknown path stays 404.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeUrl, pkcePair, postForm, postJson, registerPublicClient } from '../support/oauth-flow.js';
import { rawRequest } from '../agent/http.js';
import { JWT_BEARER, REDIRECT, agentAssertion, routesOf, startStack, stateChangedBy, userTokens, type Stack, type UserTokens } from './stack.js';

let stack: Stack;
let user: UserTokens;
let confidential: { id: string; secret: string };

beforeAll(async () => {
  stack = await startStack();
  user = await userTokens(stack);
  const res = await postJson(`${stack.issuer}/register`, {
    client_name: 'confidential',
    redirect_uris: [REDIRECT],
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  confidential = { id: String(res.body.client_id), secret: String(res.body.client_secret) };
});
afterAll(async () => stack?.close());

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('introspection requires client authentication (RFC 7662 §2.1). Found in review (oauth-core)', () => {
  it('the metadata leaves none out of the introspection methods', async () => {
    const metadata = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, string[]>;
    expect(metadata.introspection_endpoint_auth_methods_supported).not.toContain('none');
  });

  // 401 with the Basic challenge, as RFC 7662 §2.3 answers a caller without valid credentials (found in review, s25rfc: 400).
  it('refuses a public client naming itself, with its own access token: 401 invalid_client, the same answer as for an unknown client_id; nothing changed', async () => {
    const asks: Array<[string, Record<string, string>]> = [
      ['the public client that holds the token', { token: user.accessToken, client_id: user.clientId }],
      ['an unknown client_id', { token: user.accessToken, client_id: 'cli_nobody' }],
      ['a confidential client without its secret', { token: user.accessToken, client_id: confidential.id }],
      ['no client at all', { token: user.accessToken }],
    ];
    const { result: answers, changed } = await stateChangedBy(stack, () => Promise.all(asks.map(([, params]) => postForm(`${stack.issuer}/introspect`, params))));
    expect(changed).toEqual([]);
    for (const [i, [name]] of asks.entries()) {
      const res = answers[i]!;
      expect([name, res.status, res.body], name).toEqual([name, 401, { error: 'invalid_client', error_description: 'This endpoint requires client authentication.' }]);
      expect(res.headers.get('www-authenticate'), name).toMatch(/^Basic realm="[^"]+"$/);
      expect(res.headers.get('cache-control'), name).toBe('no-store');
      expect(res.body.active, name).toBeUndefined();
    }
  });

  it('a public client that also sent an Authorization header (another scheme) gets 401 with the Basic challenge, as at every endpoint', async () => {
    const { result: res, changed } = await stateChangedBy(stack, () =>
      postForm(`${stack.issuer}/introspect`, { token: user.accessToken, client_id: user.clientId }, { authorization: 'Bearer x' }),
    );
    expect(changed).toEqual([]);
    expect([res.status, res.body.error]).toEqual([401, 'invalid_client']);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm="[^"]+"$/);
  });

  it('controls: the agent (private_key_jwt) still learns about its tokens; a confidential client (Basic) is answered active: false', async () => {
    const agent = await postForm(`${stack.issuer}/introspect`, { token: user.accessToken, client_assertion_type: JWT_BEARER, client_assertion: await agentAssertion(stack) });
    expect([agent.status, agent.body.active, agent.body.client_id]).toEqual([200, true, user.clientId]);
    const { result: secret, changed } = await stateChangedBy(stack, () =>
      postForm(`${stack.issuer}/introspect`, { token: user.accessToken }, { authorization: basic(confidential.id, confidential.secret) }),
    );
    expect(changed).toEqual([]);
    expect([secret.status, secret.body]).toEqual([200, { active: false }]);
  });
});

// Noticed in fixing the above: /audit took `none` too, then told a public client `unauthorized_client` and an
// unknown client_id `invalid_client`: the same oracle of which client ids exist.
describe('the audit endpoint requires client authentication, and answers every client without credentials alike', () => {
  it('a public client, an unknown client_id and no client at all get the same 401 invalid_client with the Basic challenge (as at /introspect); nothing is appended', async () => {
    const record = JSON.stringify({ event: 'tool_call', token: user.accessToken, tool: 'find_slot', outcome: 'ok' });
    const asks: Array<[string, Record<string, string>]> = [
      ['a public client', { record, client_id: user.clientId }],
      ['an unknown client_id', { record, client_id: 'cli_nobody' }],
      ['no client at all', { record }],
    ];
    const { result: answers, changed } = await stateChangedBy(stack, () => Promise.all(asks.map(([, params]) => postForm(`${stack.issuer}/audit`, params))));
    expect(changed).toEqual([]);
    for (const [i, [name]] of asks.entries()) {
      const res = answers[i]!;
      expect([name, res.status, res.body], name).toEqual([name, 401, { error: 'invalid_client', error_description: 'This endpoint requires client authentication.' }]);
      expect(res.headers.get('www-authenticate'), name).toBe('Basic realm="delegate"');
    }
  });
});

describe('request and request_uri at /authorize have their own error codes (OpenID Connect Core §3.1.2.6). Found in review (oauth-core)', () => {
  const request = (clientId: string, redirectUri: string, extra: Record<string, string>) =>
    authorizeUrl(stack.issuer, { clientId, redirectUri, resource: stack.agentUrl, scope: 'slots:find', state: 'S1', challenge: pkcePair().challenge, extra });

  it.each([
    ['request_uri', { request_uri: 'urn:ietf:params:oauth:request_uri:abc' }, 'request_uri_not_supported'],
    ['request', { request: 'eyJhbGciOiJub25lIn0.e30.' }, 'request_not_supported'],
  ])('%s: redirected to the loopback client with its own code, state and iss; nothing stored', async (_name, extra, code) => {
    const clientId = await registerPublicClient(stack.issuer, [REDIRECT]);
    const { result: res, changed } = await stateChangedBy(stack, () => fetch(request(clientId, REDIRECT, extra), { redirect: 'manual' }));
    expect(changed).toEqual([]);
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
    expect(Object.fromEntries(location.searchParams)).toMatchObject({ error: code, state: 'S1', iss: stack.issuer });
    expect(location.searchParams.has('code')).toBe(false);
  });

  it('request_uri for an https client nobody approved: a 400 page naming the code, never a redirect (RFC 9700 §4.11.2)', async () => {
    const clientId = await registerPublicClient(stack.issuer, ['https://app.example/cb']);
    const { result: res, changed } = await stateChangedBy(stack, () => fetch(request(clientId, 'https://app.example/cb', { request_uri: 'urn:ietf:params:oauth:request_uri:abc' }), { redirect: 'manual' }));
    expect(changed).toEqual([]);
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.text()).toContain('(request_uri_not_supported)');
  });
});

describe('a method an endpoint does not take is 405 with Allow (RFC 9110 §15.5.6). Found in review (oauth-core)', () => {
  const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];
  /** Routes that only refuse their method with a 405 of their own (/mcp's GET and DELETE, MCP transports spec): not in Allow. */
  const REFUSING = new Set(['agent GET /mcp', 'agent DELETE /mcp']);

  it('on every path of the three servers, every method it has no route for: 405, Allow naming its methods, invalid_request, no-store; nothing changed', async () => {
    const tried: string[] = [];
    const { changed } = await stateChangedBy(stack, async () => {
      for (const server of ['auth', 'calendar', 'agent'] as const) {
        const byPath = new Map<string, Set<string>>();
        for (const route of routesOf(stack.apps[server])) {
          const [method, path] = route.split(' ') as [string, string];
          if (!byPath.has(path)) byPath.set(path, new Set());
          if (!REFUSING.has(`${server} ${route}`)) byPath.get(path)!.add(method);
        }
        for (const [path, methods] of byPath) {
          for (const method of METHODS.filter((m) => !methods.has(m) && !REFUSING.has(`${server} ${m} ${path}`))) {
            const where = `${server} ${method} ${path}`;
            tried.push(where);
            const res = await rawRequest({ port: stack.ports[server], method, path, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': '7' }, body: 'token=x' });
            expect([where, res.status], res.text).toEqual([where, 405]);
            const allow = String(res.headers.allow).split(', ');
            expect(allow.filter((m) => m !== 'HEAD' && m !== 'OPTIONS').sort(), where).toEqual([...methods].sort());
            expect(res.json(), where).toEqual({ error: 'invalid_request', error_description: `Use ${[...methods].sort().join(' or ')}.` });
            expect(res.headers['cache-control'], where).toBe('no-store');
          }
        }
      }
    });
    expect(changed).toEqual([]);
    // The endpoints the review named, and the other machine endpoints of the AS, were among them.
    for (const where of ['GET /token', 'PUT /token', 'DELETE /token', 'GET /revoke', 'GET /introspect', 'GET /register', 'GET /device_authorization', 'GET /audit']) expect(tried).toContain(`auth ${where}`);
    expect(tried).toEqual(expect.arrayContaining(['calendar POST /freebusy', 'agent PUT /mcp', 'agent PATCH /mcp']));
  });

  it('GET /token with a live refresh token in the query: 405 Allow: OPTIONS, POST, nothing spent (the refresh token still works)', async () => {
    const own = await userTokens(stack);
    const query = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: own.refreshToken, client_id: own.clientId });
    const { result: res, changed } = await stateChangedBy(stack, () => fetch(`${stack.issuer}/token?${query}`));
    expect(changed).toEqual([]);
    expect([res.status, res.headers.get('allow'), res.headers.get('cache-control')]).toEqual([405, 'OPTIONS, POST', 'no-store']);
    expect(await res.json()).toEqual({ error: 'invalid_request', error_description: 'Use POST.' });
    const refreshed = await postForm(`${stack.issuer}/token`, Object.fromEntries(query));
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
  });

  // Noticed in that fix: the CORS preflight of every endpoint offered GET, POST and OPTIONS alike.
  it('a CORS preflight names only the methods its endpoint takes', async () => {
    const expected: Record<string, string> = {
      '/token': 'POST, OPTIONS',
      '/register': 'POST, OPTIONS',
      '/revoke': 'POST, OPTIONS',
      '/introspect': 'POST, OPTIONS',
      '/.well-known/oauth-authorization-server': 'GET, OPTIONS',
      '/.well-known/jwks.json': 'GET, OPTIONS',
    };
    for (const [path, methods] of Object.entries(expected)) {
      const res = await fetch(`${stack.issuer}${path}`, { method: 'OPTIONS', headers: { Origin: 'https://client.example', 'Access-Control-Request-Method': 'POST' } });
      expect([path, res.status, res.headers.get('access-control-allow-methods'), res.headers.get('access-control-allow-origin')]).toEqual([path, 204, methods, '*']);
    }
  });

  it('unknown paths (and other spellings of an endpoint) stay 404 not_found; /mcp keeps its own 405 for GET and DELETE', async () => {
    for (const path of ['/nope', '/TOKEN', '/token/', '//token', '/authorize/x']) {
      const res = await fetch(`${stack.issuer}${path}`);
      expect([path, res.status, res.headers.get('allow')]).toEqual([path, 404, null]);
      expect(await res.json()).toMatchObject({ error: 'not_found' });
    }
    for (const method of ['GET', 'DELETE']) {
      const res = await rawRequest({ port: stack.ports.agent, method, path: '/mcp', headers: { Authorization: `Bearer ${user.accessToken}`, Accept: 'text/event-stream' } });
      expect([method, res.status, res.headers.allow]).toEqual([method, 405, 'POST']);
      expect(res.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32000 } });
    }
  });
});
