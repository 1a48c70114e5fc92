// Refreshing the cached tokens without the user, once across processes:
// under tokens.lock, re-read the cache (another process may have refreshed
// already, and its refresh token has then rotated), and only if the tokens
// there are still the stale ones, spend the refresh token (RFC 6749 §6,
// OAuth 2.1 §4.3.1) and write the new pair before releasing the lock.
import { refreshAuthorization } from '@modelcontextprotocol/sdk/client/auth.js';
import { InvalidClientError, InvalidGrantError, OAuthError, UnauthorizedClientError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { boundedFetch } from './bounded-fetch.js';
import { deleteTokens, isExpired, setTokens, tokensFor, type StoredTokens, type TokenCache } from './cache.js';
import { ClientError } from './errors.js';
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
  /** The access token a resource server has just refused: replace it even if it looks unexpired. */
  rejectedAccessToken?: string;
  fetchFn?: FetchLike;
  /** Cap on each request to the authorization server (ms); DEFAULT_REQUEST_TIMEOUT_MS unless told. */
  requestTimeoutMs?: number;
  /** Notes what the token response says beyond the SDK's fields. */
  notes?: TokenResponseNotes;
}

/**
 * Fresh tokens for the resource, or undefined when they cannot be had without
 * the user (no refresh token, or the server says it is dead, in which case
 * the dead tokens are removed from the cache).
 */
export async function refreshCachedTokens(input: RefreshInput): Promise<StoredTokens | undefined> {
  const { cache, issuer, resource, now } = input;
  const notes = input.notes ?? new TokenResponseNotes(now);
  // Bounded whoever calls: the request is made holding tokens.lock, and a server that accepts and never
  // answers would otherwise hold it for Node's 300 s, long after other processes gave up waiting.
  const fetchFn = notes.observe(boundedFetch(input.fetchFn ?? fetch, input.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS));
  return cache.withLock(async (txn) => {
    const data = await txn.read();
    const current = tokensFor(data, issuer, resource);
    if (!current) return undefined;
    const stillStale = isExpired(current, now()) || current.access_token === input.rejectedAccessToken;
    if (!stillStale) return current; // another process refreshed while we waited for the lock
    if (!current.refresh_token) return undefined;

    const discovery = data.discovery[resource];
    const client = data.clients[issuer];
    if (!client || (discovery && discovery.authorizationServerUrl !== issuer)) return undefined;

    let response;
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
      if (error instanceof InvalidGrantError || error instanceof InvalidClientError || error instanceof UnauthorizedClientError) {
        deleteTokens(data, issuer, resource);
        if (!(error instanceof InvalidGrantError)) delete data.clients[issuer];
        await txn.write(data);
        return undefined;
      }
      throw new ClientError('REFRESH_FAILED', `Could not refresh the access token at ${issuer}: ${refreshFailure(error)}`, { cause: error });
    }
    const extras = notes.take(response.access_token);
    const fresh = storedTokensFrom({ ...response, issuer }, { issuer, resource: current.resource, now: now() }, {
      refreshExpiresAt: extras.refreshExpiresAt ?? current.refresh_expires_at,
      authorizationDetails: extras.authorizationDetails ?? current.authorization_details,
    });
    setTokens(data, resource, fresh);
    await txn.write(data);
    return fresh;
  });
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
