// A session with CalendarAgent as an MCP client over Streamable HTTP, with
// the user's delegation behind it. Fast path: a cached, unexpired access
// token goes straight into the Authorization header (an expired one is first
// refreshed under the cross-process lock, so no 401 round trip is wasted).
// Slow path, when there is no usable token: sign in through the browser
// (sign-in.ts, loaded only then). With a token in hand, the agent is spoken
// to over node:http (http-transport.ts), so that a run that needs no refresh
// never loads fetch; a caller's fetchFn, when given, carries every request.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { canonicalResource } from '../delegation/resource.js';
import { SCOPE_FIND_SLOT } from '../delegation/scopes.js';
import type { AuthorizationDetail } from '../delegation/tokens.js';
import { boundedFetch, requestTimedOut } from './bounded-fetch.js';
import { TokenCache, damagedCacheNeedsLogin, endedFor, isExpired, tokensFor, type StoredTokens } from './cache.js';
import { ClientError, certificateErrorCode, delegationEnded, foreignResourceMetadata, isClientError, isDelegationEnded, networkErrorCode, noAnswerInTime, refusedResourceOf, UNSAFE_PORT, unsafePort } from './errors.js';
import { connectAndUse } from './connect.js';
import { HttpClientTransport } from './http-transport.js';
import { DEFAULT_REQUEST_TIMEOUT_MS } from './quick-call.js';
import { busyList, FIND_SLOT_TOOL, LIST_BUSY_TOOL, slotSearchResult } from './tool-results.js';
import { refreshCachedTokens, refusalNotSaved } from './refresh.js';
import { resendingFetch, type ServersGone } from './servers-gone.js';
import type { SignalHold } from './held-signals.js';
import { printableClipped } from '../terminal-text.js';

export { DEFAULT_REQUEST_TIMEOUT_MS, FIND_SLOT_TOOL, LIST_BUSY_TOOL };

export interface SessionOptions {
  /** CalendarAgent's MCP endpoint, e.g. http://127.0.0.1:8412/mcp. */
  agentUrl: string;
  /** Where the token cache, its lock and the owner's login key live (from resolvePaths). */
  files: { tokenCache: string; tokenLock: string; ownerKey: string };
  now: () => number;
  /**
   * Shows the user where to sign in (prints the link, opens a browser).
   * Without it, a run that needs the user fails with AUTHORIZATION_REQUIRED.
   */
  presentLoginUrl?: (url: string) => Promise<void>;
  /** How long to wait for the browser to come back (ms). */
  loginTimeoutMs?: number;
  /**
   * The scopes a new sign-in asks for (space-separated), e.g. busy's busy:read, or what `login` keeps and adds;
   * when absent, what the agent's challenge names. A step-up asks for what the agent's 403 names instead.
   */
  scope?: string;
  /** The loopback listener's port (for `ssh -L`); an ephemeral one when absent. */
  redirectPort?: number;
  /**
   * Reads an address the person pastes when the browser ran on another
   * computer; raced against the loopback callback. Absent when nobody can type.
   */
  readPastedRedirect?: (signal: AbortSignal) => Promise<string | undefined>;
  /** Told whether the last pasted address was refused, and why, so the person can try again. */
  pastedRedirectRefused?: (reason: string) => void;
  /** Told that the token cache could not be read and was kept aside, whole, before a new sign-in writes a fresh one. */
  cacheSetAside?: (damaged: string, keptAs: string) => void;
  /**
   * Told when a refresh got new tokens that could not be saved in the token
   * cache (CACHE_IO): the run goes on with them. Without it, that is an error.
   */
  refreshNotSaved?: (error: ClientError) => void;
  /**
   * Told, before a sign-in for a command that wanted the stored delegation, that the authorization server refused to
   * renew it, and why (endedReason), so that the person knows why they are asked again.
   */
  delegationEndedBeforeSignIn?: (reason: string) => void;
  /** Called once the browser sign-in has ended, either way (e.g. to stop a spinner). */
  loginSettled?: () => void;
  /**
   * An access token to use instead of the cache (DELEGATE_TOKEN): never
   * refreshed, never stored; a refusal is AUTHORIZATION_REQUIRED.
   */
  envToken?: string;
  /** Cap on each HTTP request (ms). */
  requestTimeoutMs?: number;
  clientInfo?: { name: string; version: string };
  fetchFn?: FetchLike;
  /**
   * Told when a server refuses the connection (the servers another command
   * started have gone with it): brings them back, and the request is sent
   * once more (servers-gone.ts). Without it, a refused connection is an error.
   */
  serversGone?: ServersGone;
  /** The identity of this command's data directory (src/data-directory-id.ts), which the servers on its ports send: looked up when needed. */
  dataDirectoryId?: () => Promise<string | undefined>;
  /**
   * Called before a sign-in starts, before anything of it is written (discovery state, client, owner key): the caller
   * makes sure the servers are its own (find-slot's fast path, which did not look before: src/cli/stack.ts refuses the
   * servers of another data directory). Throws to stop the sign-in.
   */
  beforeSignIn?: () => Promise<void>;
  /**
   * Called before the stored refresh token is sent to the authorization server `issuer` (an expired access token, or
   * one the agent refused), outside the token cache's lock: the caller makes sure that server is its own (src/cli/stack.ts
   * refuses one of another data directory, whose refusal would otherwise end this directory's sign-in). Throws to stop
   * the refresh, with nothing sent and nothing changed in the cache.
   */
  beforeRefresh?: (issuer: string) => Promise<void>;
  /**
   * The hold on ending signals taken while a sign-in redeems its code (the browser's, or a device poll's) and saves
   * what comes back (held-signals.ts, SIGN_IN_HELD_NOTICE); tests pass one that records. A new one when absent.
   */
  signInSignals?: SignalHold;
  /**
   * Told, in one line, that a sign-in made at the same time was replaced by this one and its delegation could not be
   * revoked (revokeReplacedSignIn), so that the person knows it stands. Without it, nothing is said.
   */
  replacedNotRevoked?: (line: string) => void;
  /** The command line that signs out of this sign-in, for that line; `delegate logout` without it. */
  logoutCommand?: () => Promise<string>;
}

