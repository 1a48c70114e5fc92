// Revoking the CLI's stored tokens (RFC 7009) at the authorization server
// that issued them, and no other: its revocation endpoint is read from its
// own metadata (RFC 8414), never from discovery state kept for another
// server. The discovery cached for a resource names whatever server the
// agent's last 401 named, which need not be the issuer of the tokens stored
// beside it (a sign-in that a fake agent started, then abandoned).
import { discoverAuthorizationServerMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { canonicalResource, isAnyLoopbackHost, protectedResourceMetadataUrl } from '../delegation/resource.js';
import {
  addPendingRevocation,
  clientFor,
  deleteTokens,
  endedFor,
  forgetEnded,
  forgetPendingRevocations,
  grantOf,
  replacedBySignIn,
  tokensFor,
  type PendingRevocation,
  type ReplacedSignIn,
  type SignInPlace,
  type StoredClient,
  type StoredTokens,
  type TokenCache,
  type TokenCacheData,
} from './cache.js';
import { boundedFetch } from './bounded-fetch.js';
import { ClientError, certificateErrorCode, networkErrorCode } from './errors.js';
import { sameIssuer } from './provider.js';
import { refreshCachedTokens } from './refresh.js';
import { ForeignListenerError, refuseForeignListener } from '../http/listener-owner.js';

/** How long one revocation or metadata request may take. */
const REVOCATION_TIMEOUT_MS = 15_000;

/** A revocation that got no answer from the authorization server: no connection, or no answer in time. */
export class RevocationUnanswered extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RevocationUnanswered';
  }
}

/**
 * Revokes the refresh token (which ends its delegation) and the access token
 * stored for `resource` from `issuer`, at that issuer's revocation endpoint,
 * as the client they were issued to. Throws with the reason when they could
 * not be revoked there.
 */
export async function revokeStoredTokens(data: TokenCacheData, issuer: string, resource: string, fetchFn: FetchLike): Promise<void> {
  const tokens = tokensFor(data, issuer, resource);
  if (!tokens) return;
  const client = clientFor(data, issuer, tokens);
  if (!client) throw new Error(`no client registration for ${issuer} is stored`);
  await revokeAt(data, issuer, resource, client, [
    ...(tokens.refresh_token ? [{ token: tokens.refresh_token, hint: 'refresh_token' }] : []),
    { token: tokens.access_token, hint: 'access_token' },
  ], fetchFn);
}

/**
 * Revokes a token kept because its revocation failed (cache.ts PendingRevocation) at its issuer, as the client it was
 * issued to: the issuer's stored registration when it is that one (with its secret, if any), else by its id alone,
 * as the public client every registration this CLI makes is (clientFor's rule). Throws with the reason when it could
 * not be revoked; an answer of 200 means it is revoked, or was invalid already (RFC 7009 §2.2): either way, done.
 */
export async function revokePending(data: TokenCacheData, pending: PendingRevocation, fetchFn: FetchLike): Promise<void> {
  const stored = data.clients[pending.issuer];
  const client = stored?.client_id === pending.client_id ? stored : { client_id: pending.client_id, issuer: pending.issuer };
  await revokeAt(data, pending.issuer, pending.resource, client, [{ token: pending.token, hint: pending.token_type_hint }], fetchFn);
}

