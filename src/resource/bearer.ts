// Bearer-token verification for delegate's resource servers (CalendarAgent and
// the calendar backend): RFC 6750 header parsing, RFC 9068 JWT validation
// against the authorization server's JWKS, scope checks, and the
// WWW-Authenticate challenge of RFC 6750 §3 with RFC 9728's resource_metadata.
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { BoundedMap } from '../bounded-map.js';
import { errorDescription } from '../error-description.js';
import {
  ACCESS_TOKEN_TYP,
  SIGNING_ALG,
  audienceIncludes,
  missingFrom,
  nonStringClaim,
  parseScope,
  type AccessTokenClaims,
} from '../delegation/index.js';

export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope';

/** Why a request's bearer token was refused; `code` is undefined when no token was sent (RFC 6750 §3.1). */
export class BearerError extends Error {
  readonly status: 400 | 401 | 403;
  readonly code: BearerErrorCode | undefined;
  /** For insufficient_scope: the scopes the request needs. */
  readonly scope: string | undefined;

  constructor(status: 400 | 401 | 403, code: BearerErrorCode | undefined, description: string, scope?: string) {
    super(description);
    this.name = 'BearerError';
    this.status = status;
    this.code = code;
    this.scope = scope;
  }
}

const EXPIRED = 'The token has expired.';

/**
 * A 401 for a token that has expired and is otherwise one this server would take: signed by a key of the issuer's,
 * with the typ, iss, claims and audience a valid token has, its grant, jti and key not revoked. `heldScopes` are the
 * scopes it carried, for a challenge to name again (src/agent/gate.ts): a client that authorizes again for what the
 * challenge names gets back what it had (found in review, s31mcp: the agent's 401 named slots:find alone, and a
 * client that had stepped up to busy:read was asked for it a second time, two consents at every expiry).
 */
export class ExpiredTokenError extends BearerError {
  readonly heldScopes: readonly string[];

  constructor(heldScopes: readonly string[]) {
    super(401, 'invalid_token', EXPIRED);
    this.name = 'ExpiredTokenError';
    this.heldScopes = heldScopes;
  }
}

/**
 * The resource server cannot judge the token now (its revocation list is
 * stale, or the issuer's keys cannot be fetched): the request is refused,
 * fail-closed, but the token is not declared invalid, so clients retry rather
 * than sign in again. Answered as 503 with Retry-After and no challenge.
 */
export class VerifierUnavailableError extends Error {
  readonly retryAfterSec: number;

  constructor(description: string, retryAfterSec: number) {
    super(description);
    this.name = 'VerifierUnavailableError';
    this.retryAfterSec = retryAfterSec;
  }
}

/** What a `reject` hook says: undefined to accept; a reason (or `{revoked}`) to refuse as invalid_token; `{unavailable}` when it cannot tell. */
export type TokenRejection = undefined | string | { revoked: string } | { unavailable: string; retryAfterSec: number };

/** What a `reject` hook is told of the token's protected header: the key that signed it. */
export interface TokenHeader {
  kid: string;
}

export interface VerifiedBearer {
  token: string;
  claims: AccessTokenClaims;
  scopes: string[];
}

export interface BearerVerifierOptions {
  /** The authorization server whose tokens are accepted (exact `iss`). */
  issuer: string;
  /** This resource server's canonical URL: tokens must name it in `aud`. */
  audience: string;
  /** Verification keys; by default the JWKS named in the issuer's RFC 8414 metadata. */
  keys?: JWTVerifyGetKey;
  /** Milliseconds since the epoch; injected so tests can move time. */
  now?: () => number;
  /** Seconds of clock skew tolerated on exp/nbf/iat. */
  clockToleranceSec?: number;
  /** Fetch used to discover the JWKS (tests pass their own). */
  fetchFn?: typeof fetch;
  /** Time allowed for each request for the issuer's metadata or keys (default 5 s). */
  keysTimeoutMs?: number;
  /** A last check after the signature and claims pass, e.g. a revocation list (src/resource/revocations.ts). */
  reject?: (claims: AccessTokenClaims, header: TokenHeader) => TokenRejection | Promise<TokenRejection>;
  /** Most tokens whose signature and claims are remembered as checked (default 1,000). */
  verifiedCacheSize?: number;
}