/** find_slot's search options, as written (docs/internals.md, find_slot). */
export interface SlotSearchArgs {
  within?: string;
  workingHours?: string;
  step?: string;
  bufferBefore?: string;
  bufferAfter?: string;
  minNotice?: string;
  limit?: number;
  calendars?: string[];
  tentative?: 'busy' | 'free';
  onCalendarError?: 'fail' | 'skip';
}

export interface FindSlotInput extends SlotSearchArgs {
  /** e.g. "30m", "1h", "PT45M"; parsed by the agent. */
  duration: string;
  from?: string;
  to?: string;
  timeZone?: string;
}

export interface Slot {
  start: string;
  end: string;
  timeZone: string;
}

/** find_slot's structured output (docs/internals.md, CalendarAgent). */
export interface SlotSearchResult {
  found: boolean;
  timeZone: string;
  start?: string;
  end?: string;
  slots: Slot[];
  /** issue 4: the working hours searched, calendars left out, feeds whose older copy was used. */
  workingHours?: string;
  skipped?: Array<{ calendar: string; reason: string }>;
  stale?: Array<{ calendar: string; fetchedAt: string; reason: string }>;
}

/** What a login obtained, for the CLI to tell the user. */
export interface AuthorizationSummary {
  /** The agent's resource URL (the token's audience). */
  resource: string;
  /** The agent's name from its protected resource metadata, when it gives one. */
  resourceName: string | undefined;
  /** The authorization server. */
  issuer: string;
  scopes: string[];
  /** When the access token expires (epoch ms); it is refreshed without the user after that. */
  expiresAt: number | undefined;
  /** When the delegation ends, unless revoked (the grant's end; else the refresh token's expiry), if the server said. */
  delegationEndsAt: number | undefined;
  /** When this sign-in ends (the refresh token's expiry), when that is before the delegation's end: sign in again after it. */
  signInEndsAt?: number;
  /** Whether a refresh token came with it. */
  renewable: boolean;
  /** What the delegation lets the agent do downstream (RFC 9396), if the server said. */
  authorizationDetails: AuthorizationDetail[];
}

/** Calls find_slot, signing in first if the cache holds no usable delegation. */
export async function findSlot(options: SessionOptions, input: FindSlotInput): Promise<SlotSearchResult> {
  return withAgent(options, 'use-cache', async (client) => slotSearchResult(await client.callTool({ name: FIND_SLOT_TOOL, arguments: { ...input } })));
}

export interface BusyListInput {
  from?: string;
  to?: string;
  timeZone?: string;
  calendars?: string[];
}

