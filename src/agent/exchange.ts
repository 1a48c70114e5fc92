// CalendarAgent's token exchange client (RFC 8693): trades the caller's
// token, at the authorization server's token endpoint and nowhere else, for a
// token of its own whose audience is the calendar backend, authenticating as
// itself with private_key_jwt (RFC 7523). Exchanged tokens are cached per
// caller token until shortly before they expire, in a bounded cache.
import { createHash } from 'node:crypto';
import { decodeJwt, type JWK } from 'jose';
import {
  CLIENT_ASSERTION_TYPE_JWT_BEARER,
  GRANT_TYPE_TOKEN_EXCHANGE,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
} from '../delegation/index.js';
import { requestIdHeader } from '../http/logging.js';
import { printableClipped } from '../terminal-text.js';
import { createEndpointDiscovery } from './as-metadata.js';
import { ExpiringLruCache } from './cache.js';
import { createClientAssertionSigner } from './client-assertion.js';
import { TokenExchangeError, exchangeErrorCode } from './errors.js';

export { TokenExchangeError, type TokenExchangeErrorCode } from './errors.js';

export interface TokenExchangeRequest {
  /** The target resource (RFC 8707), e.g. the calendar backend's canonical URL. */
  resource: string;
  /** The scope asked for, space-separated. */
  scope: string;
}

export interface ExchangedToken {
  accessToken: string;
  /** Milliseconds since the epoch at which the token expires. */
  expiresAt: number;
  /** The scope granted (the one requested when the server does not say). */
  scope: string;
  /** Handed out from the cache, exchanged for an earlier call: what the resource may have stopped taking since. */
  cached?: boolean;
}

/** How one exchange is asked for, beyond what it asks. */
export interface ExchangeContext {
  /** Sent as X-Request-Id, so the AS's log line of the exchange carries the id of the call it serves. */
  requestId?: string;
}

export interface TokenExchanger {
  /** A token for `request.resource` derived from `subjectToken`, from the cache when a live one is there. */
  exchange(subjectToken: string, request: TokenExchangeRequest, context?: ExchangeContext): Promise<ExchangedToken>;
  /** Drops the cached token derived from `subjectToken` (for example after the resource refused it). */
  forget(subjectToken: string, request: TokenExchangeRequest): void;
  /** How many exchanged tokens are cached. */
  readonly cacheSize: number;
}

export interface TokenExchangerOptions {
  issuer: string;
  clientId: string;
  /** ES256 private JWK with `kid`. */
  privateKey: JWK;
  now?: () => number;
  fetchFn?: typeof fetch;
  /** Time allowed for each request to the authorization server. */
  timeoutMs?: number;
  /** Most exchanged tokens kept at once. */
  cacheCapacity?: number;
  /** A cached token is not handed out when it has less than this left to live. */
  expiryMarginMs?: number;
}

export const DEFAULT_EXCHANGE_TIMEOUT_MS = 5_000;
export const DEFAULT_EXCHANGE_CACHE_CAPACITY = 1_000;
export const DEFAULT_EXPIRY_MARGIN_MS = 30_000;

