// The per-address limits behind the README's https reverse proxy, which runs on loopback and appends the client's
// address to X-Forwarded-For (nginx's $proxy_add_x_forwarded_for). Found in review (regress20d): every request came
// from the proxy's 127.0.0.1, so one client on the Internet spent the registration and new-client budgets (and the
// sign-in failures) of everyone. Requests are injected (nothing leaves the process): the connection's address is the
// proxy's, the header names the clients, documentation addresses (RFC 5737) standing for hosts elsewhere.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';

const PROXY = '127.0.0.1';
const [ATTACKER, OTHER, FORGED] = ['203.0.113.5', '198.51.100.7', '198.51.100.9'];
const limits = [{ limit: 2, windowMs: 60_000 }];
const client = { client_name: 'app', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] };

/** POST /register arriving from `peer`, with the X-Forwarded-For given (none when undefined). */
async function register(authz: TestAuthz, peer: string, forwardedFor?: string): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(forwardedFor !== undefined ? { 'x-forwarded-for': forwardedFor } : {}) };
  return (await authz.app.inject({ method: 'POST', url: '/register', remoteAddress: peer, headers, payload: JSON.stringify(client) })).statusCode;
}

/** A failed password sign-in (an unknown name) arriving from `peer` with `forwardedFor`: its status. */
async function failedSignIn(authz: TestAuthz, peer: string, forwardedFor: string, name: string): Promise<number> {
  const form = await authz.app.inject({ method: 'GET', url: '/login', remoteAddress: peer, headers: { 'x-forwarded-for': forwardedFor } });
  const cookie = String(form.headers['set-cookie']).split(';')[0]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(form.body)![1]!;
  const payload = new URLSearchParams({ csrf, next: '/grants', username: name, password: 'wrong' }).toString();
  const headers = { 'content-type': 'application/x-www-form-urlencoded', cookie, 'x-forwarded-for': forwardedFor };
  return (await authz.app.inject({ method: 'POST', url: '/login', remoteAddress: peer, headers, payload })).statusCode;
}

describe('behind a reverse proxy on loopback that appends X-Forwarded-For (trustProxy: loopback)', () => {
  let authz: TestAuthz;
  beforeAll(async () => {
    authz = await startTestAuthz({ registrationLimits: limits, trustProxy: ['loopback'] });
  });
  afterAll(async () => authz.close());

  it('gives each client its own registration budget: one spending its own leaves another’s whole', async () => {
    expect(await register(authz, PROXY, ATTACKER)).toBe(201);
    expect(await register(authz, PROXY, ATTACKER)).toBe(201);
    expect(await register(authz, PROXY, ATTACKER)).toBe(429);
    // Before: 429, the attacker having spent the proxy's (everyone's) budget.
    expect(await register(authz, PROXY, OTHER)).toBe(201);
  });

  it('counts the rightmost address the proxy appended: a client naming another address of its own is still itself', async () => {
    // The attacker sends X-Forwarded-For: 198.51.100.9; the proxy appends the attacker's address after it.
    expect(await register(authz, PROXY, `${FORGED}, ${ATTACKER}`)).toBe(429);
    expect(await register(authz, PROXY, `${FORGED},${PROXY}, ${ATTACKER}`)).toBe(429);
    // And the address it named has its budget untouched.
    expect(await register(authz, PROXY, FORGED)).toBe(201);
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    // The attacker reaching the server directly (not through the proxy) and naming another address.
    expect(await register(authz, ATTACKER, OTHER)).toBe(429);
  });

  it('counts failed sign-ins per client: one client locked out for guessing leaves another free to sign in, and the audit names the client', async () => {
    for (let i = 0; i < 20; i++) expect(await failedSignIn(authz, PROXY, ATTACKER, `nobody-${i % 4}-${i}`)).toBe(400);
    expect(await failedSignIn(authz, PROXY, ATTACKER, 'nobody-else')).toBe(429);
    expect(await failedSignIn(authz, PROXY, `${OTHER}, ${ATTACKER}`, 'nobody-else')).toBe(429);
    // Before: 429 for everyone behind the proxy, the owner too.
    expect(await failedSignIn(authz, PROXY, OTHER, 'nobody-else')).toBe(400);
    const sources = (await authz.store.listAudit()).filter((r) => r.event === 'sign_in_failed').map((r) => (r.detail as { source?: string }).source);
    expect(new Set(sources)).toEqual(new Set([ATTACKER, OTHER]));
  });

  it('counts an address written with a port or in brackets as the address, and whatever is no address as one source', async () => {
    // Found in review (regress20f): some proxies append `address:port`, and req.ip is then that text; each port was a
    // source of its own (25 failed sign-ins, no 429), and so was each junk entry at /register.
    const withPort = '192.0.2.44';
    for (let i = 0; i < 20; i++) expect(await failedSignIn(authz, PROXY, `${withPort}:${40001 + i}`, `someone-${i}`)).toBe(400);
    expect(await failedSignIn(authz, PROXY, `${withPort}:40099`, 'someone-else')).toBe(429);
    expect(await failedSignIn(authz, PROXY, withPort, 'someone-else')).toBe(429);
    expect(await register(authz, PROXY, '[2001:db8:5::1]:443')).toBe(201);
    expect(await register(authz, PROXY, '2001:db8:5::2')).toBe(201);
    expect(await register(authz, PROXY, '[2001:db8:5::3]')).toBe(429);
    expect(await register(authz, PROXY, 'garbage-1')).toBe(201);
    expect(await register(authz, PROXY, 'unknown')).toBe(201);
    expect(await register(authz, PROXY, 'garbage-2')).toBe(429);
  });

  it('takes nothing from X-Forwarded-Host or X-Forwarded-Proto: the Host check and the published URLs stand', async () => {
    const forwarded = { 'x-forwarded-for': OTHER, 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' };
    const metadata = await authz.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server', remoteAddress: PROXY, headers: forwarded });
    expect(metadata.statusCode).toBe(200);
    expect(metadata.json()).toMatchObject({ issuer: authz.issuer, token_endpoint: `${authz.issuer}/token` });
    const foreign = await authz.app.inject({
      method: 'GET',
      url: '/.well-known/oauth-authorization-server',
      remoteAddress: PROXY,
      headers: { ...forwarded, host: 'evil.example', 'x-forwarded-host': new URL(authz.issuer).host },
    });
    expect(foreign.statusCode).toBe(421);
  });
});

describe('listening on loopback http with no proxy (trustProxy unset, the default)', () => {
  let authz: TestAuthz;
  beforeAll(async () => {
    authz = await startTestAuthz({ registrationLimits: limits });
  });
  afterAll(async () => authz.close());

  it('ignores X-Forwarded-For: a local process cannot name other addresses to escape its limit', async () => {
    expect(await register(authz, '127.0.0.1', ATTACKER)).toBe(201);
    expect(await register(authz, '127.0.0.2', OTHER)).toBe(201);
    expect(await register(authz, '127.0.0.1', FORGED)).toBe(429);
    expect(await register(authz, '127.0.0.3')).toBe(429);
  });
});
