// Where the CLI's stored tokens are revoked: at the authorization server that
// issued them (RFC 7009 §2), never at the one the cached discovery names for
// their resource now. Real authorization servers and CalendarAgent on
// ephemeral loopback ports; a fake agent on the agent's port names a fake
// authorization server that records what it is sent.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TokenCache } from '../../src/client/cache.js';
import { logout } from '../../src/client/credentials.js';
import { retireReplacedSignIns } from '../../src/client/revocation.js';
import { findSlot, login, type SessionOptions } from '../../src/client/session.js';
import { listenAgentFor, listenFreeCalendar, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';

let authz: TestAuthz;
let agent: FastifyInstance | undefined;
let calendar: Server;
let others: Array<{ close(): Promise<unknown> }>;
let home: string;
let calendarPort: number;

beforeEach(async () => {
  others = [];
  calendar = await listenFreeCalendar();
  calendarPort = (calendar.address() as { port: number }).port;
  authz = await startTestAuthz({ calendarPort });
  agent = await listenAgentFor(authz, Date.now);
  home = await mkdtemp(join(tmpdir(), 'delegate-revocation-'));
  await authz.shareDataDirectory(home);
});

afterEach(async () => {
  await agent?.close();
  for (const other of others.reverse()) await other.close();
  await authz.close();
  await new Promise((resolve) => calendar.close(resolve));
  await rm(home, { recursive: true, force: true });
});

const files = () => ({ tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock'), ownerKey: join(home, 'owner-key.json') });

function options(overrides: Partial<SessionOptions> = {}): SessionOptions {
  return {
    agentUrl: authz.agentUrl,
    files: files(),
    now: Date.now,
    loginTimeoutMs: 10_000,
    presentLoginUrl: async (url) => void approve(url),
    ...overrides,
  };
}

async function approve(link: string): Promise<void> {
  const browser = new Browser();
  const consent = await browser.follow(link);
  if (consent.location !== null) return void (await browser.get(consent.location));
  const answer = await browser.post(new URL('/consent', consent.url).href, { ...parseConsentForm(consent.html), decision: 'approve' });
  await browser.get(new URL(answer.location!, consent.url).href);
}

interface CacheFile {
  discovery: Record<string, { authorizationServerUrl: string }>;
  clients: Record<string, { client_id: string }>;
  tokens: Record<string, Record<string, { access_token: string; refresh_token: string }>>;
}

async function cacheFile(): Promise<CacheFile> {
  return JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8')) as CacheFile;
}

/** What the issuer answers a refresh with this token: 200 while it lives, invalid_grant once revoked. */
async function refreshAt(issuer: string, clientId: string, refreshToken: string): Promise<{ status: number; error?: string }> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, resource: authz.agentUrl }),
  });
  const body = (await res.json()) as { error?: string };
  return { status: res.status, ...(body.error ? { error: body.error } : {}) };
}

