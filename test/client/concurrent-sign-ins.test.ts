// Two sign-ins at once on a fresh data directory (two `delegate login` started together): each registers a client of
// its own (RFC 7591), and each saves its tokens. Found in review, s26: the cache could keep one's registration beside
// the other's tokens; the next refresh was then refused (invalid_grant, issued to another client) and signed the person
// out, and `logout` could not revoke. Here the order is driven, not raced: A registers, B registers, B saves its tokens,
// then A saves its. Real authorization server, CalendarAgent and calendar on ephemeral loopback ports, the real store.
import type { Server } from 'node:http';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildAuthServer } from '../../src/authz/server.js';
import { runCli } from '../../src/cli/program.js';
import { TokenCache, type TokenCacheData } from '../../src/client/cache.js';
import { logout } from '../../src/client/credentials.js';
import { refreshCachedTokens } from '../../src/client/refresh.js';
import { login, type SessionOptions } from '../../src/client/session.js';
import { listenAgentFor, listenFreeCalendar, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';
import { fakeIo } from '../cli/fake-io.js';

let authz: TestAuthz;
let agent: FastifyInstance;
let calendar: Server;
let home: string;

beforeEach(async () => {
  calendar = await listenFreeCalendar();
  authz = await startTestAuthz({ calendarPort: (calendar.address() as { port: number }).port });
  agent = await listenAgentFor(authz, Date.now);
  home = await mkdtemp(join(tmpdir(), 'delegate-concurrent-sign-ins-'));
  await authz.shareDataDirectory(home);
});

afterEach(async () => {
  await agent.close();
  await authz.close();
  await new Promise((resolve) => calendar.close(resolve));
  await rm(home, { recursive: true, force: true });
});

/** The sign-out command the CLI names (sameSetupCommandLine: the run's data directory, profile and ports). */
const logoutLine = () => `DELEGATE_HOME=${home} delegate --profile work logout --auth-port 28470`;

const files = () => ({ tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock'), ownerKey: join(home, 'owner-key.json') });

async function approve(link: string): Promise<void> {
  const browser = new Browser();
  const consent = await browser.follow(link);
  // The consent given to the first may stand for the second (the same person, scope and agent): no page then.
  if (consent.location !== null) return void (await browser.get(consent.location));
  const answer = await browser.post(new URL('/consent', consent.url).href, { ...parseConsentForm(consent.html), decision: 'approve' });
  await browser.get(new URL(answer.location!, consent.url).href);
}

/**
 * A `delegate login` whose registration's answer is held until let go (`register`), and whose sign-in link is held
 * until approved: when the link is shown, its client is registered and saved.
 */
function startLogin(hold: { agentAfterTokens?: boolean; revokeFails?: boolean; beforeRevoke?: () => Promise<void>; events?: string[] } = {}): { registering: Promise<void>; register: () => void; linkShown: Promise<string>; agentHeld: Promise<void>; letAgentGo: () => void; done: Promise<unknown> } {
  let agentHeld!: () => void;
  let letAgentGo!: () => void;
  const held = new Promise<void>((resolve) => (agentHeld = resolve));
  const agentLetGo = new Promise<void>((resolve) => (letAgentGo = resolve));
  let tokensIssued = false;
  let registering!: () => void;
  let register!: () => void;
  let showLink!: (link: string) => void;
  const sent = new Promise<void>((resolve) => (registering = resolve));
  const letGo = new Promise<void>((resolve) => (register = resolve));
  const linkShown = new Promise<string>((resolve) => (showLink = resolve));
  const fetchFn: FetchLike = async (url, init) => {
    // With agentAfterTokens, the first request to CalendarAgent after the tokens are issued waits to be let go.
    if (hold.agentAfterTokens && tokensIssued && String(url).startsWith(authz.agentUrl)) {
      tokensIssued = false;
      agentHeld();
      await agentLetGo;
    }
    if (new URL(url).pathname === '/revoke') {
      hold.events?.push('revoke');
      if (hold.revokeFails) throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
      await hold.beforeRevoke?.();
    }
    const response = await fetch(url, init);
    if (new URL(url).pathname === '/token' && response.ok) tokensIssued = true;
    if (new URL(url).pathname === '/register') {
      registering();
      await letGo;
    }
    return response;
  };
  const options: SessionOptions = {
    agentUrl: authz.agentUrl,
    files: files(),
    now: Date.now,
    loginTimeoutMs: 20_000,
    presentLoginUrl: async (link) => showLink(link),
    fetchFn,
    ...(hold.events
      ? {
          signInSignals: { hold: () => void hold.events!.push('hold'), release: () => void hold.events!.push('release') },
          replacedNotRevoked: (line: string) => void hold.events!.push(`said: ${line}`),
          // The CLI's, with the run's data directory, profile and ports (sameSetupCommandLine).
          logoutCommand: async () => logoutLine(),
        }
      : {}),
  };
  return { registering: sent, register, linkShown, agentHeld: held, letAgentGo, done: login(options) };
}

async function cacheFile(): Promise<TokenCacheData> {
  return JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8')) as TokenCacheData;
}

/** CalendarAgent's answer to an MCP initialize with this access token: its HTTP status. */
async function initializeWith(accessToken: string): Promise<number> {
  const response = await fetch(authz.agentUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'test', version: '0' } } }),
  });
  await response.body?.cancel();
  return response.status;
}

