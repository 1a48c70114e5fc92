// The client session against the real authorization server and CalendarAgent
// (in this process, on ephemeral ports), with a stand-in calendar backend
// that is always free: discovery from the agent's 401, registration, the
// owner's sign-in link, consent, the loopback callback, the cached fast
// path, refresh of an expired token and of a refused one, and a corrupt cache.
import type { Server } from 'node:http';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findSlot, login, type SessionOptions } from '../../src/client/session.js';
import { listenAgentFor, listenFreeCalendar, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, parseConsentForm, postJson } from '../support/oauth-flow.js';
import { REGISTRATION_LIMITS } from '../../src/authz/register.js';
import { errorText, exitCodeFor } from '../../src/cli/errors.js';

let authz: TestAuthz;
let agent: FastifyInstance;
let calendar: Server;
let home: string;
let requests: string[];
/** One clock for the servers and the client, moved by hand. */
let clock: number;
const now = () => clock;

beforeEach(async () => {
  requests = [];
  clock = Date.now();
  calendar = await listenFreeCalendar();
  const calendarPort = (calendar.address() as { port: number }).port;
  authz = await startTestAuthz({ calendarPort, now });
  agent = await listenAgentFor(authz, now);
  home = await mkdtemp(join(tmpdir(), 'delegate-session-'));
  // The CLI and the AS share the owner's key through the data directory.
  await authz.shareDataDirectory(home);
});

afterEach(async () => {
  await agent.close();
  await authz.close();
  await new Promise((resolve) => calendar.close(resolve));
  await rm(home, { recursive: true, force: true });
});

