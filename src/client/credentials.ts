// The user's stored delegation as the CLI's account commands see it: a valid
// access token for scripts (`delegate token`), what is stored and until when
// (`delegate status`), and signing out (`delegate logout`: RFC 7009
// revocation at the authorization server, then the cache file removed).
// DELEGATE_TOKEN, when set, stands in front of all of this.
import { unlink } from 'node:fs/promises';
import { decodeJwt } from 'jose';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { canonicalResource } from '../delegation/resource.js';
import type { AuthorizationDetail } from '../delegation/tokens.js';
import { TokenCache, clientFor, damagedCacheNeedsLogin, forgetPendingRevocations, forgetResource, isExpired, tokensFor, unreplaceableCache, type StoredClient, type StoredTokens, type TokenCacheData } from './cache.js';
import { ClientError, fileErrorText, isClientError } from './errors.js';
import { isErrno, NotReplaceableError, refuseUnreplaceable } from './private-files.js';
import { refreshCachedTokens } from './refresh.js';
import { resendingFetch } from './servers-gone.js';
import { RevocationUnanswered, revokePending, revokeStoredTokens } from './revocation.js';
import { endedDelegation, ensureDelegation, setAsideDamagedCache, signInEnd, type SessionOptions } from './session.js';

/** A token printed for a script should outlive the script's first requests. */
export const TOKEN_MIN_REMAINING_MS = 120_000;

/**
 * A valid access token for CalendarAgent: DELEGATE_TOKEN if set; else the
 * cached one, refreshed first if it has less than two minutes left; else,
 * when the session may sign in, a new delegation. Otherwise
 * AUTHORIZATION_REQUIRED (delegationEnded's when the server refused to renew it).
 */
export async function validAccessToken(options: SessionOptions): Promise<string> {
  if (options.envToken !== undefined) return options.envToken;
  const resource = resourceKey(options.agentUrl);
  const cache = new TokenCache({ files: options.files, now: options.now });
  let fromCache: string | undefined;
  try {
    fromCache = await cachedOrRefreshed(cache, resource, options);
  } catch (error) {
    // An unreadable cache is never overwritten: kept aside before a new sign-in, else authorization is required.
    if (!isClientError(error, 'CACHE_CORRUPT')) throw error;
    if (!options.presentLoginUrl) throw damagedCacheNeedsLogin(error);
    await setAsideDamagedCache(options);
  }
  if (fromCache) return fromCache;
  if (!options.presentLoginUrl) {
    // A delegation whose renewal was refused (in this run or before) is said to have ended, and why.
    const ended = await endedDelegation(options);
    if (ended) throw ended;
    // The finding alone as the detail, for a command that names its own `delegate login` (with its ports, profile).
    const finding = `No delegation for CalendarAgent at ${options.agentUrl} is stored.`;
    throw new ClientError('AUTHORIZATION_REQUIRED', `${finding} Run \`delegate login\` first.`, { detail: finding });
  }
  await ensureDelegation(options);
  const signedIn = await cachedOrRefreshed(cache, resource, options);
  if (!signedIn) throw new ClientError('AUTHORIZATION_FAILED', 'Signed in, but the token cache holds no token afterwards.');
  return signedIn;
}

async function cachedOrRefreshed(cache: TokenCache, resource: string, options: SessionOptions): Promise<string | undefined> {
  const data = await cache.read();
  const issuer = data.discovery[resource]?.authorizationServerUrl;
  const tokens = issuer === undefined ? undefined : tokensFor(data, issuer, resource);
  if (!issuer || !tokens) return undefined;
  if (!isExpired(tokens, options.now(), TOKEN_MIN_REMAINING_MS)) return tokens.access_token;
  await options.beforeRefresh?.(issuer);
  const fresh = await refreshCachedTokens({
    cache,
    issuer,
    resource,
    now: options.now,
    // Refresh this token even if it still has a little life: a script is about to use it.
    rejectedAccessToken: tokens.access_token,
    ...(options.fetchFn || options.serversGone ? { fetchFn: resendingFetch(options.fetchFn ?? fetch, options.serversGone) } : {}),
    ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
    ...(options.refreshNotSaved ? { notSaved: options.refreshNotSaved } : {}),
  });
  return fresh?.access_token;
}