function grantOfToken(accessToken: string): string {
  return (JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()) as { grant_id: string }).grant_id;
}

function clientOfToken(accessToken: string): string {
  return (JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()) as { client_id: string }).client_id;
}

describe('two sign-ins at once, each with a client of its own', () => {
  it('keeps the sign-in saved last whole, its client beside its tokens: a refresh and logout then work, and the other grant is revoked', async () => {
    const a = startLogin();
    await a.registering; // A found no client stored, and registers one
    const b = startLogin();
    await b.registering; // so did B, with its own
    a.register();
    const linkA = await a.linkShown; // A saved its client
    b.register();
    const linkB = await b.linkShown; // B saved its own over A's
    await approve(linkB);
    await b.done; // B saved its tokens
    await approve(linkA);
    await a.done; // then A saved its

    const saved = await cacheFile();
    const tokens = saved.tokens[authz.issuer]![authz.agentUrl]!;
    expect(saved.clients[authz.issuer]!.client_id).toBe(clientOfToken(tokens.access_token));
    const grants = await authz.store.listGrants();
    expect(grants).toHaveLength(2);
    // B's grant, which nothing here holds any more, is revoked; A's stands.
    expect(grants.filter((g) => g.revokedAt === null).map((g) => g.clientId)).toEqual([clientOfToken(tokens.access_token)]);

    // The refresh is of the client the tokens were issued to: new tokens, no sign-out.
    const cache = new TokenCache({ files: files(), now: Date.now });
    const fresh = await refreshCachedTokens({ cache, issuer: authz.issuer, resource: authz.agentUrl, now: Date.now, rejectedAccessToken: tokens.access_token });
    expect(fresh?.access_token).toBeDefined();
    expect(fresh!.access_token).not.toBe(tokens.access_token);

    const result = await logout({ files: files(), now: Date.now });
    expect(result.failed).toEqual([]);
    expect(result.revoked).toEqual([expect.objectContaining({ issuer: authz.issuer, delegationEnded: true })]);
    expect((await authz.store.listGrants()).every((g) => g.revokedAt !== null)).toBe(true);
  });

  // Found in review (s26new2): with the authorization server slow or down at that moment, both sign-ins said
  // "Authorized" and the replaced delegation stood for 30 days, unsaid; and a signal held during the redemption ended
  // the process before the revocation was tried.
  it('a replaced sign-in that cannot be revoked is said in one line, and its revocation is tried before the hold on signals ends', async () => {
    const events: string[] = [];
    const a = startLogin({ revokeFails: true, events });
    await a.registering;
    const b = startLogin();
    await b.registering;
    a.register();
    const linkA = await a.linkShown;
    b.register();
    const linkB = await b.linkShown;
    await approve(linkB);
    await b.done;
    await approve(linkA);
    await a.done; // A saved its tokens over B's, and could not revoke B's
    const said = `said: A sign-in made at the same time was replaced by this one, and its delegation could not be revoked at ${authz.issuer} (cannot reach ${authz.issuer}/revoke (ECONNREFUSED)): it is kept in the token cache, and \`${logoutLine()}\` (or the next sign-in) tries again.`;
    // Not tried again after the hold (retireReplacedSignIns): its server has just failed to take it, and a second try
    // would only wait out the 3 s bound again (found in review, s27rev1); it is kept for logout or the next sign-in.
    expect(events).toEqual(['hold', 'revoke', said, 'release']);
    // It does stand: B's grant is still active, beside A's.
    expect((await authz.store.listGrants()).filter((g) => g.revokedAt === null)).toHaveLength(2);
  });

  // Found in review (s26new3): a plain `delegate login` after the delegation was revoked replaced the stored (dead)
  // tokens, revoked them again, held the browser's page 3 s, and, with /revoke slow, said a sign-in "made at the same
  // time" stood. Only a sign-in saved after this one started is one made at the same time.
  it('signing in again after the delegation ended sends no revocation and says nothing of a sign-in made at the same time', async () => {
    const first = startLogin();
    first.register();
    await approve(await first.linkShown);
    await first.done;
    const [grant] = await authz.store.listGrants();
    await authz.store.revokeGrant(grant!.id, Date.now(), 'test');
    const events: string[] = [];
    const again = startLogin({ revokeFails: true, events });
    again.register();
    await approve(await again.linkShown);
    await again.done;
    expect(events).toEqual(['hold', 'release']);
    const kept = (await cacheFile()).tokens[authz.issuer]![authz.agentUrl]!;
    expect((await authz.store.listGrants()).filter((g) => g.revokedAt === null).map((g) => g.clientId)).toEqual([clientOfToken(kept.access_token)]);
  });

  it('the sign-in replaced before it used its tokens goes on with the one saved last, which revoked them', async () => {
    const a = startLogin();
    await a.registering;
    const b = startLogin({ agentAfterTokens: true });
    await b.registering;
    a.register();
    const linkA = await a.linkShown;
    b.register();
    const linkB = await b.linkShown;
    await approve(linkB);
    await b.agentHeld; // B saved its tokens, and has not shown them to CalendarAgent yet
    const replaced = (await cacheFile()).tokens[authz.issuer]![authz.agentUrl]!;
    await approve(linkA);
    await a.done; // A saved its own over them, and revoked them
    // CalendarAgent refuses them once its revocation list has it (it follows the authorization server's, within moments).
    while ((await initializeWith(replaced.access_token)) !== 401) await new Promise((resolve) => setTimeout(resolve, 20));

    b.letAgentGo();
    await expect(b.done).resolves.toMatchObject({ issuer: authz.issuer });
    const kept = (await cacheFile()).tokens[authz.issuer]![authz.agentUrl]!;
    expect(kept.access_token).not.toBe(replaced.access_token);
    expect((await authz.store.listGrants()).filter((g) => g.revokedAt === null).map((g) => g.clientId)).toEqual([clientOfToken(kept.access_token)]);
  });

  it('a refresh uses the client the tokens were issued to when the issuer’s stored client is another (cache.ts clientFor)', async () => {
    const a = startLogin();
    a.register();
    await approve(await a.linkShown);
    await a.done;
    const cache = new TokenCache({ files: files(), now: Date.now });
    // Another registration stored for the issuer since (a sign-in for another agent there, say): the tokens keep theirs.
    const before = await cache.update((data) => {
      const clientId = data.clients[authz.issuer]!.client_id;
      data.clients[authz.issuer] = { client_id: 'cli_someone_else', issuer: authz.issuer, redirect_uris: ['http://127.0.0.1/callback'] };
      return { clientId, tokens: data.tokens[authz.issuer]![authz.agentUrl]! };
    });
    expect(before.tokens.client_id).toBe(before.clientId);
    const fresh = await refreshCachedTokens({ cache, issuer: authz.issuer, resource: authz.agentUrl, now: Date.now, rejectedAccessToken: before.tokens.access_token });
    expect(fresh?.client_id).toBe(before.clientId);
    expect(clientOfToken(fresh!.access_token)).toBe(before.clientId);
    const result = await logout({ files: files(), now: Date.now });
    expect(result.failed).toEqual([]);
    expect((await authz.store.listGrants()).every((g) => g.revokedAt !== null)).toBe(true);
  });
});