export interface BusyList {
  timeZone: string;
  window: { start: string; end: string };
  busy: Array<{ start: string; end: string }>;
}

/** Calls list_busy, stepping up first if the delegation does not cover it yet (busy:read). */
export async function listBusy(options: SessionOptions, input: BusyListInput): Promise<BusyList> {
  return withAgent(options, 'use-cache', async (client) => busyList(await client.callTool({ name: LIST_BUSY_TOOL, arguments: { ...input } })));
}

/**
 * What `delegate login` asks for: what the agent asks for first (slots:find), the scopes the stored sign-in for this
 * agent holds while it stands, so that signing in again keeps what the person approved (found in review: a login after
 * `busy`'s step-up replaced its token with a slots:find one, and busy asked again), and the ones `asked` adds (--scope).
 * Undefined when that is only what the agent asks for first (its challenge names it). Never more than that:
 * nothing the person did not approve before or ask for now, and nothing of an approval they withdrew (standingScopes).
 */
export async function loginScope(options: LoginScopeOptions, asked: readonly string[]): Promise<string | undefined> {
  const kept = await standingScopes(options, resourceOf(options.agentUrl), asked);
  const scopes = [...new Set([SCOPE_FIND_SLOT, ...kept, ...asked])];
  return scopes.length === 1 && scopes[0] === SCOPE_FIND_SLOT ? undefined : scopes.join(' ');
}

type LoginScopeOptions = Pick<SessionOptions, 'agentUrl' | 'files' | 'now' | 'fetchFn' | 'requestTimeoutMs' | 'beforeRefresh' | 'refreshNotSaved' | 'delegationEndedBeforeSignIn'>;

/**
 * The scopes of the stored sign-in for the agent, once its authorization server has said that the delegation stands.
 * Found at stop 21: after `delegate grants revoke` (or the grants page's Revoke) the tokens stay in the cache, and
 * login asked again for the revoked sign-in's scopes; as `gh auth refresh` keeps only the scopes the server says the
 * stored token has (none for a revoked one), a delegation is asked about before its scopes are kept. The question is a
 * refresh (RFC 6749 §6), asked only when those scopes would add to what is asked anyway: a refusal (§5.2,
 * `invalid_grant`) ends the stored tokens as any command's refresh would (refresh.ts), so nothing is kept, and the
 * person is told why before the sign-in link. An unreadable cache holds nothing to keep (the sign-in sets it aside);
 * a server that does not answer keeps the scopes as stored (the sign-in that follows meets the same server).
 */
async function standingScopes(options: LoginScopeOptions, resource: string, asked: readonly string[]): Promise<string[]> {
  const cache = cacheFor(options);
  const stored = await cache.read().then(
    (data) => {
      const issuer = data.discovery[resource]?.authorizationServerUrl;
      const tokens = issuer === undefined ? undefined : tokensFor(data, issuer, resource);
      return issuer === undefined || tokens === undefined ? undefined : { issuer, tokens };
    },
    () => undefined,
  );
  if (!stored) return [];
  const scopes = scopesOf(stored.tokens);
  if (scopes.every((scope) => scope === SCOPE_FIND_SLOT || asked.includes(scope))) return scopes;
  await options.beforeRefresh?.(stored.issuer);
  try {
    const standing = await refreshCachedTokens({
      cache,
      issuer: stored.issuer,
      resource,
      now: options.now,
      fetchFn: options.fetchFn,
      requestTimeoutMs: options.requestTimeoutMs,
      rejectedAccessToken: stored.tokens.access_token, // renewed even if unexpired: the renewal is the question
      notSaved: options.refreshNotSaved,
    });
    if (standing) return scopesOf(standing);
  } catch (error) {
    if (isClientError(error, 'REFRESH_FAILED') || isClientError(error, 'CACHE_IO')) return scopes;
    throw error;
  }
  const ended = await endedDelegation(options);
  if (isDelegationEnded(ended)) {
    options.delegationEndedBeforeSignIn?.(ended.cause.detail);
    return [];
  }
  // No refresh token to ask with (a cache edited by hand, a server that gives none): the scopes as stored.
  return scopes;
}

function scopesOf(tokens: StoredTokens): string[] {
  return (tokens.scope ?? '').split(' ').filter(Boolean);
}

/** Signs in through the browser even if a cached token would do, and says what was authorized. */
export async function login(options: SessionOptions): Promise<AuthorizationSummary> {
  if (options.presentLoginUrl && options.envToken === undefined) await setAsideDamagedCache(options); // before the browser, not after it
  await withAgent(options, 'sign-in', async () => undefined);
  return authorizationSummary(options);
}