/** One stored delegation, as `delegate status` shows it. */
export interface StoredDelegation {
  issuer: string;
  /** The agent's URL, as the cache keys its sign-in (canonicalResource of the URL it was reached at): what --agent-url selects. */
  agentUrl: string;
  /** The tokens' audience: the resource the agent's protected resource metadata named, which may be a parent of agentUrl. */
  resource: string;
  resourceName: string | undefined;
  /** The user the token speaks for (`sub`), and the client it was issued to. */
  user: string | undefined;
  /** The account's name, if the server said at sign-in; another program's text, shown only through printable(). */
  userName: string | undefined;
  clientId: string | undefined;
  clientName: string | undefined;
  grantId: string | undefined;
  scopes: string[];
  /** Access token expiry (epoch ms); refreshed without the user while the delegation lasts. */
  expiresAt: number | undefined;
  /** When the delegation ends (epoch ms), unless revoked, if the server said. */
  delegationEndsAt: number | undefined;
  /** When this sign-in ends (the refresh token's expiry), when that is before the delegation's end. */
  signInEndsAt?: number;
  /** Whether an expired access token can be renewed without the user: a refresh token is stored and the delegation has not ended. */
  renewable: boolean;
  /** Whether the delegation can still be used: the access token is valid, or it can be renewed. */
  usable: boolean;
  authorizationDetails: AuthorizationDetail[];
}

/** A delegation whose renewal the authorization server refused since the last sign-in (cache.ts EndedDelegation), as `delegate status` shows it. */
export interface EndedStoredDelegation {
  issuer: string;
  /** The agent's URL (the cache's key for it), as StoredDelegation's. */
  agentUrl: string;
  /** The agent's URL (the cache's key for it). */
  resource: string;
  resourceName: string | undefined;
  /** When the refusal came (epoch ms). */
  refusedAt: number;
  /** The refusal's OAuth error code, and its description as sent (not made printable: shown through endedReason). */
  error: string;
  errorDescription: string | undefined;
}

/** Every delegation in the cache, read without touching the network. */
export async function storedDelegations(files: { tokenCache: string; tokenLock: string }, now: () => number): Promise<StoredDelegation[]> {
  return (await storedSignIns(files, now)).delegations;
}

/** Every delegation in the cache, and those whose renewal was refused since, read without touching the network. */
export async function storedSignIns(
  files: { tokenCache: string; tokenLock: string },
  now: () => number,
): Promise<{ delegations: StoredDelegation[]; ended: EndedStoredDelegation[]; pending: PendingStoredRevocation[] }> {
  const data = await new TokenCache({ files, now }).read();
  const ended: EndedStoredDelegation[] = [];
  for (const [issuer, byResource] of Object.entries(data.ended ?? {})) {
    for (const [resource, refusal] of Object.entries(byResource)) {
      const resourceName = data.discovery[resource]?.resourceMetadata?.resource_name;
      ended.push({ issuer, agentUrl: resource, resource, resourceName, refusedAt: refusal.refused_at, error: refusal.error, errorDescription: refusal.error_description });
    }
  }
  const pending = (data.pending_revocations ?? []).map((p) => ({ issuer: p.issuer, agentUrl: p.resource }));
  return { delegations: delegationsIn(data, now()), ended, pending };
}

/** A replaced sign-in's token still to be revoked (cache.ts PendingRevocation), without the token. */
export interface PendingStoredRevocation {
  issuer: string;
  /** The agent's URL it was kept under (the cache's key), as StoredDelegation's. */
  agentUrl: string;
}

function delegationsIn(data: TokenCacheData, at: number): StoredDelegation[] {
  const out: StoredDelegation[] = [];
  for (const [issuer, byResource] of Object.entries(data.tokens)) {
    for (const [resource, tokens] of Object.entries(byResource)) {
      const claims = readClaims(tokens.access_token);
      const client = clientFor(data, issuer, tokens) as (StoredClient & { client_name?: string }) | undefined;
      // Once the refresh token's lifetime is over the delegation has ended: nothing renews it but a new sign-in.
      const renewable = tokens.refresh_token !== undefined && (tokens.refresh_expires_at === undefined || tokens.refresh_expires_at > at);
      const accessValid = tokens.expires_at === undefined || tokens.expires_at > at;
      out.push({
        issuer,
        agentUrl: resource,
        resource: tokens.resource ?? resource,
        resourceName: data.discovery[resource]?.resourceMetadata?.resource_name,
        user: typeof claims.sub === 'string' ? claims.sub : undefined,
        userName: tokens.user_name,
        clientId: typeof claims.client_id === 'string' ? claims.client_id : client?.client_id,
        clientName: typeof client?.client_name === 'string' ? client.client_name : undefined,
        grantId: typeof claims.grant_id === 'string' ? claims.grant_id : undefined,
        scopes: (tokens.scope ?? (typeof claims.scope === 'string' ? claims.scope : '')).split(' ').filter(Boolean),
        expiresAt: tokens.expires_at,
        delegationEndsAt: tokens.delegation_expires_at ?? tokens.refresh_expires_at,
        ...signInEnd(tokens),
        renewable,
        usable: accessValid || renewable,
        authorizationDetails: tokens.authorization_details ?? [],
      });
    }
  }
  return out;
}