// Found in review (s27): a replaced sign-in whose revocation failed was said in one line and forgotten, so that
// `delegate logout` could never revoke it: a delegation standing for up to 30 days that nothing here could end. Its
// refresh token is now kept in the token cache as a pending revocation, tried again by logout and the next sign-in.
// The authorization server is really stopped as A revokes B's sign-in, and started again (same store, same port).
describe('a replaced sign-in whose revocation failed', () => {
  let restarted: FastifyInstance[] = [];
  afterEach(async () => {
    for (const app of restarted) await app.close();
    restarted = [];
  });

  /** Stops the authorization server (its listener closed: connections refused). */
  const stopAuthz = async () => void (await authz.app.close());
  /** Starts it again on its port, with the same store and keys, saying it runs from the CLI's data directory (shareDataDirectory). */
  async function startAuthzAgain(): Promise<void> {
    const app = await buildAuthServer({ issuer: authz.issuer, store: authz.store, ownerKeyPath: join(authz.home, 'owner-key.json'), dataDirectory: home, now: Date.now });
    await app.listen({ port: Number(new URL(authz.issuer).port), host: '127.0.0.1' });
    restarted.push(app);
  }

  /** B saves its sign-in, then A saves its own over it and, the authorization server stopped, cannot revoke B's. */
  async function replacedUnrevoked(): Promise<{ events: string[]; replaced: { refreshToken: string; clientId: string; grantId: string } }> {
    const events: string[] = [];
    let stopped = false;
    const a = startLogin({ events, beforeRevoke: async () => void (stopped ||= (await stopAuthz(), true)) });
    await a.registering;
    const b = startLogin();
    await b.registering;
    a.register();
    const linkA = await a.linkShown;
    b.register();
    const linkB = await b.linkShown;
    await approve(linkB);
    await b.done;
    const ofB = (await cacheFile()).tokens[authz.issuer]![authz.agentUrl]!;
    await approve(linkA);
    await a.done;
    return { events, replaced: { refreshToken: ofB.refresh_token!, clientId: clientOfToken(ofB.access_token), grantId: grantOfToken(ofB.access_token) } };
  }

  /** The authorization server's answer to a refresh with this token, as this client. */
  async function refreshWith(refreshToken: string, clientId: string): Promise<{ status: number; error: unknown }> {
    const response = await fetch(`${authz.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId, resource: authz.agentUrl }),
    });
    return { status: response.status, error: ((await response.json()) as { error?: unknown }).error };
  }

  it('is kept in the token cache (0600), and `delegate logout` revokes it and says so', async () => {
    const { events, replaced } = await replacedUnrevoked();
    const said = events.find((e) => e.startsWith('said: '))!;
    expect(said).toContain(`it is kept in the token cache, and \`${logoutLine()}\` (or the next sign-in) tries again.`);
    expect(said).not.toContain(replaced.refreshToken);
    const path = join(home, 'tokens.json');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await cacheFile()).pending_revocations).toEqual([
      {
        issuer: authz.issuer,
        resource: authz.agentUrl,
        client_id: replaced.clientId,
        token: replaced.refreshToken,
        token_type_hint: 'refresh_token',
        grant_id: replaced.grantId,
        failed_at: expect.any(Number),
      },
    ]);
    await startAuthzAgain();
    // Still standing at the server: B's grant beside A's.
    expect((await authz.store.listGrants()).filter((g) => g.revokedAt === null)).toHaveLength(2);

    const io = fakeIo({ DELEGATE_HOME: home }, Date.now);
    expect(await runCli(['logout'], io), io.err).toBe(0);
    expect(io.err).toBe(
      `Revoked the delegation for ${authz.agentUrl} at ${authz.issuer}.\n` +
        `Revoked the delegation of a sign-in replaced at the same time for ${authz.agentUrl} at ${authz.issuer}.\n` +
        `Deleted ${path}.\n`,
    );
    expect(io.err + io.out).not.toContain(replaced.refreshToken);
    expect(await refreshWith(replaced.refreshToken, replaced.clientId)).toEqual({ status: 400, error: 'invalid_grant' });
    expect((await authz.store.listGrants()).every((g) => g.revokedAt !== null)).toBe(true);
  });

  it('`delegate logout` with the server still down says it could not revoke it, and forgets it as it forgets its own', async () => {
    const { replaced } = await replacedUnrevoked();
    const io = fakeIo({ DELEGATE_HOME: home }, Date.now);
    expect(await runCli(['logout'], io)).toBe(1);
    expect(io.err).toContain(`${authz.agentUrl} (a sign-in replaced at the same time: cannot reach ${authz.issuer}/revoke (ECONNREFUSED))`);
    expect(io.err).not.toContain(replaced.refreshToken);
  });

  it('the next sign-in, its server answering, revokes it and forgets it', async () => {
    const { replaced } = await replacedUnrevoked();
    await startAuthzAgain();
    const next = startLogin();
    next.register();
    await approve(await next.linkShown);
    await next.done;
    expect((await cacheFile()).pending_revocations).toBeUndefined();
    expect(await refreshWith(replaced.refreshToken, replaced.clientId)).toEqual({ status: 400, error: 'invalid_grant' });
  });
});