/**
 * How long a token's checked signature and claims are remembered. A client
 * sends the same token with every call for its whole life, and the signature
 * check was a tenth of a find_slot's cost at each server. Expiry, the
 * revocation list and the scopes are still checked on every request; only a
 * signing key withdrawn from the JWKS while its tokens live (the AS keeps
 * retired keys published until then) would be noticed up to this late.
 */
export const VERIFIED_TOKEN_TTL_MS = 60_000;
export const DEFAULT_VERIFIED_CACHE_SIZE = 1_000;

/**
 * What the verifier reads of a request (a FastifyRequest is one): its Authorization header, and its URL, for a token
 * in the query beside the header (tokenInQuery). Taken whole, so that no resource server can verify the header and
 * forget the query.
 */
export interface BearerRequest {
  url: string;
  headers: { authorization?: string | undefined };
}

export type BearerVerifier = ((request: BearerRequest, requiredScopes: readonly string[]) => Promise<VerifiedBearer>) & {
  /**
   * Fetches the issuer's JWKS again now, whatever the cooldown (a no-op for keys given in the options): for news
   * that the keys changed, a signing key withdrawn as leaked, so that the key that replaced it is known at once.
   */
  reloadKeys(): Promise<void>;
};

/**
 * Why a request with `access_token` in its URI query beside an Authorization header is refused, or undefined. The
 * header is the one way a token is taken here (the metadata's bearer_methods_supported is ["header"]). OAuth 2.1
 * (draft-ietf-oauth-v2-1-16) §5.1: "clients MUST NOT send the access token in a URI query parameter, and resource
 * servers MUST ignore access tokens in a URI query parameter": a query alone is ignored, and the request answered
 * as one with no token (401, no error code, RFC 6750 §3.1). Beside a header it is two methods in one request, which
 * RFC 6750 §2 forbids ("Clients MUST NOT use more than one method to transmit the token in each request") and §3.1
 * names invalid_request, 400. Found in review (s26): such a request was answered as the header alone (200). The
 * token in the query is never read or verified; the request logs name the path only (src/http/logging.ts).
 */
function tokenInQuery(url: string, authorization: string | undefined): BearerError | undefined {
  if (authorization === undefined) return undefined;
  const query = url.indexOf('?');
  if (query === -1) return undefined;
  // Names decoded as a client's parser decodes them (access%5Ftoken is access_token); case-sensitive (RFC 6750 §1.1).
  if (!new URLSearchParams(url.slice(query + 1).split('#')[0]).has('access_token')) return undefined;
  return new BearerError(400, 'invalid_request', 'The access token was sent both in the Authorization header and as access_token in the URL query; send it in the header only.');
}

/**
 * Why a request whose token was taken from the Authorization header is refused for carrying `access_token` in a
 * form-encoded body as well (the method of RFC 6750 §2.2, OAuth 2.1 §5.1.2), or undefined: more than one method,
 * RFC 6750 §2, invalid_request (§3.1). Called only once a header's token was taken: a form body alone is a method
 * these servers do not support, so that request carries no token and is answered as such (§3.1, no error code).
 */
export function tokenInFormBody(contentType: string | undefined, body: unknown): BearerError | undefined {
  if (typeof body !== 'string' || contentType?.split(';')[0]!.trim().toLowerCase() !== 'application/x-www-form-urlencoded') return undefined;
  if (!new URLSearchParams(body).has('access_token')) return undefined;
  return new BearerError(400, 'invalid_request', 'The access token was sent both in the Authorization header and in the request body; send it in the header only.');
}