/** On the agent's port, an agent whose 401 names a fake authorization server; that server records every request. */
async function fakeAgentAndServer(): Promise<{ requests: string[]; issuer: string }> {
  const requests: string[] = [];
  const read = (req: IncomingMessage) => new Promise<string>((resolve) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => resolve(body));
  });
  const fakeAs = createServer(async (req, res) => {
    const body = await read(req);
    requests.push(`${req.method} ${new URL(req.url!, 'http://x').pathname} ${body}`);
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (req.url!.startsWith('/.well-known/oauth-authorization-server')) {
      return json(200, { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, registration_endpoint: `${issuer}/register`, revocation_endpoint: `${issuer}/revoke`, response_types_supported: ['code'], code_challenge_methods_supported: ['S256'] });
    }
    if (req.url === '/register') return json(201, { ...JSON.parse(body), client_id: 'fake-client' });
    if (req.url === '/revoke') return json(200, {});
    json(404, {});
  });
  await new Promise<void>((resolve) => fakeAs.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(fakeAs.address() as { port: number }).port}`;
  const agentPort = Number(new URL(authz.agentUrl).port);
  const fakeAgent = createServer((req, res) => {
    if (req.url!.startsWith('/.well-known/oauth-protected-resource')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ resource: authz.agentUrl, authorization_servers: [issuer] }));
    }
    res.writeHead(401, { 'www-authenticate': `Bearer resource_metadata="http://127.0.0.1:${agentPort}/.well-known/oauth-protected-resource/mcp"` });
    res.end();
  });
  await new Promise<void>((resolve) => fakeAgent.listen(agentPort, '127.0.0.1', resolve));
  others.push({ close: () => new Promise((resolve) => fakeAs.close(resolve)) }, { close: () => new Promise((resolve) => fakeAgent.close(resolve)) });
  return { requests, issuer };
}

describe('revoking stored tokens at their issuer (RFC 7009 §2)', () => {
  it('logout revokes at the issuing server after another agent on the port named another server, and sends it nothing', async () => {
    await findSlot(options(), { duration: '30m' });
    const clientId = (await cacheFile()).clients[authz.issuer]!.client_id;

    // Another program on the agent's port: its 401 names another server; the sign-in it starts is never finished.
    await agent!.close();
    agent = undefined;
    const fake = await fakeAgentAndServer();
    await expect(findSlot(options({ loginTimeoutMs: 300, presentLoginUrl: async () => undefined }), { duration: '30m' })).rejects.toMatchObject({ code: 'LOGIN_TIMEOUT' });
    const cached = await cacheFile();
    expect(cached.discovery[authz.agentUrl]!.authorizationServerUrl).toBe(fake.issuer); // the state the review reached
    // The first server's tokens stay beside it (refreshed once, when the fake agent refused them).
    const stored = cached.tokens[authz.issuer]![authz.agentUrl]!;
    expect(stored.refresh_token).toMatch(/^dlg_rt_/);

    const result = await logout({ files: files(), now: Date.now });
    expect(result.failed).toEqual([]);
    expect(result.revoked).toEqual([{ issuer: authz.issuer, resource: authz.agentUrl, delegationEnded: true, grantId: expect.any(String) }]);
    expect(fake.requests.filter((r) => r.startsWith('POST /revoke'))).toEqual([]);
    expect(fake.requests.some((r) => r.includes(stored.refresh_token) || r.includes(stored.access_token))).toBe(false);
    // What logout said is true at the issuer: the delegation has ended.
    expect(await refreshAt(authz.issuer, clientId, stored.refresh_token)).toEqual({ status: 400, error: 'invalid_grant' });
  });

  it('a sign-in at another server for the same agent revokes the tokens of the first at the first, and forgets them', async () => {
    await findSlot(options(), { duration: '30m' });
    const first = await cacheFile();
    const stored = first.tokens[authz.issuer]![authz.agentUrl]!;
    const clientId = first.clients[authz.issuer]!.client_id;

    // The agent now trusts a second authorization server (same agent URL).
    const second = await startTestAuthz({ calendarPort, agentPort: Number(new URL(authz.agentUrl).port) });
    others.push(second);
    await agent!.close();
    agent = await listenAgentFor(second, Date.now);
    await second.shareDataDirectory(home);

    const summary = await login(options());
    expect(summary.issuer).toBe(second.issuer);
    const after = await cacheFile();
    expect(Object.keys(after.tokens)).toEqual([second.issuer]);
    expect(await refreshAt(authz.issuer, clientId, stored.refresh_token)).toEqual({ status: 400, error: 'invalid_grant' });
    expect((await authz.store.listGrants()).map((g) => g.revokedAt !== null)).toEqual([true]);
  });

  it('keeps the first server’s tokens when it cannot be reached, and logout then says they were not revoked', async () => {
    await findSlot(options(), { duration: '30m' });
    const second = await startTestAuthz({ calendarPort, agentPort: Number(new URL(authz.agentUrl).port) });
    others.push(second);
    await agent!.close();
    agent = await listenAgentFor(second, Date.now);
    await second.shareDataDirectory(home);
    await authz.app.close(); // the first server is gone

    await login(options());
    expect(Object.keys((await cacheFile()).tokens).sort()).toEqual([authz.issuer, second.issuer].sort());
    const result = await logout({ files: files(), now: Date.now });
    expect(result.revoked).toEqual([expect.objectContaining({ issuer: second.issuer })]);
    expect(result.failed).toEqual([expect.objectContaining({ issuer: authz.issuer, reason: expect.stringContaining(authz.issuer) })]);
  });
});

// Found at the last stop: after CalendarAgent moved and the person signed in at its new URL, the old URL's tokens stayed
// in the cache, shown by `status` as a second delegation. The sign-in retires them (test/e2e/agent-moved.test.ts shows
// it with the built CLI) once their server says their grant ended; here, against a fake authorization server on loopback
// that records what it is sent, what it forgets, what it keeps, and how long it may take. Found in review (regress21e):
// they went when their agent's metadata did not answer as expected, which ended live delegations of other agents of the
// same server (`agents register`) on a passing 5xx, a stop or a slow machine.
describe('a sign-in retires the same agent’s sign-ins at its other URLs (retireReplacedSignIns)', () => {
  /** How the fake authorization server answers a refresh with a token named "<name>-refresh". */
  type Refresh = 'ended' | 'live' | 'hangs' | number;

  /**
   * A fake authorization server that records each revocation as "<token_type_hint> <token>" and each refresh by its
   * refresh token; `/revoke` never answers when `hangs`; a refresh is answered as `refreshes` says for its token
   * (404 when it does not say).
   */
  async function recordingIssuer(hangs = false, refreshes: Record<string, Refresh> = {}, name?: string): Promise<{ issuer: string; revoked: string[]; refreshed: string[]; origin: string }> {
    const revoked: string[] = [];
    const refreshed: string[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const json = (status: number, value: unknown) => res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(value));
        if (req.url === '/revoke') {
          revoked.push(`${form.get('token_type_hint')} ${form.get('token')}`);
          if (hangs) return;
          res.writeHead(200).end();
          return;
        }
        if (req.url === '/token' && form.get('grant_type') === 'refresh_token') {
          const token = form.get('refresh_token')!;
          refreshed.push(token);
          const answer = refreshes[token.replace(/-refresh$/, '')] ?? 404;
          if (answer === 'hangs') return;
          if (answer === 'ended') return json(400, { error: 'invalid_grant', error_description: 'the grant was revoked' });
          if (answer === 'live') return json(200, { access_token: `${token}-rotated-access`, refresh_token: `${token}-rotated`, token_type: 'Bearer', expires_in: 3600 });
          return json(answer, { error: 'temporarily_unavailable' });
        }
        if (req.url!.startsWith('/.well-known/oauth-authorization-server')) {
          return json(200, { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, revocation_endpoint: `${issuer}/revoke`, response_types_supported: ['code'] });
        }
        res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const issuer = name ?? origin;
    others.push({ close: () => new Promise((resolve) => (server.closeAllConnections(), server.close(resolve))) });
    return { issuer, revoked, refreshed, origin };
  }

  /** An agent answering its protected resource metadata (RFC 9728) for `resource`, naming `issuer`, after `delayMs`. */
  async function agentAt(issuer: string, delayMs = 0): Promise<string> {
    const server = createServer((req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ resource: url, authorization_servers: [issuer] }));
      }, delayMs);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/mcp`;
    others.push({ close: () => new Promise((resolve) => (server.closeAllConnections(), server.close(resolve))) });
    return url;
  }

  const nobodyAt = async () => `http://127.0.0.1:${await freePort()}/mcp`;
  const REMOTE = { issuer: 'https://auth.delegate.test', agentUrl: 'https://agent.delegate.test/mcp' };

  const entry = (iss: string, url: string, name: string, audience = url) => ({
    access_token: `${name}-access`,
    refresh_token: `${name}-refresh`,
    token_type: 'Bearer',
    issuer: iss,
    resource: audience,
    obtained_at: Date.now(),
    expires_at: Date.now() + 3_600_000,
  });

  /** tokens.json after a sign-in at `issuer` for `signedIn`, with earlier sign-ins kept (`name` in their tokens), and one at a deployment elsewhere. */
  async function cacheAfterSignIn(issuer: string, signedIn: string, earlier: Array<{ url: string; name: string; audience?: string }>): Promise<TokenCache> {
    const data = {
      version: 1,
      discovery: { [signedIn]: { authorizationServerUrl: issuer } },
      clients: { [issuer]: { client_id: 'the-cli', issuer }, [REMOTE.issuer]: { client_id: 'remote-cli', issuer: REMOTE.issuer } },
      tokens: {
        [issuer]: Object.fromEntries([[signedIn, entry(issuer, signedIn, 'new')], ...earlier.map((e) => [e.url, entry(issuer, e.url, e.name, e.audience)])]),
        [REMOTE.issuer]: { [REMOTE.agentUrl]: entry(REMOTE.issuer, REMOTE.agentUrl, 'remote') },
      },
    };
    await writeFile(files().tokenCache, JSON.stringify(data), { mode: 0o600 });
    return new TokenCache({ files: files(), now: Date.now });
  }

  /** Every request made, by URL: none may go to the deployment elsewhere. */
  const sent: string[] = [];
  const watchedFetch: typeof fetch = (input, init) => {
    sent.push(String(input instanceof Request ? input.url : input));
    return fetch(input, init);
  };
  const kept = async (issuer: string) => Object.keys((await cacheFile()).tokens[issuer] ?? {}).sort();

  it('forgets the tokens kept for the agent’s old URL once their server refuses their refresh with invalid_grant (the move ended their grant), without a note; a deployment elsewhere is not asked', async () => {
    sent.length = 0;
    const { issuer, revoked, refreshed } = await recordingIssuer(false, { old: 'ended' });
    const [now, old] = [await agentAt(issuer), await nobodyAt()];
    await retireReplacedSignIns(await cacheAfterSignIn(issuer, now, [{ url: old, name: 'old' }]), now, watchedFetch);
    expect(refreshed).toEqual(['old-refresh']);
    expect(revoked).toEqual([]);
    expect(await kept(issuer)).toEqual([now]);
    expect((await cacheFile() as CacheFile & { ended?: unknown }).ended).toBeUndefined();
    expect(await kept(REMOTE.issuer)).toEqual([REMOTE.agentUrl]);
    expect(sent.filter((url) => !new URL(url).hostname.startsWith('127.'))).toEqual([]);
  });

  it('keeps the sign-in of another agent of the same server that still answers at its URL, and revokes nothing', async () => {
    const { issuer, revoked } = await recordingIssuer(false, { other: 'live' });
    const [now, other] = [await agentAt(issuer), await agentAt(issuer)];
    await retireReplacedSignIns(await cacheAfterSignIn(issuer, now, [{ url: other, name: 'other' }]), now, fetch);
    expect(revoked).toEqual([]);
    expect(await kept(issuer)).toEqual([now, other].sort());
  });

  it('keeps, with the new tokens its server issued, the sign-in of another agent of the same server that is stopped (nothing listening)', async () => {
    const { issuer, revoked } = await recordingIssuer(false, { stopped: 'live' });
    const [now, stopped] = [await agentAt(issuer), await nobodyAt()];
    await retireReplacedSignIns(await cacheAfterSignIn(issuer, now, [{ url: stopped, name: 'stopped' }]), now, fetch);
    expect(revoked).toEqual([]);
    expect(await kept(issuer)).toEqual([now, stopped].sort());
    expect((await cacheFile()).tokens[issuer]![stopped]!.refresh_token).toBe('stopped-refresh-rotated');
  });

  it('keeps, unrevoked, the sign-in of another agent of the same server that answers its metadata after 3.5 s (a busy machine)', { timeout: 20_000 }, async () => {
    const { issuer, revoked } = await recordingIssuer(false, { slow: 'live' });
    const [now, slow] = [await agentAt(issuer), await agentAt(issuer, 3_500)];
    await retireReplacedSignIns(await cacheAfterSignIn(issuer, now, [{ url: slow, name: 'slow' }]), now, fetch);
    expect(revoked).toEqual([]);
    expect(await kept(issuer)).toEqual([now, slow].sort());
  });

  it.each([
    ['answers the refresh with HTTP 503', 503],
    ['answers the refresh with HTTP 502', 502],
    ['has no token endpoint (HTTP 404)', 404],
    ['never answers the refresh', 'hangs'],
  ] as const)('keeps the old URL’s tokens, unrevoked, within a few seconds, when their server %s', { timeout: 20_000 }, async (_, answer) => {
    const { issuer, revoked } = await recordingIssuer(false, { old: answer });
    const [now, old] = [await agentAt(issuer), await nobodyAt()];
    const started = Date.now();
    await retireReplacedSignIns(await cacheAfterSignIn(issuer, now, [{ url: old, name: 'old' }]), now, fetch);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(revoked).toEqual([]);
    expect(await kept(issuer)).toEqual([now, old].sort());
  });

  it.each([503, 502, 404])('keeps another agent’s sign-in at a deployment elsewhere, unrevoked, when it answers its metadata with HTTP %i and the person signs in at a second agent of its server', async (status) => {
    // Two agents of one authorization server elsewhere; their names are routed to fake servers on loopback, nothing else is sent.
    const { issuer, revoked, origin } = await recordingIssuer(false, { b: 'live' }, 'https://as.delegate.test');
    const failing = createServer((req, res) => res.writeHead(status, { 'content-type': 'text/html' }).end('<html>Bad gateway</html>'));
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    others.push({ close: () => new Promise((resolve) => failing.close(resolve)) });
    const routes: Record<string, string> = { 'as.delegate.test': origin, 'b.delegate.test': `http://127.0.0.1:${(failing.address() as { port: number }).port}` };
    const routed: typeof fetch = (input, init) => {
      const url = new URL(String(input instanceof Request ? input.url : input));
      const to = routes[url.hostname];
      if (!to) throw new Error(`nothing may be sent to ${url.href}`);
      return fetch(`${to}${url.pathname}${url.search}`, init);
    };
    const [a, b] = ['https://a.delegate.test/mcp', 'https://b.delegate.test/mcp'];
    await retireReplacedSignIns(await cacheAfterSignIn(issuer, a, [{ url: b, name: 'b' }]), a, routed);
    expect(revoked).toEqual([]);
    expect(await kept(issuer)).toEqual([a, b].sort());
  });

  it('only forgets, never revokes nor refreshes, tokens of the resource the sign-in was for (of the grant it just got) kept under another URL', async () => {
    const { issuer, revoked, refreshed } = await recordingIssuer(false, { alias: 'live' });
    const [now, alias] = [await agentAt(issuer), await nobodyAt()];
    await retireReplacedSignIns(await cacheAfterSignIn(issuer, now, [{ url: alias, name: 'alias', audience: now }]), now, fetch);
    expect(revoked).toEqual([]);
    expect(refreshed).toEqual([]);
    expect(await kept(issuer)).toEqual([now]);
  });

  it.each([
    ['forgets', 'the key that signed them', true],
    ['keeps', 'other keys only', false],
  ] as const)('%s the old URL’s tokens when every port moved (nothing at their issuer’s port) and the new server publishes %s', async (_, __, sameKey) => {
    const signing = await generateKeyPair('ES256');
    const published = sameKey ? signing.publicKey : (await generateKeyPair('ES256')).publicKey;
    const jwks = { keys: [{ ...(await exportJWK(published)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
    const newServer = createServer((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks)));
    await new Promise<void>((resolve) => newServer.listen(0, '127.0.0.1', resolve));
    others.push({ close: () => new Promise((resolve) => newServer.close(resolve)) });
    const second = `http://127.0.0.1:${(newServer.address() as { port: number }).port}`;
    const first = `http://127.0.0.1:${await freePort()}`;
    const [now, old] = [await agentAt(second), await nobodyAt()];
    const oldAccess = await new SignJWT({ scope: 'freebusy:read' }).setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' }).setIssuer(first).setAudience(old).setExpirationTime('1h').sign(signing.privateKey);
    const data = {
      version: 1,
      discovery: { [now]: { authorizationServerUrl: second, authorizationServerMetadata: { issuer: second, token_endpoint: `${second}/token`, jwks_uri: `${second}/jwks` } } },
      clients: { [first]: { client_id: 'first-cli', issuer: first }, [second]: { client_id: 'second-cli', issuer: second } },
      tokens: { [first]: { [old]: { ...entry(first, old, 'old'), access_token: oldAccess } }, [second]: { [now]: entry(second, now, 'new') } },
    };
    await writeFile(files().tokenCache, JSON.stringify(data), { mode: 0o600 });
    await retireReplacedSignIns(new TokenCache({ files: files(), now: Date.now }), now, fetch);
    expect(await kept(first)).toEqual(sameKey ? [] : [old]);
    expect(await kept(second)).toEqual([now]);
  });

  it('gives up within a few seconds, keeping them, on the tokens of another server for the same agent when it accepts the revocation and never answers', { timeout: 20_000 }, async () => {
    const [{ issuer: first, revoked }, { issuer: second }] = [await recordingIssuer(true), await recordingIssuer()];
    const now = await agentAt(second);
    const data = {
      version: 1,
      discovery: { [now]: { authorizationServerUrl: second } },
      clients: { [first]: { client_id: 'first-cli', issuer: first }, [second]: { client_id: 'second-cli', issuer: second } },
      tokens: { [first]: { [now]: entry(first, now, 'first') }, [second]: { [now]: entry(second, now, 'second') } },
    };
    await writeFile(files().tokenCache, JSON.stringify(data), { mode: 0o600 });
    const started = Date.now();
    await retireReplacedSignIns(new TokenCache({ files: files(), now: Date.now }), now, fetch);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(revoked).toEqual(['refresh_token first-refresh']);
    expect(await kept(first)).toEqual([now]);
  });
});