/** Signs in with the device authorization grant (RFC 8628), then proves the new token at the agent, and says what was authorized. */
export async function loginWithDevice(options: SessionOptions & Pick<import('./device.js').DeviceLoginOptions, 'presentDeviceCode' | 'sleep'>): Promise<AuthorizationSummary> {
  const { deviceLogin } = await import('./device.js');
  await setAsideDamagedCache(options); // a login is a new sign-in: an unreadable cache is kept aside first
  try {
    await deviceLogin(options); // with options.scope, if any, in the device request
  } catch (error) {
    throw asClientError(error, options.agentUrl);
  }
  const { presentLoginUrl: _never, ...cachedOnly } = options;
  await withAgent(cachedOnly, 'use-cache', async () => undefined);
  return authorizationSummary(options);
}

/** What the cache now holds for the agent, in the terms `delegate login` reports. */
async function authorizationSummary(options: SessionOptions): Promise<AuthorizationSummary> {
  const resource = resourceOf(options.agentUrl);
  const cache = cacheFor(options);
  const data = await cache.read();
  const discovery = data.discovery[resource];
  const issuer = discovery?.authorizationServerUrl;
  const tokens = issuer === undefined ? undefined : tokensFor(data, issuer, resource);
  if (!discovery || !issuer || !tokens) throw new ClientError('AUTHORIZATION_FAILED', 'Signed in, but the token cache holds no tokens afterwards.');
  return {
    resource: tokens.resource,
    resourceName: discovery.resourceMetadata?.resource_name,
    issuer,
    scopes: (tokens.scope ?? '').split(' ').filter(Boolean),
    expiresAt: tokens.expires_at,
    delegationEndsAt: tokens.delegation_expires_at ?? tokens.refresh_expires_at,
    ...signInEnd(tokens),
    renewable: tokens.refresh_token !== undefined,
    authorizationDetails: tokens.authorization_details ?? [],
  };
}

type Mode = 'use-cache' | 'sign-in';

/**
 * A token cache that cannot be read is never overwritten: where the person
 * can sign in, it is kept aside whole (and they are told where) and the run
 * signs in anew; elsewhere authorization is required, with the file named.
 */
async function withAgent<T>(options: SessionOptions, mode: Mode, use: (client: Client) => Promise<T>): Promise<T> {
  try {
    return await withAgentChallenged(options, mode, use);
  } catch (error) {
    if (!isClientError(error, 'CACHE_CORRUPT') || options.envToken !== undefined) throw error;
    if (!options.presentLoginUrl) throw damagedCacheNeedsLogin(error);
    await setAsideDamagedCache(options);
    return withAgentChallenged(options, mode, use);
  }
}

/** Keeps an unreadable token cache aside (see TokenCache.setAsideDamaged) and says so. */
export async function setAsideDamagedCache(options: Pick<SessionOptions, 'files' | 'now' | 'cacheSetAside'>): Promise<void> {
  const keptAs = await cacheFor(options).setAsideDamaged();
  if (keptAs !== undefined) options.cacheSetAside?.(options.files.tokenCache, keptAs);
}

async function withAgentChallenged<T>(options: SessionOptions, mode: Mode, use: (client: Client) => Promise<T>): Promise<T> {
  const resource = resourceOf(options.agentUrl);
  const cache = cacheFor(options);
  const challenges = new ScopeChallenges();
  // A resent request gets a timeout of its own.
  const fetchFn = challenges.observe(resendingFetch(boundedFetch(options.fetchFn ?? fetch, options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS), options.serversGone));
  try {
    return await withAgentOnce(options, mode, use, cache, resource, fetchFn, challenges);
  } catch (error) {
    const needed = challenges.take();
    if (needed === undefined || options.envToken !== undefined) throw asClientError(error, options.agentUrl);
    // Step-up: the tool needs a scope the delegation lacks. Ask the user once for it (the consent
    // page shows only what is new), then retry; a second refusal is an error, not a loop.
    if (!options.presentLoginUrl) {
      const detail = challenges.description();
      throw new ClientError(
        'AUTHORIZATION_REQUIRED',
        `CalendarAgent needs more permission for this (${needed}${detail ? `: ${detail}` : ''}), and this run may not open a sign-in. Run the command again on a terminal to approve it.`,
        detail ? { detail } : undefined,
      );
    }
    await options.beforeSignIn?.();
    const { signInAndUse } = await import('./sign-in.js');
    try {
      return await signInAndUse({ ...options, presentLoginUrl: options.presentLoginUrl, scope: needed }, cache, resource, fetchFn, use);
    } catch (second) {
      if (challenges.take() !== undefined) {
        throw new ClientError('AUTHORIZATION_FAILED', `CalendarAgent still refuses after the new authorization: it needs ${needed}.`);
      }
      throw asClientError(second, options.agentUrl);
    }
  }
}