/** RFC 6750 §2.1: `Bearer` followed by a b64token. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

export function createBearerVerifier(options: BearerVerifierOptions): BearerVerifier {
  const now = options.now ?? Date.now;
  const discovered = options.keys ? undefined : discoveredJwks(options.issuer, options.fetchFn ?? fetch, now, options.keysTimeoutMs ?? KEYS_TIMEOUT_MS);
  const published = options.keys ?? discovered!.getKey;
  // The AS names its key in every token it signs (and refuses tokens that do not): so do the resource
  // servers, rather than let jose try the only published key on a token that names none.
  const keys: JWTVerifyGetKey = (header, token) => {
    if (typeof header.kid !== 'string' || header.kid === '') throw new NoKidError();
    return published(header, token);
  };

  const verified = new BoundedMap<string, { claims: AccessTokenClaims; header: TokenHeader; until: number }>(options.verifiedCacheSize ?? DEFAULT_VERIFIED_CACHE_SIZE);
  const toleranceMs = (options.clockToleranceSec ?? 0) * 1000;

  /** Why a token whose signature, typ, iss and times jose accepted is refused all the same, or undefined. */
  const claimsProblem = (claims: AccessTokenClaims): string | undefined => {
    const notString = nonStringClaim(claims);
    if (notString !== undefined) return `The token's ${notString} claim is not a string.`;
    // A token handed to a sub-agent (RFC 8693 §4.4 may_act) is that agent's subject token for its own exchange,
    // which names it in the actor chain; used as it is, its calls would be recorded as the hander's. The AS issues
    // such tokens for its own audience; this also refuses one issued for a resource (by a server before that).
    if (claims.may_act !== undefined) return 'This token was handed to an agent to exchange at the authorization server (may_act); it is not accepted here.';
    // RFC 8707 / RFC 9068 §4: a token is only good at the resource it was issued for.
    if (!audienceIncludes(claims.aud, options.audience)) return 'The token was issued for another resource.';
    return undefined;
  };

  /**
   * RFC 9068 validation of the JWT itself: signature, typ, iss, exp/nbf, required claims, audience. A token that
   * passes all but exp is thrown as ExpiredClaims, for `verify` to ask the revocation list about.
   */
  const checkedClaims = async (token: string): Promise<{ claims: AccessTokenClaims; header: TokenHeader }> => {
    // Keyed by a hash, so the cache holds no token in the clear.
    const key = createHash('sha256').update(token).digest('base64url');
    const known = verified.get(key);
    if (known && now() < known.until) return known;
    let claims: AccessTokenClaims;
    let header: TokenHeader;
    try {
      const result = await jwtVerify(token, keys, {
        algorithms: [SIGNING_ALG],
        typ: ACCESS_TOKEN_TYP,
        issuer: options.issuer,
        currentDate: new Date(now()),
        clockTolerance: options.clockToleranceSec ?? 0,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'scope', 'grant_id'],
      });
      claims = result.payload as unknown as AccessTokenClaims;
      // The key getter refused a token without a kid, so a verified one names its key.
      header = { kid: String(result.protectedHeader.kid) };
    } catch (err) {
      // The issuer's keys could not be had: no verdict on the token. Refused (fail closed), but not called
      // invalid_token, which RFC 6750 §3.1 keeps for a token that is expired, revoked, malformed or invalid,
      // and which tells a client to throw it away.
      if (err instanceof KeysUnavailableError) throw new VerifierUnavailableError(err.message, KEYS_RETRY_AFTER_SEC);
      // jose checks exp last (jwt_claims_set.js: after the key, alg and signature, then typ, the required claims,
      // iss and nbf), and only then throws JWTExpired with the payload: a token it names expired passed all of those.
      // The checks below are made of it as of a token in time; it is an ExpiredClaims only if it passes them too.
      // test/security/expired-token-challenge.test.ts pins this, a check at a time.
      if (err instanceof joseErrors.JWTExpired && err.claim === 'exp' && claimsProblem(err.payload as unknown as AccessTokenClaims) === undefined) {
        throw new ExpiredClaims(err.payload as unknown as AccessTokenClaims, { kid: String(decodeProtectedHeader(token).kid) });
      }
      throw new BearerError(401, 'invalid_token', describeJoseError(err));
    }
    const problem = claimsProblem(claims);
    if (problem !== undefined) throw new BearerError(401, 'invalid_token', problem);
    // Remembered no longer than jwtVerify would accept it (exp plus the tolerance), and at most the TTL.
    const checked = { claims, header };
    verified.set(key, { ...checked, until: Math.min(claims.exp * 1000 + toleranceMs, now() + VERIFIED_TOKEN_TTL_MS) });
    return checked;
  };

  /**
   * The 401 for a token that is good but for its expiry: an ExpiredTokenError with its scopes when the `reject` hook
   * (the revocation list) takes it, else the plain 401. A revoked grant's token, or one the list cannot judge now,
   * gets nothing of its own named: the challenge would only name scopes (it grants nothing, and the token's holder
   * can read them in it), but a client that authorizes again after a revocation asks as at first. The list keeps a
   * revoked grant only until its tokens expire (revocations.ts, prune): after that it cannot tell, and this names them.
   */
  const expiredRefusal = async (expired: ExpiredClaims): Promise<BearerError> => {
    let refusal: TokenRejection;
    try {
      refusal = await options.reject?.(expired.claims, expired.header);
    } catch {
      refusal = 'unknown';
    }
    if (refusal !== undefined) return new BearerError(401, 'invalid_token', EXPIRED);
    return new ExpiredTokenError(parseScope(expired.claims.scope));
  };

  const verify = async (request: BearerRequest, requiredScopes: readonly string[]): Promise<VerifiedBearer> => {
    const authorization = request.headers.authorization;
    // Two methods in one request, refused before the header's token is verified; a query alone is ignored.
    const inQuery = tokenInQuery(request.url, authorization);
    if (inQuery) throw inQuery;
    if (authorization === undefined || authorization === '') {
      throw new BearerError(401, undefined, 'No bearer token was sent.');
    }
    if (!/^bearer\b/i.test(authorization)) {
      // Another scheme is not a bearer token at all (RFC 6750 §3.1: no error code).
      throw new BearerError(401, undefined, 'Only the Bearer authentication scheme is accepted.');
    }
    const match = BEARER.exec(authorization);
    if (!match) throw new BearerError(400, 'invalid_request', 'The Authorization header is not a well-formed bearer token.');
    const token = match[1]!;

    const { claims, header } = await checkedClaims(token).catch(async (err: unknown) => {
      throw err instanceof ExpiredClaims ? await expiredRefusal(err) : err;
    });
    // Asked on every request, the verified ones remembered too: a revocation or a withdrawn key counts at once.
    const refusal = await options.reject?.(claims, header);
    if (typeof refusal === 'string') throw new BearerError(401, 'invalid_token', refusal);
    if (refusal && 'revoked' in refusal) throw new BearerError(401, 'invalid_token', refusal.revoked);
    if (refusal && 'unavailable' in refusal) throw new VerifierUnavailableError(refusal.unavailable, refusal.retryAfterSec);

    const scopes = parseScope(claims.scope);
    const missing = missingFrom(requiredScopes, scopes);
    if (missing.length > 0) {
      throw new BearerError(403, 'insufficient_scope', `The token lacks the scope ${missing.join(' ')}.`, requiredScopes.join(' '));
    }
    return { token, claims, scopes };
  };
  return Object.assign(verify, { reloadKeys: async () => discovered?.reload() });
}