export function createTokenExchanger(options: TokenExchangerOptions): TokenExchanger {
  const now = options.now ?? Date.now;
  const fetchFn = options.fetchFn ?? fetch;
  const timeoutMs = options.timeoutMs ?? DEFAULT_EXCHANGE_TIMEOUT_MS;
  const margin = options.expiryMarginMs ?? DEFAULT_EXPIRY_MARGIN_MS;
  const endpoints = createEndpointDiscovery({ issuer: options.issuer, fetchFn, timeoutMs });
  const sign = createClientAssertionSigner(options.clientId, options.privateKey, options.issuer);
  const cache = new ExpiringLruCache<ExchangedToken>(options.cacheCapacity ?? DEFAULT_EXCHANGE_CACHE_CAPACITY);
  // Concurrent calls for the same caller token share one request; entries live only while it is in flight.
  const inFlight = new Map<string, Promise<ExchangedToken>>();

  const requestToken = async (subjectToken: string, request: TokenExchangeRequest, context: ExchangeContext): Promise<ExchangedToken> => {
    const { tokenEndpoint } = await endpoints();
    const form = new URLSearchParams({
      grant_type: GRANT_TYPE_TOKEN_EXCHANGE,
      subject_token: subjectToken,
      subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
      resource: request.resource,
      scope: request.scope,
      client_id: options.clientId,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: await sign(now()),
    });
    const timeout = AbortSignal.timeout(timeoutMs);
    let res: Response;
    let body: unknown;
    try {
      res = await fetchFn(tokenEndpoint, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          Accept: 'application/json',
          ...requestIdHeader(context.requestId),
        },
        body: form.toString(),
        redirect: 'error', // a redirect would carry the caller's token somewhere else
        signal: timeout,
      });
      body = await res.json().catch(() => undefined);
    } catch {
      const why = timeout.aborted ? `did not answer within ${timeoutMs} ms` : 'could not be reached';
      throw new TokenExchangeError('unreachable', `The authorization server ${why}.`);
    }
    if (!res.ok) throw refusal(res.status, body);
    return tokenFrom(body, request, now());
  };

  return {
    async exchange(subjectToken, request, context = {}) {
      const key = cacheKey(subjectToken, request);
      const cached = cache.get(key, now());
      if (cached) return { ...cached, cached: true };
      let pending = inFlight.get(key);
      if (!pending) {
        // Calls that share one in-flight exchange share its id: the first caller's.
        pending = requestToken(subjectToken, request, context)
          .then((token) => {
            cache.set(key, token, token.expiresAt - margin, now());
            return token;
          })
          .finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      return pending;
    },
    forget(subjectToken, request) {
      cache.delete(cacheKey(subjectToken, request));
    },
    get cacheSize() {
      return cache.size;
    },
  };
}

/** The cache key: a hash, so the cache holds no caller token in the clear. */
function cacheKey(subjectToken: string, request: TokenExchangeRequest): string {
  return createHash('sha256').update(subjectToken).update('\0').update(request.resource).update('\0').update(request.scope).digest('base64url');
}

/** RFC 8693 §2.2.1: a successful response. */
function tokenFrom(body: unknown, request: TokenExchangeRequest, nowMs: number): ExchangedToken {
  const r = (body ?? {}) as Record<string, unknown>;
  const accessToken = r.access_token;
  if (typeof accessToken !== 'string' || accessToken === '') {
    throw new TokenExchangeError('invalid_response', 'The authorization server answered the exchange without an access token.');
  }
  if (typeof r.token_type !== 'string' || r.token_type.toLowerCase() !== 'bearer') {
    throw new TokenExchangeError('invalid_response', 'The authorization server issued a token that is not a bearer token.');
  }
  if (r.issued_token_type !== TOKEN_TYPE_ACCESS_TOKEN && r.issued_token_type !== TOKEN_TYPE_JWT) {
    throw new TokenExchangeError('invalid_response', 'The authorization server issued something other than an access token.');
  }
  return {
    accessToken,
    expiresAt: expiryOf(r.expires_in, accessToken, nowMs),
    scope: typeof r.scope === 'string' && r.scope !== '' ? r.scope : request.scope,
  };
}

/**
 * When the token expires: `expires_in` when the server gives it, else the
 * JWT's own `exp` (read only to time the cache; the calendar verifies it),
 * else now, which means it is used once and not cached.
 */
function expiryOf(expiresIn: unknown, accessToken: string, nowMs: number): number {
  if (typeof expiresIn === 'number' && Number.isFinite(expiresIn) && expiresIn >= 0) return nowMs + expiresIn * 1000;
  try {
    const { exp } = decodeJwt(accessToken);
    if (typeof exp === 'number') return Math.min(exp * 1000, nowMs + 24 * 3600_000);
  } catch {
    // Not a JWT: an opaque token with no stated lifetime.
  }
  return nowMs;
}

/** RFC 6749 §5.2: an error response, as a typed error carrying the server's own description. */
function refusal(status: number, body: unknown): TokenExchangeError {
  const r = (body ?? {}) as Record<string, unknown>;
  if (typeof r.error !== 'string') {
    return new TokenExchangeError(status >= 500 ? 'server_error' : 'invalid_response', `The authorization server failed the exchange (HTTP ${status}).`);
  }
  const code = exchangeErrorCode(r.error);
  // Its words go on into tool errors that MCP clients show: no control character acts there.
  const description = typeof r.error_description === 'string' ? printableClipped(r.error_description, 300) : undefined;
  return new TokenExchangeError(code, `The authorization server refused the token exchange (${code})${description ? `: ${description}` : '.'}`, description);
}