/** Session options whose "browser" follows the link, approves, and lands on the loopback callback. */
function options(overrides: Partial<SessionOptions> & { decision?: 'approve' | 'deny' } = {}): SessionOptions & { shown: string[]; startedAt?: string } {
  const shown: string[] = [];
  const { decision = 'approve', ...rest } = overrides;
  const result: SessionOptions & { shown: string[]; startedAt?: string } = {
    agentUrl: authz.agentUrl,
    files: { tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock'), ownerKey: join(home, 'owner-key.json') },
    now,
    loginTimeoutMs: 10_000,
    presentLoginUrl: async (url) => {
      shown.push(url);
      void (async () => {
        if (new URL(url).pathname === '/start') result.startedAt = (await fetch(url, { redirect: 'manual' })).headers.get('location') ?? undefined;
        await playBrowser(url, decision);
      })();
    },
    fetchFn: recordingFetch,
    shown,
    ...rest,
  };
  return result;
}

/** What the client sends, as "POST /token" for the AS and "agent POST /mcp bearer|none" for the agent. */
const recordingFetch: typeof fetch = async (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const method = init?.method ?? 'GET';
  if (url.origin === new URL(authz.agentUrl).origin) {
    const auth = new Headers(init?.headers).get('authorization');
    requests.push(`agent ${method} ${url.pathname} ${auth ? 'bearer' : 'none'}`);
  } else {
    requests.push(`${method} ${url.pathname}`);
  }
  return fetch(input, init);
};

async function playBrowser(link: string, decision: 'approve' | 'deny'): Promise<void> {
  const browser = new Browser();
  const consent = await browser.follow(link);
  if (consent.location !== null) {
    // Granted before: no consent page, straight back to the client.
    await browser.get(consent.location);
    return;
  }
  const form = parseConsentForm(consent.html);
  const answer = await browser.post(new URL('/consent', consent.url).href, { ...form, decision });
  await browser.get(new URL(answer.location!, consent.url).href);
}

/** The person approves in a browser that cannot reach this computer: returns the address it was sent to, unvisited. */
async function approveWithoutReturning(link: string): Promise<string> {
  const browser = new Browser();
  const consent = await browser.follow(link);
  if (consent.location !== null) return consent.location;
  const answer = await browser.post(new URL('/consent', consent.url).href, { ...parseConsentForm(consent.html), decision: 'approve' });
  return new URL(answer.location!, consent.url).href;
}

async function cacheFile(): Promise<{ tokens: Record<string, Record<string, { access_token: string; refresh_token: string; expires_at: number }>> }> {
  return JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8'));
}

/** The client id the token cache holds (one issuer). */
async function cachedClientId(): Promise<string> {
  return Object.values((JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8')) as { clients: Record<string, { client_id: string }> }).clients)[0]!.client_id;
}

/** A login after the AS forgot `oldClient`: one sign-in, the cached client found unknown, a new one registered and cached. */
async function expectLoginRegistersAnew(oldClient: string): Promise<void> {
  requests = [];
  const again = options({ loginTimeoutMs: 3_000 });
  const summary = await login(again);
  expect(summary.issuer).toBe(authz.issuer);
  expect(again.shown).toHaveLength(1);
  expect(requests.filter((r) => !r.startsWith('agent'))).toEqual([
    'GET /.well-known/oauth-authorization-server',
    'POST /token', // is the cached client known? invalid_client: no
    'POST /register',
    'GET /authorize', // refused at once (a scope the agent does not offer, say)? no: the link is given
    'POST /token', // the code
  ]);
  expect(await cachedClientId()).not.toBe(oldClient);
}

describe('client session', () => {
  it('signs in through the owner link on first use, then uses the cache without asking', async () => {
    const first = options();
    const result = await findSlot(first, { duration: '30m' });
    expect(result.found).toBe(true);
    expect(Date.parse(result.end!) - Date.parse(result.start!)).toBe(30 * 60_000);
    expect(first.shown).toHaveLength(1);
    // The printed link holds no secret: the CLI's listener sends the browser on to the owner's link.
    expect(first.shown[0]).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/start$/);
    expect(first.startedAt).toMatch(new RegExp(`^${authz.issuer}/login/owner\\?assertion=`));
    expect(requests.slice(0, 4)).toEqual([
      'agent POST /mcp none', // the 401 that starts discovery
      'agent GET /.well-known/oauth-protected-resource/mcp none',
      'GET /.well-known/oauth-authorization-server',
      'POST /register',
    ]);

    requests = [];
    const second = options();
    await findSlot(second, { duration: '30m' });
    expect(second.shown).toEqual([]);
    expect(requests.filter((r) => !r.startsWith('agent'))).toEqual([]); // no discovery, no token request
    expect(requests.some((r) => r.includes('none'))).toBe(false); // every agent request carried the token
  });

  it('refreshes an expired token without the user and without a wasted 401', async () => {
    await findSlot(options(), { duration: '30m' });
    const before = Object.values((await cacheFile()).tokens)[0]!;
    const oldRefresh = Object.values(before)[0]!.refresh_token;

    requests = [];
    clock += 11 * 60_000; // past the access token's 10 minutes, for the servers too
    const later = options();
    await findSlot(later, { duration: '30m' });
    expect(later.shown).toEqual([]);
    expect(requests[0]).toBe('POST /token');
    expect(requests.filter((r) => r === 'POST /token')).toHaveLength(1);
    const after = Object.values(Object.values((await cacheFile()).tokens)[0]!)[0]!;
    expect(after.refresh_token).not.toBe(oldRefresh); // rotated
    expect(after.expires_at).toBeGreaterThan(clock);
  });

  it('refreshes once when the agent refuses a token that looks valid', async () => {
    await findSlot(options(), { duration: '30m' });
    const file = await cacheFile();
    const entry = Object.values(Object.values(file.tokens)[0]!)[0]!;
    entry.access_token = `${entry.access_token.slice(0, -4)}AAAA`; // bad signature
    await writeFile(join(home, 'tokens.json'), JSON.stringify(file), { mode: 0o600 });

    const again = options();
    await findSlot(again, { duration: '30m' });
    expect(again.shown).toEqual([]);
  });

  it('asks beforeRefresh about the authorization server before a refresh token is sent (expired, or refused by the agent), never for a token the agent takes', async () => {
    await findSlot(options(), { duration: '30m' });
    const asked: string[] = [];
    const beforeRefresh = async (issuer: string) => void asked.push(`${issuer} after ${requests.length} requests`);
    requests = [];
    await findSlot(options({ beforeRefresh }), { duration: '30m' });
    expect(asked).toEqual([]); // the fast path: no look, no extra round trip

    clock += 11 * 60_000;
    requests = [];
    await findSlot(options({ beforeRefresh }), { duration: '30m' });
    expect(asked).toEqual([`${authz.issuer} after 0 requests`]);
    expect(requests[0]).toBe('POST /token');

    const file = await cacheFile();
    const entry = Object.values(Object.values(file.tokens)[0]!)[0]!;
    entry.access_token = `${entry.access_token.slice(0, -4)}AAAA`; // refused by the agent: the retry would refresh
    await writeFile(join(home, 'tokens.json'), JSON.stringify(file), { mode: 0o600 });
    asked.length = 0;
    requests = [];
    await findSlot(options({ beforeRefresh }), { duration: '30m' });
    expect(asked).toEqual([`${authz.issuer} after 1 requests`]); // after the agent's 401, before POST /token
  });

  it('a refusal from beforeRefresh (the servers of another data directory, regress21e) stops the run: no refresh token sent, the cache unchanged', async () => {
    await findSlot(options(), { duration: '30m' });
    const before = await readFile(join(home, 'tokens.json'));
    clock += 11 * 60_000;
    requests = [];
    const refusal = new Error('another data directory');
    const later = options({ beforeRefresh: async () => Promise.reject(refusal) });
    await expect(findSlot(later, { duration: '30m' })).rejects.toBe(refusal);
    expect(requests).toEqual([]);
    expect(later.shown).toEqual([]);
    expect((await readFile(join(home, 'tokens.json'))).equals(before)).toBe(true);
  });

  it('signs in again when the refresh token is dead', async () => {
    await findSlot(options(), { duration: '30m' });
    const file = await cacheFile();
    const entry = Object.values(Object.values(file.tokens)[0]!)[0]!;
    entry.refresh_token = 'dlg_rt_not-a-real-one';
    entry.expires_at = 0;
    await writeFile(join(home, 'tokens.json'), JSON.stringify(file), { mode: 0o600 });

    const again = options();
    await findSlot(again, { duration: '30m' });
    expect(again.shown).toHaveLength(1);
  });

  it('a token cache whose lock cannot be made is said to be that (CACHE_IO, naming the lock file), not an unreachable server; nothing is sent to the AS', async () => {
    await findSlot(options(), { duration: '30m' });
    clock += 11 * 60_000; // the next use must refresh, under the lock
    await writeFile(join(home, 'not-a-directory'), '');
    const tokenLock = join(home, 'not-a-directory', 'tokens.lock');
    const quiet = options({ files: { tokenCache: join(home, 'tokens.json'), tokenLock, ownerKey: join(home, 'owner-key.json') } });
    delete quiet.presentLoginUrl;
    requests = [];
    const error = await findSlot(quiet, { duration: '30m' }).then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: 'CACHE_IO' });
    expect((error as Error).message).toMatch(new RegExp(`^Cannot use the token cache's lock ${tokenLock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*\\((ENOTDIR|EEXIST)\\)\\.$`));
    expect((error as Error).message).not.toMatch(/Cannot reach/);
    expect(requests.filter((r) => r.includes('/token'))).toEqual([]);
  });

  it('fails with AUTHORIZATION_REQUIRED when it may not ask the user', async () => {
    const quiet = options();
    delete quiet.presentLoginUrl;
    await expect(findSlot(quiet, { duration: '30m' })).rejects.toMatchObject({ code: 'AUTHORIZATION_REQUIRED' });
  });

  it('reports a denial as ACCESS_DENIED', async () => {
    await expect(findSlot(options({ decision: 'deny' }), { duration: '30m' })).rejects.toMatchObject({ code: 'ACCESS_DENIED' });
  });

  it('login signs in even with a valid cache, and says what was authorized', async () => {
    await findSlot(options(), { duration: '30m' });
    const again = options();
    const summary = await login(again);
    expect(again.shown).toHaveLength(1);
    expect(summary).toMatchObject({ resource: authz.agentUrl, resourceName: 'CalendarAgent', issuer: authz.issuer, scopes: ['slots:find'], renewable: true });
    expect(summary.delegationEndsAt).toBeGreaterThan(Date.now() + 86_400_000);
    expect(summary.authorizationDetails[0]).toMatchObject({ locations: [authz.calendarUrl], actions: ['freebusy:read'] });
  });

  it('login registers anew when the authorization server no longer knows the cached client (its database replaced)', async () => {
    await findSlot(options(), { duration: '30m' });
    const oldClient = await cachedClientId();

    // The same issuer (port) and agent, on a new database: the registration is gone.
    await agent.close();
    await authz.close();
    const calendarPort = Number(new URL(authz.calendarUrl).port);
    authz = await startTestAuthz({ calendarPort, now, port: Number(new URL(authz.issuer).port), agentPort: Number(new URL(authz.agentUrl).port) });
    agent = await listenAgentFor(authz, now);
    await authz.shareDataDirectory(home);

    await expectLoginRegistersAnew(oldClient);
  });

  it('login registers anew when the authorization server swept the cached client (registered a day ago, never approved)', async () => {
    await expect(findSlot(options({ decision: 'deny' }), { duration: '30m' })).rejects.toMatchObject({ code: 'ACCESS_DENIED' });
    const oldClient = await cachedClientId();
    clock += 25 * 3_600_000;
    await authz.store.sweep(clock);
    expect(await authz.store.clientById(oldClient)).toBeUndefined();

    await expectLoginRegistersAnew(oldClient);
  });

  it('keeps a client that has a delegation through the sweep, long after its tokens expired', async () => {
    await findSlot(options(), { duration: '30m' });
    const client = await cachedClientId();
    clock += 60 * 86_400_000;
    await authz.store.sweep(clock);
    expect(await authz.store.clientById(client)).toBeDefined();
  });

  it('says in one line that the authorization server refused to register it for now (429 too_many_requests), and caches no client', async () => {
    for (let i = 0; i < REGISTRATION_LIMITS[0]!.limit; i++) expect((await postJson(`${authz.issuer}/register`, { redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none' })).status).toBe(201);
    const error = await findSlot(options(), { duration: '30m' }).then(() => undefined, (e: unknown) => e);
    const line = errorText(error, false);
    expect(line).toMatch(/^delegate: This authorization server has registered too many clients from this address lately; try again in \d+ seconds\.\n$/);
    expect(exitCodeFor(error)).toBe(1);
    const cached = await readFile(join(home, 'tokens.json'), 'utf8').then((t) => JSON.parse(t) as { clients?: Record<string, unknown> }, () => ({ clients: {} }));
    expect(Object.keys(cached.clients ?? {})).toEqual([]);
  });

  it('a login ended half-way (stuck in discovery, then killed) leaves the previous sign-in on disk, usable by the next command', async () => {
    // Found in review "concurrency" (finding 4): login deleted the cached discovery entry up front, so Ctrl-C before the
    // new one was written left tokens that `token` and `find-slot` no longer saw (exit 4), while `status` said signed in.
    await findSlot(options(), { duration: '30m' });
    const before = JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8')) as { discovery: Record<string, unknown> };
    expect(Object.keys(before.discovery)).toHaveLength(1);

    // The AS metadata request of the login hangs: the moment the person presses Ctrl-C (or a kill comes).
    let reached!: () => void;
    let cut!: (error: Error) => void;
    const stuck = new Promise<void>((resolve) => (reached = resolve));
    const hanging = new Promise<never>((_resolve, reject) => (cut = reject));
    const stuckFetch: typeof fetch = async (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.pathname === '/.well-known/oauth-authorization-server') {
        reached();
        return hanging;
      }
      return recordingFetch(input, init);
    };
    const login$ = login(options({ fetchFn: stuckFetch })).then(
      () => 'signed in',
      (error: unknown) => error,
    );
    await stuck;

    // What a kill now leaves on disk: the discovery entry as it was, so the cached tokens still serve.
    const during = JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8')) as { discovery: Record<string, unknown> };
    expect(during.discovery).toEqual(before.discovery);
    const quiet = options();
    delete quiet.presentLoginUrl; // a script: no sign-in possible
    requests = [];
    expect((await findSlot(quiet, { duration: '30m' })).found).toBe(true);
    expect(requests.filter((r) => !r.startsWith('agent'))).toEqual([]); // from the cache, no discovery, no token request

    cut(Object.assign(new Error('interrupted'), { name: 'AbortError' }));
    expect(await login$).toBeInstanceOf(Error);
    const after = JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8')) as { discovery: Record<string, unknown> };
    expect(after.discovery).toEqual(before.discovery);
  });

  it('login keeps a cached client the authorization server still knows', async () => {
    await findSlot(options(), { duration: '30m' });
    requests = [];
    await login(options());
    expect(requests.filter((r) => !r.startsWith('agent'))).toEqual(['GET /.well-known/oauth-authorization-server', 'POST /token', 'GET /authorize', 'POST /token']);
  });

  it('without a way to ask the user, refuses a corrupt cache (authorization required, the file named) and leaves it alone', async () => {
    await writeFile(join(home, 'tokens.json'), 'garbage', { mode: 0o600 });
    const quiet = options();
    delete quiet.presentLoginUrl;
    await expect(findSlot(quiet, { duration: '30m' })).rejects.toMatchObject({ code: 'AUTHORIZATION_REQUIRED', message: expect.stringContaining(join(home, 'tokens.json')) });
    expect(await readFile(join(home, 'tokens.json'), 'utf8')).toBe('garbage');
    expect((await readdir(home)).filter((f) => f.includes('.corrupt-'))).toEqual([]);
  });

  it('keeps a corrupt cache aside, whole, says so, and signs in anew', async () => {
    await writeFile(join(home, 'tokens.json'), 'garbage', { mode: 0o600 });
    const told: string[] = [];
    const result = await findSlot(options({ cacheSetAside: (_damaged, keptAs) => told.push(keptAs) }), { duration: '30m' });
    expect(result.found).toBe(true);
    expect(told).toHaveLength(1);
    expect(told[0]).toMatch(/tokens\.json\.corrupt-\d{8}T\d{9}Z$/);
    expect(await readFile(told[0]!, 'utf8')).toBe('garbage');
    expect(JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8'))).toMatchObject({ version: 1 });
  });

  it('takes the address the browser ended on, pasted, when the browser cannot reach the listener', async () => {
    let landedOn: (url: string) => void = () => undefined;
    const landed = new Promise<string>((resolve) => (landedOn = resolve));
    const refused: string[] = [];
    let reads = 0;
    const remote = options({
      // The browser is on another computer: it approves, but its last hop to 127.0.0.1 goes nowhere.
      presentLoginUrl: async (url) => void approveWithoutReturning(url).then(landedOn),
      readPastedRedirect: async () => (++reads === 1 ? 'not an address' : landed),
      pastedRedirectRefused: (reason) => refused.push(reason),
    });
    const result = await findSlot(remote, { duration: '30m' });
    expect(result.found).toBe(true);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(/not an address/);
    expect((await cacheFile()).tokens).not.toEqual({});
  });

  it('listens on the --redirect-port it is given', async () => {
    const { freePort } = await import('../support/ports.js');
    const port = await freePort();
    const fixed = options({ redirectPort: port });
    await findSlot(fixed, { duration: '30m' });
    expect(fixed.shown[0]).toBe(`http://127.0.0.1:${port}/start`);
    const next = new URL(fixed.startedAt!).searchParams.get('next')!;
    expect(new URL(next, authz.issuer).searchParams.get('redirect_uri')).toBe(`http://127.0.0.1:${port}/callback`);
  });
});