/** Each of `tokens` revoked at `issuer`'s revocation endpoint as `client`, in turn; throws at the first that is not. */
async function revokeAt(data: TokenCacheData, issuer: string, resource: string, stored: StoredClient, tokens: Array<{ token: string; hint: string }>, fetchFn: FetchLike): Promise<void> {
  const client = stored as StoredClient & { client_secret?: string };
  try {
    refuseForeignListener(issuer);
  } catch (error) {
    if (!(error instanceof ForeignListenerError)) throw error;
    throw new Error(`port ${error.port} is held by a program of another user of this machine (uid ${error.uid}); nothing was sent to it`);
  }
  const bounded = boundedFetch(fetchFn, REVOCATION_TIMEOUT_MS);
  const endpoint = await revocationEndpoint(data, issuer, resource, bounded);
  for (const { token, hint } of tokens) {
    const body = new URLSearchParams({ token, token_type_hint: hint });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (client.client_secret) {
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`;
    } else {
      body.set('client_id', client.client_id);
    }
    let response: Response;
    try {
      response = await bounded(endpoint, { method: 'POST', headers, body });
    } catch (error) {
      throw new RevocationUnanswered(`cannot reach ${endpoint}${networkCode(error)}`);
    }
    // RFC 7009 §2.2: 200 for a revoked or an unknown token alike.
    if (!response.ok) throw new Error(`${endpoint} answered HTTP ${response.status}`);
  }
}

/**
 * After a sign-in's tokens were issued but could not be saved (`error`, CACHE_IO): revokes them at their issuer
 * (RFC 7009; the refresh token ends the delegation), so that no delegation stands that nothing here holds, and says
 * so. `unsaved` is the cache as it would have been, in memory (CacheOAuthProvider.unsavedSignIn). Found in review,
 * s25faults: on a full disk the tokens were dropped unrevoked, a family alive for up to 30 days.
 */
export async function signInNotKept(error: ClientError, unsaved: TokenCacheData, issuer: string, resource: string, fetchFn: FetchLike): Promise<ClientError> {
  try {
    await revokeStoredTokens(unsaved, issuer, resource, fetchFn);
  } catch (failure) {
    const why = failure instanceof Error ? failure.message : String(failure);
    return new ClientError(
      'CACHE_IO',
      `${error.message} The sign-in was not kept, and its tokens could not be revoked (${why}): the delegation stands at ${issuer} until it ends; revoke it there (\`delegate grants revoke\`), free some space and sign in again.`,
      { cause: error },
    );
  }
  return new ClientError('CACHE_IO', `${error.message} The sign-in was not kept: its tokens were revoked at ${issuer}. Free some space and run the command again.`, { cause: error });
}

/**
 * After a sign-in saved its tokens in place of tokens issued to another client (`replaced`, cache.ts
 * setSignInWithClient), revokes those at their issuer (RFC 7009) as the client they were issued to:
 * a sign-in that ran at the same time and registered a client of its own, whose grant the server keeps apart from this
 * one's, and which nothing here holds any more. Found in review, s26: two `delegate login` at once left the one saved
 * first standing at the server, and `grants list` showed two delegations after `logout`. Within RETIRE_TIMEOUT_MS;
 * one that cannot be revoked now is kept in `cache` (PendingRevocation), where `delegate logout` and the next sign-in
 * try again (found in review, s27: it was forgotten, and stood until it ended); the line returned says so, naming
 * `logoutCommand`'s line (the CLI's, with this run's profile, ports and data directory; noticed at stop 30: plain
 * `delegate logout` signed out of the default profile and ports).
 */
export async function revokeReplacedSignIn(
  replaced: ReplacedSignIn | undefined,
  fetchFn: FetchLike,
  since: number,
  cache: TokenCache,
  logoutCommand: () => Promise<string> = async () => 'delegate logout',
): Promise<string | undefined> {
  // Only a sign-in saved after this one started was made at the same time. One stored before is the person's own, which
  // signing in again replaces: its grant had ended, or this sign-in would have been given that grant (the server keeps
  // one grant per account, client and agent). Found in review (s26new3): a plain `delegate login` after `grants revoke`
  // revoked the dead tokens again, held the browser's page 3 s, and said a sign-in "made at the same time" stood.
  if (replaced === undefined || replaced.obtainedAt < since) return undefined;
  try {
    await revokeStoredTokens(replaced.cache, replaced.issuer, replaced.resource, withinRetireBound(fetchFn));
    return undefined;
  } catch (error) {
    // Said, not swallowed (found in review, s26new2: with the server slow or down, both sign-ins said "Authorized", and
    // the replaced delegation stood for 30 days with nothing here to end it; RFC 7009 §2.2).
    const why = error instanceof Error ? error.message : String(error);
    if (await keepToRevoke(cache, replaced)) {
      return `A sign-in made at the same time was replaced by this one, and its delegation could not be revoked at ${replaced.issuer} (${why}): it is kept in the token cache, and \`${await logoutCommand()}\` (or the next sign-in) tries again.`;
    }
    return `A sign-in made at the same time was replaced by this one, and its delegation could not be revoked at ${replaced.issuer} (${why}): it stays active there until it expires or is revoked there (\`delegate grants list\` and \`delegate grants revoke\` where that server runs).`;
  }
}

/** Keeps the replaced sign-in's refresh token (else its access token) in the cache as a pending revocation; whether it could. */
async function keepToRevoke(cache: TokenCache, replaced: ReplacedSignIn): Promise<boolean> {
  const tokens = tokensFor(replaced.cache, replaced.issuer, replaced.resource);
  if (tokens === undefined) return false;
  const grant = grantOf(tokens.access_token);
  const pending: PendingRevocation = {
    issuer: replaced.issuer,
    resource: replaced.resource,
    client_id: replaced.clientId,
    ...(tokens.refresh_token !== undefined ? { token: tokens.refresh_token, token_type_hint: 'refresh_token' } : { token: tokens.access_token, token_type_hint: 'access_token' }),
    ...(grant !== undefined ? { grant_id: grant } : {}),
    failed_at: cache.now(),
  };
  return cache.update((data) => addPendingRevocation(data, pending)).then(
    () => true,
    () => false,
  );
}

/**
 * Tries again the revocations kept pending (PendingRevocation) of sign-ins at `issuer`, within `fetchFn`'s bound, and
 * forgets each one revoked (a 200: revoked, or invalid already, RFC 7009 §2.2); the others stay for `logout`.
 */
async function retryPendingRevocations(cache: TokenCache, data: TokenCacheData, issuer: string, current: StoredTokens, fetchFn: FetchLike, since: number): Promise<void> {
  // Not one this sign-in kept a moment ago (failed_at from `since` on): its server has just failed to take it, and a
  // second try would only wait out the bound again (found in review, s27rev1: the sign-in took 3 s longer).
  const mine = (data.pending_revocations ?? []).filter((p) => p.issuer === issuer && p.failed_at < since);
  // One of the grant this sign-in was given (the server keeps one grant per person, client and agent, and may have
  // given it the one left standing) is this sign-in's now: forgotten, not revoked, which would end it.
  const ours = grantOf(current.access_token);
  const revoked = await Promise.all(mine.map((p) => (ours !== undefined && p.grant_id === ours ? Promise.resolve(p.token) : revokePending(data, p, fetchFn).then(() => p.token, () => undefined))));
  const done = new Set(revoked.filter((token) => token !== undefined));
  if (done.size > 0) await cache.update((fresh) => forgetPendingRevocations(fresh, done));
}

/**
 * After a sign-in stored tokens for `resource` from the authorization server discovery now names, retires the
 * sign-ins it replaces:
 *
 * - those an earlier sign-in stored for the same resource from another server, revoked at their own server
 *   (RFC 7009) and forgotten. Nothing would use them again (every path reads the tokens of the issuer discovery
 *   names, and a sign-in ignores cached tokens), so kept they would only be a live credential on disk and a delegation
 *   the person no longer sees; forgotten unrevoked, that delegation would stand at its server with nothing left here to
 *   end it. One that cannot be revoked now stays in the cache, where `delegate logout` tries again at its issuer and
 *   says if it fails.
 * - those of the same agent at its other URLs (replacedBySignIn: the same authorization server, or the local stack,
 *   whose ports moved), once their own server says their grant has ended. Found at the last stop: after CalendarAgent
 *   moved (another --agent-port) and the person signed in at its new URL, `status` went on showing the old URL's
 *   tokens as a delegation, "usable". The authorization server ended their grants when the agent moved
 *   (src/authz/agents.ts registerAgent), so it is asked, not the old URL: an authorization server may serve several
 *   agents (`delegate agents register`), and one of them that answers its metadata with a 5xx, is restarting, stopped
 *   or slow still holds a live delegation (found in review, regress21e: such a failure ended it). See askIssuer.
 * - the tokens of sign-ins replaced before whose revocation failed (PendingRevocation), at this sign-in's server:
 *   revoked now, and forgotten; those it still does not take stay for `delegate logout`.
 *
 * All of it within RETIRE_TIMEOUT_MS, so as not to hold up the sign-in. `since`: when this sign-in started (pending
 * revocations kept from then on are its own, just failed, and are left for `logout`).
 */
export async function retireReplacedSignIns(cache: TokenCache, resource: string, fetchFn: FetchLike, since = Number.POSITIVE_INFINITY): Promise<void> {
  const data = await cache.read();
  const issuer = data.discovery[resource]?.authorizationServerUrl;
  const current = issuer === undefined ? undefined : tokensFor(data, issuer, resource);
  if (issuer === undefined || !current) return;
  const signIn = { issuer, resource };
  // What a replaced sign-in needs (its server asked, its revocation) ends within one bound, all of them.
  const quick = withinRetireBound(fetchFn);
  const others = Object.entries(data.tokens).flatMap(([i, byResource]) => Object.keys(byResource).map((r) => ({ issuer: i, resource: r })));
  // Revocations a replaced sign-in left pending at this sign-in's server, which answers: tried again beside the rest.
  const retried = retryPendingRevocations(cache, data, issuer, current, quick, since).catch(() => undefined);
  const retired = await Promise.all(
    others.map(async (old): Promise<SignInPlace | undefined> => {
      if (old.resource === resource) {
        if (old.issuer === issuer) return undefined;
        return (await revokeStoredTokens(data, old.issuer, old.resource, quick).then(() => true, () => false)) ? old : undefined;
      }
      if (!replacedBySignIn(signIn, old)) return undefined;
      const audience = tokensFor(data, old.issuer, old.resource)?.resource ?? old.resource;
      // Tokens its server issued for the resource this sign-in's are for are of the delegation just given, or one the
      // new tokens serve in full (the server keeps one grant per person, client and resource): kept under another URL
      // where no agent of that server answers, they are forgotten, never revoked nor refreshed (which could end it).
      if (old.issuer === issuer && audience === current.resource) {
        return (await agentAnswersAt(old, audience, boundedFetch(quick, PROBE_TIMEOUT_MS))) ? undefined : old;
      }
      return (await askIssuer(cache, data, old, signIn, quick)) === 'ended' ? old : undefined;
    }),
  );
  await retried;
  const gone = retired.filter((old) => old !== undefined);
  if (gone.length === 0) return;
  await cache.update((fresh) => {
    for (const old of gone) {
      // The note that their delegation ended goes with them: this sign-in replaces it (setSignInTokens' rule).
      forgetEnded(fresh, old.issuer, old.resource);
      if (tokensFor(fresh, old.issuer, old.resource)?.access_token === tokensFor(data, old.issuer, old.resource)?.access_token) deleteTokens(fresh, old.issuer, old.resource);
    }
  });
}

/** How long retiring the sign-ins one replaced may take, all together: it must not hold up the sign-in. */
const RETIRE_TIMEOUT_MS = 3_000;

/** `fetchFn` with every request through it ended RETIRE_TIMEOUT_MS from now, all of them within that one bound, as well as on the caller's own signal. */
function withinRetireBound(fetchFn: FetchLike): FetchLike {
  const deadline = AbortSignal.timeout(RETIRE_TIMEOUT_MS);
  return (url, init) => fetchFn(url, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, deadline]) : deadline });
}
/** How much of that reading an agent's metadata may take. */
const PROBE_TIMEOUT_MS = 1_500;