async function withAgentOnce<T>(
  options: SessionOptions,
  mode: Mode,
  use: (client: Client) => Promise<T>,
  cache: TokenCache,
  resource: string,
  fetchFn: FetchLike,
  challenges: ScopeChallenges,
): Promise<T> {
  try {
    const agent: AgentLine = { fetchFn, challenges };
    if (options.envToken !== undefined) return await useEnvToken(options, agent, options.envToken, use);
    if (mode === 'use-cache') {
      const done = await tryCachedTokens(options, cache, resource, agent, use);
      if (done) return done.value;
    }
    // A delegation whose renewal the authorization server refused is said as such, not as one never given.
    const ended = mode === 'use-cache' ? await endedDelegation(options) : undefined;
    if (!options.presentLoginUrl) {
      throw ended ?? new ClientError('AUTHORIZATION_REQUIRED', 'No valid delegation is cached, and this run may not open a sign-in.');
    }
    await options.beforeSignIn?.();
    if (isDelegationEnded(ended)) options.delegationEndedBeforeSignIn?.(ended.cause.detail);
    // Only now the sign-in machinery (listener, owner key, jose, provider) is loaded.
    const { signInAndUse } = await import('./sign-in.js');
    return await signInAndUse({ ...options, presentLoginUrl: options.presentLoginUrl }, cache, resource, fetchFn, use);
  } catch (error) {
    // A scope challenge is handled by withAgent; anything else is said as the user should read it.
    if (error instanceof StreamableHTTPError && error.code === 403) throw error;
    throw asClientError(error, options.agentUrl);
  }
}

/**
 * Notes the scope an agent's 403 `insufficient_scope` challenge names
 * (RFC 6750 §3.1, the MCP authorization spec's scope challenge), so that the
 * session can step up once.
 */
class ScopeChallenges {
  private scope: string | undefined;
  private said: string | undefined;

  observe(fetchFn: FetchLike): FetchLike {
    return async (url, init) => {
      const res = await fetchFn(url, init);
      this.note(res.status, res.headers.get('www-authenticate') ?? undefined);
      return res;
    };
  }

  note(status: number, wwwAuthenticate: string | undefined): void {
    if (status !== 403) return;
    const header = wwwAuthenticate ?? '';
    if (!/error="insufficient_scope"/.test(header)) return;
    this.scope = /scope="([^"]*)"/.exec(header)?.[1] ?? this.scope;
    this.said = /error_description="([^"]*)"/.exec(header)?.[1];
  }

  /**
   * Why the last challenge was made, as the agent put it (found in review: after the calendar moved, the CLI said
   * only "needs more permission", though the agent named both addresses). Another server's text for a terminal:
   * control characters escaped, at most 300 characters.
   */
  description(): string | undefined {
    return this.said === undefined || this.said === '' ? undefined : printableClipped(this.said, 300);
  }

  take(): string | undefined {
    const scope = this.scope;
    this.scope = undefined;
    return scope;
  }
}

/** How requests reach the agent and the AS: the session's fetch (refresh, or a caller's fetchFn), and who notes scope challenges. */
interface AgentLine {
  fetchFn: FetchLike;
  challenges: ScopeChallenges;
}

