// Refreshing the cached tokens without the user, once across processes:
// under tokens.lock, re-read the cache (another process may have refreshed
// already, and its refresh token has then rotated), and only if the tokens
// there are still the stale ones, spend the refresh token (RFC 6749 §6,
// OAuth 2.1 §4.3.1) and write the new pair before releasing the lock.
//
// A spent refresh token that stays in the cache is a replay waiting to happen
// (the next use revokes the whole family), so the room for the new pair is
// taken on disk before the refresh token is posted: with no room, nothing is
// sent (CACHE_IO). Should the write still fail, the new pair is kept in this
// process's memory: it serves the rest of the run, and the spent token is
// never posted again from here; the caller is told the sign-in was not saved.
// Ctrl-C, SIGTERM and SIGHUP are held from just before the refresh token is
// posted until its outcome is written and the lock released (held-signals.ts):
// a command ended there would leave the spent token behind all the same.
// A cache that a rename cannot replace at all (a symbolic link, a single file
// mounted there) is found with the room, so that nothing is sent for it
// either. A refusal (the delegation ended) that cannot be written is kept in
// memory the same way: the run says that the delegation ended, and that the
// cache could not be told (refusalNotSaved).
import { refreshAuthorization } from '@modelcontextprotocol/sdk/client/auth.js';
import { InvalidClientError, InvalidGrantError, OAuthError, UnauthorizedClientError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { boundedFetch } from './bounded-fetch.js';
import { clientFor, endedFor, endTokens, isExpired, setTokens, tokensFor, unreplaceableCache, unreplaceableCause, type EndedDelegation, type StoredTokens, type TokenCache } from './cache.js';
import { ClientError, codeAmong, isClientError } from './errors.js';
import { signalHold, type SignalHold } from './held-signals.js';
import { storedTokensFrom } from './provider.js';
import { DEFAULT_REQUEST_TIMEOUT_MS } from './quick-call.js';
import { TokenResponseNotes } from './token-notes.js';

export interface RefreshInput {
  cache: TokenCache;
  /** The authorization server that issued the tokens (their stamp). */
  issuer: string;
  /** The cache key of the resource (canonical MCP server URL). */
  resource: string;
  now: () => number;
  /**
   * The access token to replace even if it looks unexpired: one a resource server has just refused, or one whose
   * delegation `login` asks about before keeping its scopes (session.ts standingScopes).
   */
  rejectedAccessToken?: string;
  fetchFn?: FetchLike;
  /** Cap on each request to the authorization server (ms); DEFAULT_REQUEST_TIMEOUT_MS unless told. */
  requestTimeoutMs?: number;
  /** Notes what the token response says beyond the SDK's fields. */
  notes?: TokenResponseNotes;
  /**
   * Told when the new tokens could not be saved (CACHE_IO, its message for the
   * person): they are returned all the same, for this run. Without it, that
   * error is thrown instead (the new tokens still serve this process's next
   * refresh, which never posts the spent token again).
   */
  notSaved?: (error: ClientError) => void;
  /** What holds the process's ending signals while a refresh is in flight; this process's own signals unless told. */
  signals?: SignalHold;
}

/** New tokens this process got but could not write: by cache file, issuer and resource, with the entry they replace. */
const unsavedRefreshes = new Map<string, { replaced: StoredTokens; fresh: StoredTokens }>();

function unsavedKey(cache: TokenCache, issuer: string, resource: string): string {
  return unsavedKeyOf(cache.files.tokenCache, issuer, resource);
}

function unsavedKeyOf(tokenCache: string, issuer: string, resource: string): string {
  return JSON.stringify([tokenCache, issuer, resource]);
}

/**
 * Refusals (the delegation ended: RFC 6749 §5.2) this process got but could not note in the cache, by cache file,
 * issuer and resource: the entry refused (still on disk, its refresh token dead), the note, and the write's failure.
 * Found in review (s31fault): the failure (CACHE_IO) was all the command said, and the next ones posted the dead
 * refresh token again and said the same, never that the sign-in had ended.
 */
const unsavedRefusals = new Map<string, { refused: StoredTokens; ended: EndedDelegation; notSaved: ClientError }>();

/**
 * A refusal of the entry `stored` that this process could not note in the cache at `tokenCache` (unsavedRefusals):
 * why the delegation ended, and the write's failure; undefined when there is none, or the cache holds another entry
 * now (a sign-in since).
 */
export function refusalNotSaved(tokenCache: string, issuer: string, resource: string, stored: StoredTokens | undefined): { ended: EndedDelegation; notSaved: ClientError } | undefined {
  const unsaved = unsavedRefusals.get(unsavedKeyOf(tokenCache, issuer, resource));
  return unsaved && stored && sameEntry(stored, unsaved.refused) ? unsaved : undefined;
}

/** Whether the cache's entry is still the one a refresh of this process replaced, in memory only (no other process has written since). */
function sameEntry(stored: StoredTokens, replaced: StoredTokens): boolean {
  return stored.obtained_at === replaced.obtained_at && stored.expires_at === replaced.expires_at && stored.issuer === replaced.issuer;
}

/**
 * Fresh tokens for the resource, or undefined when they cannot be had without
 * the user (no refresh token, or the server says it is dead, in which case
 * the dead tokens are removed from the cache, and why noted: endedFor).
 */
export async function refreshCachedTokens(input: RefreshInput): Promise<StoredTokens | undefined> {
  const { cache, issuer, resource, now } = input;
  const notes = input.notes ?? new TokenResponseNotes(now);
  // Bounded whoever calls: the request is made holding tokens.lock, and a server that accepts and never
  // answers would otherwise hold it for Node's 300 s, long after other processes gave up waiting.
  const fetchFn = notes.observe(boundedFetch(input.fetchFn ?? fetch, input.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS));
  const key = unsavedKey(cache, issuer, resource);
  const signals = input.signals ?? signalHold();
  try {
    return await refreshUnderLock(input, fetchFn, notes, key, signals);
  } finally {
    signals.release(); // after the lock is released: a held signal then ends a process that left nothing half done
  }
}

async function refreshUnderLock(input: RefreshInput, fetchFn: FetchLike, notes: TokenResponseNotes, key: string, signals: SignalHold): Promise<StoredTokens | undefined> {
  const { cache, issuer, resource, now } = input;
  return cache.withLock(async (txn) => {
    const data = await txn.read();
    let onDisk = tokensFor(data, issuer, resource);
    if (!onDisk) return undefined;
    let current = onDisk;
    // Refused already in this run, and not noted on disk: the refresh token there is dead, and is not posted again.
    if (refusalNotSaved(cache.files.tokenCache, issuer, resource, onDisk)) return undefined;
    const unsaved = unsavedRefreshes.get(key);
    if (unsaved && sameEntry(current, unsaved.replaced)) {
      // The cache still holds the refresh token this process spent: what replaced it is here, in memory. Try to save it now.
      current = unsaved.fresh;
      setTokens(data, resource, current);
      try {
        await txn.write(data);
        unsavedRefreshes.delete(key);
        onDisk = current;
      } catch (error) {
        if (!isClientError(error, 'CACHE_IO')) throw error;
      }
    } else if (unsaved) {
      unsavedRefreshes.delete(key); // another process has written the cache since: its entry counts
    }
    const stillStale = isExpired(current, now()) || current.access_token === input.rejectedAccessToken;
    if (!stillStale) return current; // another process refreshed while we waited for the lock
    if (!current.refresh_token) return undefined;

    const discovery = data.discovery[resource];
    // As the client they were issued to, which need not be the issuer's stored one (cache.ts clientFor).
    const client = clientFor(data, issuer, current);
    if (!client || (discovery && discovery.authorizationServerUrl !== issuer)) return undefined;

    // The room for what the answer brings, before the refresh token is spent: a full disk stops us here, with nothing sent.
    const room = await txn.reserve(data).catch((error: unknown) => {
      if (!isClientError(error, 'CACHE_IO')) throw error;
      const unreplaceable = unreplaceableCause(error); // a symbolic link, a mount point: no free space helps
      if (unreplaceable) throw unreplaceableCache(unreplaceable, 'The access token was not refreshed (nothing was sent).');
      throw new ClientError('CACHE_IO', `${error.message} The access token was not refreshed (nothing was sent); free some space and run the command again.`, { cause: error });
    });
    let response;
    // From here until the outcome is written, ending the process would leave a spent token in the cache.
    signals.hold();
    try {
      response = await refreshAuthorization(issuer, {
        metadata: discovery?.authorizationServerMetadata,
        clientInformation: client,
        refreshToken: current.refresh_token,
        resource: current.resource, // verbatim, as auth() sent it (a URL object would gain a trailing slash)
        fetchFn,
      });
    } catch (error) {
      // RFC 6749 §5.2: the grant is dead (revoked, expired, reused) or the client is unknown; only a new login helps.
      // The refusal is kept in the tokens' place, for the commands that then find none to say why (EndedDelegation).
      // Only as §5.2 sends it, with 400 (401 for the client): a 5xx is the server's fault whatever its body says, and the
      // refresh token is kept for the next try (found in review, regress19b: a 503 `invalid_grant` ended the sign-in).
      const status = notes.takeRefusalStatus();
      const refused = status === 400 || status === 401;
      if (refused && (error instanceof InvalidGrantError || error instanceof InvalidClientError || error instanceof UnauthorizedClientError)) {
        endTokens(data, issuer, resource, { refused_at: now(), error: error.errorCode, ...(error.message ? { error_description: error.message } : {}) });
        if (!(error instanceof InvalidGrantError) && data.clients[issuer]?.client_id === client.client_id) delete data.clients[issuer];
        unsavedRefreshes.delete(key);
        try {
          await room.write(data);
        } catch (failure) {
          if (!isClientError(failure, 'CACHE_IO')) throw failure;
          // The refusal is still the finding: the caller that finds no tokens says the delegation ended, and that the
          // cache could not be told (refusalNotSaved, session.ts endedDelegation), never the write's failure alone.
          unsavedRefusals.set(key, { refused: onDisk, ended: endedFor(data, issuer, resource)!, notSaved: failure });
        }
        return undefined;
      }
      throw new ClientError('REFRESH_FAILED', `Could not refresh the access token at ${issuer}: ${refreshFailure(error)}`, { cause: error });
    }
    const extras = notes.take(response.access_token);
    const fresh = storedTokensFrom({ ...response, issuer }, { issuer, resource: current.resource, now: now() }, {
      refreshExpiresAt: extras.refreshExpiresAt ?? current.refresh_expires_at,
      delegationExpiresAt: extras.delegationExpiresAt ?? current.delegation_expires_at,
      authorizationDetails: extras.authorizationDetails ?? current.authorization_details,
      // Said at sign-in only: a refresh keeps the name the sign-in stored (the grant, and so its account, is the same).
      userName: extras.userName ?? current.user_name,
    });
    // Issued to the same client: the next refresh goes as it too.
    if (current.client_id !== undefined) fresh.client_id = current.client_id;
    const replaced = tokensFor(data, issuer, resource)!;
    setTokens(data, resource, fresh);
    try {
      await room.write(data);
      unsavedRefreshes.delete(key);
    } catch (error) {
      if (!isClientError(error, 'CACHE_IO')) throw error;
      // The refresh token in the cache is spent now: never post it again from this process, and say that the sign-in is not saved.
      unsavedRefreshes.set(key, { replaced: unsavedRefreshes.get(key)?.replaced ?? replaced, fresh });
      const notSaved = new ClientError(
        'CACHE_IO',
        `${error.message} The refreshed sign-in could not be saved: this command uses it, but the refresh token stored there is spent, so the next command will ask you to run \`delegate login\`.`,
        { cause: error },
      );
      if (!input.notSaved) throw notSaved;
      input.notSaved(notSaved);
    }
    return fresh;
  });
}

/** Codes of a connection that was never made: the request, refresh token and all, did not leave this process. */
const NOT_CONNECTED_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'FOREIGN_LISTENER']);