/**
 * Whether the delegation of the tokens kept at `old` has ended, as their own authorization server says: a refresh with
 * their refresh token (RFC 6749 §6) that it refuses with 400 invalid_grant (§5.2: the grant was revoked, or expired).
 * New tokens are a live delegation: stored (refreshCachedTokens), kept. Any other answer, none in time, a network
 * failing, no refresh token: kept as they are. One case more, with no server to ask: the local stack whose
 * authorization server moved too (every port). Nothing listens at the old issuer's loopback port, and the server of
 * this sign-in verifies the old access token with its own published keys (RFC 7517), which the data directory holds
 * (keys live in the store): it is the same authorization server at its new address, and tokens naming the old one are
 * of no use to any agent; forgotten. The old tokens are never sent to any server but their own.
 */
async function askIssuer(cache: TokenCache, data: TokenCacheData, old: SignInPlace, signIn: SignInPlace, quick: FetchLike): Promise<'ended' | 'kept'> {
  const stored = tokensFor(data, old.issuer, old.resource)!;
  try {
    refuseForeignListener(old.issuer);
    await refreshCachedTokens({ cache, issuer: old.issuer, resource: old.resource, now: cache.now, rejectedAccessToken: stored.access_token, fetchFn: quick, requestTimeoutMs: RETIRE_TIMEOUT_MS });
  } catch (error) {
    if (old.issuer !== signIn.issuer && networkErrorCode(error) === 'ECONNREFUSED') return (await sameKeys(data, signIn, stored.access_token, quick)) ? 'ended' : 'kept';
    return 'kept';
  }
  const after = await cache.read();
  return !tokensFor(after, old.issuer, old.resource) && endedFor(after, old.issuer, old.resource)?.error === 'invalid_grant' ? 'ended' : 'kept';
}