/** The fast path; undefined when only the user can help (no tokens, or the agent refuses them even after a refresh). */
async function tryCachedTokens<T>(
  options: SessionOptions,
  cache: TokenCache,
  resource: string,
  agent: AgentLine,
  use: (client: Client) => Promise<T>,
): Promise<{ value: T } | undefined> {
  const { fetchFn } = agent;
  const data = await cache.read();
  const issuer = data.discovery[resource]?.authorizationServerUrl;
  if (issuer === undefined) return undefined;
  let tokens: StoredTokens | undefined = tokensFor(data, issuer, resource);
  if (!tokens) return undefined;

  let refreshed = false;
  if (isExpired(tokens, options.now())) {
    await options.beforeRefresh?.(issuer);
    tokens = await refreshCachedTokens({ cache, issuer, resource, now: options.now, fetchFn, requestTimeoutMs: options.requestTimeoutMs, notSaved: options.refreshNotSaved });
    refreshed = true;
    if (!tokens) return undefined;
  }
  try {
    return { value: await useWithBearer(options, agent, tokens.access_token, use) };
  } catch (error) {
    if (!isUnauthorized(error)) throw error;
    if (refreshed) return undefined;
  }
  // Refused though unexpired (revoked, keys rotated, clock skew, or the agent of another data directory): one refresh, then the user.
  await options.beforeRefresh?.(issuer);
  const replacement = await refreshCachedTokens({
    cache,
    issuer,
    resource,
    now: options.now,
    fetchFn,
    requestTimeoutMs: options.requestTimeoutMs,
    rejectedAccessToken: tokens.access_token,
    notSaved: options.refreshNotSaved,
  });
  if (!replacement) return undefined;
  try {
    return { value: await useWithBearer(options, agent, replacement.access_token, use) };
  } catch (error) {
    if (isUnauthorized(error)) return undefined;
    throw error;
  }
}

/**
 * AUTHORIZATION_REQUIRED saying that the stored delegation for the agent ended, when its renewal was refused since
 * the last sign-in (cache.ts endedFor), or refused in this run and not noted, the cache's write having failed (refresh.ts
 * refusalNotSaved: said too); undefined when there is no such refusal, or the cache cannot be read (the caller's own
 * error says so).
 */
export async function endedDelegation(options: Pick<SessionOptions, 'agentUrl' | 'files' | 'now'>): Promise<ClientError | undefined> {
  const resource = resourceOf(options.agentUrl);
  const data = await cacheFor(options).read().catch(() => undefined);
  const issuer = data?.discovery[resource]?.authorizationServerUrl;
  if (data === undefined || issuer === undefined) return undefined;
  const ended = endedFor(data, issuer, resource);
  if (ended) return delegationEnded(options.agentUrl, issuer, ended);
  // Refused in this run, but the cache could not be told: said all the same, with why the cache does not say it.
  const unsaved = refusalNotSaved(options.files.tokenCache, issuer, resource, tokensFor(data, issuer, resource));
  return unsaved && delegationEnded(options.agentUrl, issuer, unsaved.ended, unsaved.notSaved);
}

/** DELEGATE_TOKEN in the Authorization header, as it is: the person chose it, so a refusal goes back to them. */
async function useEnvToken<T>(options: SessionOptions, agent: AgentLine, token: string, use: (client: Client) => Promise<T>): Promise<T> {
  try {
    return await useWithBearer(options, agent, token, use);
  } catch (error) {
    if (!isUnauthorized(error)) throw error;
    throw new ClientError(
      'AUTHORIZATION_REQUIRED',
      `CalendarAgent at ${options.agentUrl} refused the token in DELEGATE_TOKEN (expired, revoked or for another server). Unset it to use your stored sign-in, or set a fresh one from \`delegate token\`.`,
    );
  }
}

/** Connects with a known access token and no auth provider: a 401 comes back as an error, and nothing refreshes behind the lock's back. */
async function useWithBearer<T>(options: SessionOptions, agent: AgentLine, accessToken: string, use: (client: Client) => Promise<T>): Promise<T> {
  const authorization = { Authorization: `Bearer ${accessToken}` };
  const transport = options.fetchFn
    ? new StreamableHTTPClientTransport(new URL(options.agentUrl), { requestInit: { headers: authorization }, fetch: agent.fetchFn })
    : new HttpClientTransport(new URL(options.agentUrl), {
        headers: authorization,
        timeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        onResponse: (status, header) => agent.challenges.note(status, header),
        ...(options.serversGone ? { serversGone: options.serversGone } : {}),
      });
  return connectAndUse(options.clientInfo, transport, use, options.requestTimeoutMs);
}

function isUnauthorized(error: unknown): boolean {
  return (error instanceof StreamableHTTPError && error.code === 401) || error instanceof UnauthorizedError;
}

function resourceOf(agentUrl: string): string {
  const resource = canonicalResource(agentUrl);
  if (!resource) throw new ClientError('AGENT_UNAVAILABLE', `${agentUrl} is not an http(s) URL.`);
  return resource;
}