/**
 * Whether a failed refresh (REFRESH_FAILED) spent nothing at an authorization
 * server: the connection was never made, or what answered is not one (an
 * answer with no OAuth error: another program on the port). Only then may a
 * caller look for the servers and refresh again in the same run: otherwise the
 * refresh token may have been spent, and posting it again is a replay.
 */
export function refreshSpentNothing(error: unknown): boolean {
  if (!isClientError(error, 'REFRESH_FAILED')) return false;
  const cause = error.cause;
  if (cause instanceof Error && /^HTTP \d{3}:/.test(cause.message)) return true; // as refreshFailure reads it: no OAuth error in the answer
  return codeAmong(cause, NOT_CONNECTED_CODES) !== undefined;
}

/**
 * Why a refresh failed, in words that never carry the response body: the
 * SDK's message for an answer that is not an OAuth error quotes the whole
 * body (an HTML page when another program holds the port), which has no
 * place in a one-line error.
 */
function refreshFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const status = /^HTTP (\d{3}):/.exec(message)?.[1];
  if (status !== undefined) return `it answered HTTP ${status} with no OAuth error.`;
  if (error instanceof OAuthError && !/Invalid OAuth error response/.test(message)) {
    const description = message.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, 200);
    return `${error.errorCode}${description ? `: ${description}` : ''}`;
  }
  const name = (error as { name?: unknown }).name;
  if (name === 'TimeoutError' || name === 'AbortError') return 'it did not answer in time.';
  const code = (error as { cause?: { code?: unknown } }).cause?.code;
  return typeof code === 'string' ? `cannot reach it (${code}).` : 'it did not answer as an authorization server does.';
}