/** What a token says about itself, for display only: the cache is private and the servers check the signature. */
function readClaims(token: string): Record<string, unknown> {
  try {
    return decodeJwt(token);
  } catch {
    return {}; // an opaque token from another server
  }
}

export interface LogoutResult {
  /**
   * Tokens revoked at their authorization server. `delegationEnded`: their revocation ends the delegation (grant)
   * they belong to (RFC 7009 §2.1, delegate's policy): a refresh token was among them, or the access token names its
   * grant (`grantId`, delegate's token: DESIGN.md, Tokens), which delegate's authorization server ends with it (see
   * src/authz/revoke.ts). Otherwise only an opaque access token of another server was revoked, and its delegation
   * may stand.
   */
  revoked: Array<{ issuer: string; resource: string; delegationEnded: boolean; grantId: string | undefined; replaced?: true }>;
  /**
   * Delegations that could not be revoked, and why; their tokens are removed from this computer all the same.
   * `unanswered`: the authorization server could not be reached (RevocationUnanswered).
   * `replaced` (here and in `revoked`): a sign-in another replaced, whose revocation had failed then (PendingRevocation).
   * `grantId` and `clientId`: the delegation its access token named (delegate's `grant_id`) and the client the tokens were
   * issued to, when known: the grant `delegate logout` can end in this computer's own store when its server is down.
   */
  failed: Array<{ issuer: string; resource: string; reason: string; unanswered: boolean; replaced?: true; grantId: string | undefined; clientId: string | undefined }>;
  /**
   * Sign-ins forgotten here without a revocation (`logout --agent-url` only): their delegation is the one another
   * sign-in kept in the cache uses (`heldBy`, the URL signed in at), whose tokens the revocation would end with it.
   */
  kept: Array<{ issuer: string; resource: string; heldBy: string; grantId: string | undefined }>;
  /**
   * Why the cache file could not be deleted once its tokens were dealt with, if so (an immutable file: EPERM; one mounted
   * on its own, or a symbolic link, is refused before anything is revoked).
   */
  notDeleted?: string;
  /** Whether a cache file was there to remove; for one resource, whether anything of it was stored. */
  removed: boolean;
}

/**
 * Revokes every stored refresh token and access token (either ends its
 * delegation and every token derived from it, at delegate's authorization
 * server) at the authorization server that issued it (RFC 7009 §2; see
 * revocation.ts),
 * then deletes the cache file, under the refresh lock so no other process
 * refreshes in between. With `agentUrl`, only what is stored for that agent
 * (`logout --agent-url`): the rest of the cache stays, and so does a
 * delegation a sign-in kept there uses too (sameDelegation): that sign-in is
 * forgotten here, not revoked, which would sign the other out. The tokens of
 * sign-ins another replaced, whose revocation failed then (PendingRevocation),
 * are revoked too, and forgotten.
 */