function cacheFor(options: Pick<SessionOptions, 'files' | 'now'>): TokenCache {
  return new TokenCache({ files: options.files, now: options.now });
}

/**
 * What the agent said in the body the SDK quotes (`Streamable HTTP error: Error POSTing to endpoint: {…}`): its OAuth
 * `error_description` when it sent one (escaped where the CLI prints it, as all of another program's text), else the
 * SDK's message, on one line. Found
 * in review (s30ux): a 421 for a URL the agent is not published at printed the SDK's wording and the raw JSON around
 * "CalendarAgent is published as http://127.0.0.1:8412/mcp; connect to that URL."
 */
function agentSaid(error: StreamableHTTPError): string {
  const body = /^(?:Streamable HTTP error: )?Error POSTing to endpoint: (\{.*\})$/s.exec(error.message)?.[1];
  if (body !== undefined) {
    try {
      const said = (JSON.parse(body) as { error_description?: unknown }).error_description;
      if (typeof said === 'string' && said.trim() !== '') return oneLine(said);
    } catch {
      // Not JSON: the message as the SDK gave it.
    }
  }
  return oneLine(error.message);
}

/** Errors as the user should read them: what failed and where, never a token. */
function asClientError(error: unknown, agentUrl: string): unknown {
  if (isClientError(error)) return error;
  if (error instanceof StreamableHTTPError) {
    return new ClientError('AGENT_UNAVAILABLE', `CalendarAgent at ${agentUrl} answered ${error.code === undefined ? 'unexpectedly' : `HTTP ${error.code}`}: ${agentSaid(error)}`, {
      cause: error,
    });
  }
  if (error instanceof UnauthorizedError) {
    return new ClientError('AUTHORIZATION_FAILED', `CalendarAgent at ${agentUrl} did not accept the authorization: ${oneLine(error.message)}`, { cause: error });
  }
  // No answer within the bound: the HTTP request's (bounded-fetch.ts), or the SDK's own for an MCP request (connect.ts).
  const timedOut = requestTimedOut(error);
  if (timedOut) return noAnswerInTime(agentUrl, timedOut.ms, timedOut.url, error);
  if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) {
    const ms = (error.data as { timeout?: unknown } | undefined)?.timeout;
    return noAnswerInTime(agentUrl, typeof ms === 'number' ? ms : DEFAULT_REQUEST_TIMEOUT_MS, agentUrl, error);
  }
  if (error instanceof McpError) return new ClientError('TOOL_FAILED', oneLine(error.message), { cause: error });
  const named = refusedResourceOf(error);
  if (named !== undefined) return foreignResourceMetadata(agentUrl, named, error);
  const network = networkErrorCode(error);
  if (network === UNSAFE_PORT) return unsafePort(agentUrl, error);
  if (network) return new ClientError('AGENT_UNAVAILABLE', `Cannot reach ${agentUrl} or its authorization server (${network}).`, { cause: error });
  // A deployment behind an https reverse proxy with a private CA (found at stop 20: it said only "fetch failed").
  const untrusted = certificateErrorCode(error);
  if (untrusted) {
    return new ClientError(
      'AGENT_UNAVAILABLE',
      `Cannot reach ${agentUrl} or its authorization server: the https certificate it presented is not trusted here (${untrusted}). With a private CA, give its certificate in NODE_EXTRA_CA_CERTS.`,
      { cause: error },
    );
  }
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return new ClientError('AGENT_UNAVAILABLE', `A request timed out talking to ${agentUrl} or its authorization server.`, { cause: error });
  }
  return error;
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/**
 * Makes sure the cache holds a delegation CalendarAgent accepts: one MCP
 * initialize with it, refreshing or signing in first when needed (and
 * allowed). For callers that want the token itself (`delegate token`, the
 * stdio agent) rather than a tool call.
 */
export async function ensureDelegation(options: SessionOptions): Promise<void> {
  await withAgent(options, 'use-cache', async () => undefined);
}

/** The refresh token's end, when the delegation lasts longer than it (a new sign-in is needed then, not a new consent). */
export function signInEnd(tokens: { refresh_expires_at?: number; delegation_expires_at?: number }): { signInEndsAt?: number } {
  const { refresh_expires_at: refresh, delegation_expires_at: delegation } = tokens;
  return refresh !== undefined && delegation !== undefined && refresh < delegation ? { signInEndsAt: refresh } : {};
}