/**
 * How long a client is asked to wait when the issuer's keys could not be
 * fetched; for as long, every request is refused at once without asking the
 * issuer again (the first request after it tries again).
 */
const KEYS_RETRY_AFTER_SEC = 5;
const KEYS_TIMEOUT_MS = 5_000;

/**
 * How soon after a fetch of the JWKS a token naming a key it lacks makes the
 * set be fetched again. The AS signs with a new key as soon as it is rotated
 * (`delegate keys rotate`): for this long after the last fetch its tokens are
 * refused as signed with an unknown key. Found in review of the rotation:
 * jose's default, 30 s, refused every new token for up to half a minute; a
 * second still bounds what tokens with made-up key ids cost the AS.
 */
export const JWKS_REFETCH_COOLDOWN_MS = 1_000;
/**
 * How long a fetched JWKS is used before it is fetched again, whatever tokens
 * come: the AS's Cache-Control max-age. A key withdrawn at once (`keys rotate
 * --now`, a leak) is refused here this long after, at most (plus
 * VERIFIED_TOKEN_TTL_MS for a token already checked) when the revocation
 * list is not followed; the list names withdrawn keys within moments. jose's default is 10 minutes.
 */
export const JWKS_MAX_AGE_MS = 300_000;

/** The issuer's metadata or JWKS could not be fetched or read: says nothing about the token. */
class KeysUnavailableError extends Error {}

/**
 * The JWKS of an issuer, found through its RFC 8414 metadata on first use
 * (so a resource server can start before its authorization server). A failed
 * discovery is retried on the next request. Any failure to get the keys
 * (network error, timeout, a status other than 200, a body that is not the
 * expected JSON, at the metadata or the JWKS URL; metadata that names
 * another issuer or no JWKS) is a KeysUnavailableError;
 * a key id the fetched set does not hold is the token's fault and stays
 * jose's JWKSNoMatchingKey.
 */