/** Whether `accessToken` verifies with a key the authorization server of `signIn` publishes (its metadata's jwks_uri). */
async function sameKeys(data: TokenCacheData, signIn: SignInPlace, accessToken: string, quick: FetchLike): Promise<boolean> {
  const jwksUri = data.discovery[signIn.resource]?.authorizationServerMetadata?.jwks_uri;
  if (typeof jwksUri !== 'string') return false;
  try {
    const response = await quick(jwksUri, { headers: { accept: 'application/json' } });
    if (!response.ok) return false;
    const { compactVerify, createLocalJWKSet } = await import('jose');
    await compactVerify(accessToken, createLocalJWKSet((await response.json()) as Parameters<typeof createLocalJWKSet>[0]));
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether an agent of `old.issuer` still answers at `old.resource`: its protected resource metadata (RFC 9728) names
 * that authorization server and the resource the tokens are for (`audience`: the URL, or one it lies within). Asked
 * only before forgetting a copy of the new sign-in's delegation kept under another URL, which loses nothing at the
 * server: a deployment elsewhere that cannot be reached now is taken as there. Another user's program on a loopback
 * port is asked nothing.
 */
async function agentAnswersAt(old: SignInPlace, audience: string, fetchFn: FetchLike): Promise<boolean> {
  let response: Response;
  try {
    refuseForeignListener(old.resource);
    response = await fetchFn(protectedResourceMetadataUrl(old.resource), { headers: { accept: 'application/json' } });
  } catch (error) {
    if (error instanceof ForeignListenerError) return false;
    return !isAnyLoopbackHost(new URL(old.resource).hostname);
  }
  const metadata = (await response.json().catch(() => undefined)) as { resource?: unknown; authorization_servers?: unknown } | undefined;
  return (
    response.ok &&
    typeof metadata?.resource === 'string' &&
    [old.resource, audience].some((named) => canonicalResource(named) === canonicalResource(metadata.resource as string)) &&
    Array.isArray(metadata.authorization_servers) &&
    metadata.authorization_servers.some((named) => sameIssuer(named, old.issuer))
  );
}

/**
 * The issuer's revocation endpoint: from the discovery state cached for the
 * resource when that state is the issuer's own, else from the issuer's
 * metadata, fetched now and accepted only if it names the same issuer
 * (RFC 8414 §3.3).
 */
async function revocationEndpoint(data: TokenCacheData, issuer: string, resource: string, fetchFn: FetchLike): Promise<string> {
  const cached = data.discovery[resource];
  let metadata: Record<string, unknown> | undefined;
  if (cached?.authorizationServerUrl === issuer && cached.authorizationServerMetadata) {
    metadata = cached.authorizationServerMetadata as Record<string, unknown>;
  } else {
    try {
      metadata = (await discoverAuthorizationServerMetadata(issuer, { fetchFn })) as Record<string, unknown> | undefined;
    } catch (error) {
      throw new RevocationUnanswered(`cannot read the metadata of ${issuer}${networkCode(error)}`);
    }
    if (!metadata) throw new Error(`${issuer} publishes no authorization server metadata`);
    if (!sameIssuer(metadata.issuer, issuer)) throw new Error(`the metadata at ${issuer} names another issuer`);
  }
  if (typeof metadata.revocation_endpoint !== 'string') throw new Error(`${issuer} names no revocation endpoint`);
  return metadata.revocation_endpoint;
}

function networkCode(error: unknown): string {
  const code = networkErrorCode(error);
  if (code) return ` (${code})`;
  // A deployment behind an https proxy with a private CA (found in review, regress20c: it said only "cannot reach").
  const untrusted = certificateErrorCode(error);
  if (untrusted) return `: its https certificate is not trusted here (${untrusted}); with a private CA, give its certificate in NODE_EXTRA_CA_CERTS`;
  const name = (error as { name?: unknown }).name;
  return name === 'TimeoutError' ? ' (no answer in time)' : '';
}