export async function logout(options: { files: { tokenCache: string; tokenLock: string }; now: () => number; fetchFn?: FetchLike; agentUrl?: string }): Promise<LogoutResult> {
  const cache = new TokenCache({ files: options.files, now: options.now });
  const fetchFn = options.fetchFn ?? fetch;
  const only = options.agentUrl === undefined ? undefined : resourceKey(options.agentUrl);
  return cache.withLock(async (txn) => {
    // A cache that a rename cannot replace or an unlink remove (a file mounted on its own, a symbolic link) is refused
    // before anything is revoked (found in review, s31fix2: revoked, then the cache could not be written or deleted,
    // and the revocation went unsaid, or status went on showing the revoked sign-in as usable).
    await refuseUnreplaceable(options.files.tokenCache).catch((error: unknown) => {
      // The way out for a sign-out: the tokens are in that file, so another data directory has nothing to revoke (found
      // in review, s31fix3: the refresh's advice, "point DELEGATE_HOME at a directory mounted whole", said "nothing to do").
      if (!(error instanceof NotReplaceableError)) throw error;
      const put = error.kind === 'mount point' ? 'Unmount it and put the file back in its directory' : 'Replace the link by the file it names';
      throw unreplaceableCache(error, 'Nothing was revoked.', `${put}, then sign out again.`);
    });
    const data = await txn.read();
    const result: LogoutResult = { revoked: [], failed: [], kept: [], removed: false };
    for (const [issuer, byResource] of Object.entries(data.tokens)) {
      for (const [resource, tokens] of Object.entries(byResource)) {
        if (only !== undefined && resource !== only) continue;
        const grantId = grantIdOf(tokens.access_token);
        const heldBy = only === undefined ? undefined : Object.keys(byResource).find((other) => other !== only && sameDelegation({ resource, tokens }, { resource: other, tokens: byResource[other]! }));
        if (heldBy !== undefined) {
          result.kept.push({ issuer, resource, heldBy, grantId });
          continue;
        }
        try {
          await revokeStoredTokens(data, issuer, resource, fetchFn);
          result.revoked.push({ issuer, resource, delegationEnded: tokens.refresh_token !== undefined || grantId !== undefined, grantId });
        } catch (error) {
          const clientId = clientFor(data, issuer, tokens)?.client_id;
          result.failed.push({ issuer, resource, reason: error instanceof Error ? error.message : String(error), unanswered: error instanceof RevocationUnanswered, grantId, clientId });
        }
      }
    }
    // Sign-ins another replaced whose revocation failed then (cache.ts PendingRevocation): tried again, and forgotten
    // whatever the answer, as this logout forgets its own; each said, as they are.
    const tried = new Set<string>();
    for (const pending of data.pending_revocations ?? []) {
      if (only !== undefined && pending.resource !== only) continue;
      tried.add(pending.token);
      const { issuer, resource } = pending;
      try {
        await revokePending(data, pending, fetchFn);
        const grantId = pending.token_type_hint === 'access_token' ? grantIdOf(pending.token) : undefined;
        result.revoked.push({ issuer, resource, delegationEnded: pending.token_type_hint === 'refresh_token' || grantId !== undefined, grantId, replaced: true });
      } catch (error) {
        const grantId = pending.grant_id ?? (pending.token_type_hint === 'access_token' ? grantIdOf(pending.token) : undefined);
        result.failed.push({ issuer, resource, reason: error instanceof Error ? error.message : String(error), unanswered: error instanceof RevocationUnanswered, replaced: true, grantId, clientId: pending.client_id });
      }
    }
    if (only !== undefined) {
      result.removed = forgetResource(data, only) || tried.size > 0;
      forgetPendingRevocations(data, tried);
      if (result.removed) await txn.write(data);
      return result;
    }
    try {
      await unlink(options.files.tokenCache);
      result.removed = true;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return result;
      // What was revoked is said all the same (found in review, s31fix: a file that could not be unlinked ended the
      // command with "Cannot delete …", the revocations unsaid; one mounted on its own is refused above since s31fix2).
      result.notDeleted = fileErrorText(error);
    }
    return result;
  });
}

/** The grant an access token names (delegate's `grant_id`), for display and comparison only. */
function grantIdOf(accessToken: string): string | undefined {
  const claimed = readClaims(accessToken).grant_id;
  return typeof claimed === 'string' ? claimed : undefined;
}

/**
 * Whether two sign-ins of one authorization server (so of one client registration: one per server) are of one
 * delegation: their access tokens name the same grant, or, where one names none, they are for the same audience
 * (delegate keeps one grant per person, client and resource). Revoking either token ends that grant (RFC 7009 §2.1;
 * at delegate's server any of its tokens, src/authz/revoke.ts), and with it the other sign-in. Two such sign-ins are
 * kept only for an agent whose metadata names a parent of the URLs signed in at (retireReplacedSignIns keeps them
 * while the agent answers at both); delegate's own CalendarAgent answers at its one published URL alone.
 */
function sameDelegation(a: { resource: string; tokens: StoredTokens }, b: { resource: string; tokens: StoredTokens }): boolean {
  const [grantA, grantB] = [grantIdOf(a.tokens.access_token), grantIdOf(b.tokens.access_token)];
  if (grantA !== undefined && grantB !== undefined) return grantA === grantB;
  return canonicalResource(a.tokens.resource ?? a.resource) === canonicalResource(b.tokens.resource ?? b.resource);
}

function resourceKey(agentUrl: string): string {
  const resource = canonicalResource(agentUrl);
  if (!resource) throw new ClientError('AGENT_UNAVAILABLE', `${agentUrl} is not an http(s) URL.`);
  return resource;
}