function discoveredJwks(issuer: string, fetchFn: typeof fetch, now: () => number, timeoutMs: number): { getKey: JWTVerifyGetKey; reload(): Promise<void> } {
  let pending: Promise<RemoteKeys> | undefined;
  // Found in review: while the issuer hung rather than refused, every request waited for its own discovery
  // (up to 5 s for the metadata, 5 more for the keys) before its 503. A failure now holds for the Retry-After
  // it announces: requests in that time are refused at once, and the issuer is not asked again until it ends.
  let failed: { until: number; cause: unknown } | undefined;
  const remember = (cause: unknown) => {
    failed = { until: now() + KEYS_RETRY_AFTER_SEC * 1000, cause };
    return cause;
  };
  const discover = async (): Promise<RemoteKeys> => {
    const res = await fetchFn(`${issuer}/.well-known/oauth-authorization-server`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`authorization server metadata: HTTP ${res.status}`);
    const metadata = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
    // RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
    if (metadata.issuer !== issuer) throw new Error('authorization server metadata names another issuer');
    if (typeof metadata.jwks_uri !== 'string') throw new Error('authorization server metadata has no jwks_uri');
    return createRemoteJWKSet(new URL(metadata.jwks_uri), { timeoutDuration: timeoutMs, cooldownDuration: JWKS_REFETCH_COOLDOWN_MS, cacheMaxAge: JWKS_MAX_AGE_MS });
  };
  // The cause stays out of the message, which is sent: what failed inside is no business of the client's.
  const unavailable = (cause: unknown) => new KeysUnavailableError("The authorization server's signing keys could not be fetched; try again shortly.", { cause });
  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (failed !== undefined && now() < failed.until) throw unavailable(failed.cause);
    pending ??= discover().catch((err) => {
      pending = undefined;
      throw remember(err);
    });
    const getKey = await pending.catch((err: unknown) => {
      throw unavailable(err);
    });
    // A fetch under way because the keys changed (reload): the copy at hand is the one it replaces. Awaiting it
    // starts no other fetch; a failed one leaves the copy as it was.
    if (getKey.reloading) await getKey.reload().catch(() => undefined);
    try {
      return await getKey(header, token);
    } catch (err) {
      // Raised only once a set was fetched and read (after a refetch, when jose tried one): the token names a key the issuer does not publish.
      if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) throw err;
      throw unavailable(remember(err));
    }
  };
  // Before the first discovery there is nothing to refresh: the first request fetches the set as it is.
  const reload = async (): Promise<void> => {
    const keys = await pending?.catch(() => undefined);
    // A failed fetch leaves the set as it was; the next request after its max-age tries again.
    await keys?.reload().catch(() => undefined);
  };
  return { getKey, reload };
}

type RemoteKeys = ReturnType<typeof createRemoteJWKSet>;

class NoKidError extends Error {}

/** A token that passed every check but exp, with its claims and the key that signed it (checkedClaims to verify). */
class ExpiredClaims extends Error {
  constructor(
    readonly claims: AccessTokenClaims,
    readonly header: TokenHeader,
  ) {
    super(EXPIRED);
  }
}

function describeJoseError(err: unknown): string {
  if (err instanceof NoKidError) return 'The token names no signing key.';
  if (err instanceof joseErrors.JWTExpired) return EXPIRED;
  // jose reports the typ header parameter (RFC 9068 §2.1, RFC 7515 §4.1.9) as a failed claim, named typ.
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return err.claim === 'typ' ? "The token's typ header parameter is not acceptable." : `The token's ${err.claim} claim is not acceptable.`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'The token is not signed with ES256.';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'The token signature is invalid.';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'The token was signed with an unknown key.';
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'The token is malformed.';
  if (err instanceof joseErrors.JOSEError) return 'The token is invalid.';
  return 'The token could not be verified.';
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The WWW-Authenticate challenge for a refused request (RFC 6750 §3, RFC 9728
 * §5.1). With no error (no token sent) it carries only resource_metadata.
 */
export function wwwAuthenticate(resourceMetadataUrl: string, error?: BearerError): string {
  const params = [`resource_metadata=${quote(resourceMetadataUrl)}`];
  if (error?.code) {
    params.push(`error=${quote(error.code)}`);
    // RFC 6750 §3: the description is printable ASCII without `"` or `\`, so it needs no escape.
    params.push(`error_description=${quote(errorDescription(error.message))}`);
  }
  if (error?.scope) params.push(`scope=${quote(error.scope)}`);
  return `Bearer ${params.join(', ')}`;
}
