// Minting the pair a user's client receives: a signed access token for the
// grant's resource and, for a client registered for the refresh grant, a fresh
// opaque refresh token (stored hashed), with the records the store keeps of
// both, under a scope that never holds more than the grant as it stands.
// Shared by the code and refresh grants.
import { REFRESH_TOKEN_PREFIX, isSubset, parseScope } from '../delegation/index.js';
import type { GrantRecord, IssuedTokenRecord, RefreshTokenRecord } from '../store/index.js';
import { signAccessToken, type SignedAccessToken } from './access-token.js';
import type { AuthContext } from './context.js';
import { hashSecret, randomSecret } from './crypto.js';
import { InvalidGrantError, InvalidScopeError, ServerError } from './errors.js';
import { takesUserTokens, unreachedLocations } from './grant-policy.js';

/**
 * How many times the code and refresh grants read the grant and mint under it when a consent changes the grant
 * between the reading and the recording of the tokens (the store refuses to record them then: grant_changed).
 */
export const GRANT_READINGS = 2;

/**
 * The answer to a code or refresh token whose grant a consent changed at every one of the GRANT_READINGS: nothing
 * was spent or recorded, and the same request can succeed a moment later. Not invalid_grant (RFC 6749 §5.2: the code
 * or refresh token is invalid, expired or revoked), which a client takes for the end of its sign-in: the CLI deleted
 * good tokens (found in review). §5.2 has no temporarily_unavailable at the token endpoint, so 500 server_error,
 * which the CLI and the SDK treat as the server's trouble. A grant revoked or expired meanwhile is invalid_grant.
 * `what`: the request, as the description names it ("refresh was carried out", "code was redeemed").
 */
export class GrantChangedError extends ServerError {
  constructor(what: string) {
    super(`The delegation changed while this ${what}; try again.`);
  }
}

/**
 * The scope a token minted under `grant` as read may carry: what the code or refresh token holds (`held`, the scope
 * recorded when it was issued) cut down to the grant's as it stands. RFC 6749 §6 says a refreshed scope MUST NOT
 * include any scope not granted by the resource owner; a code approved before its grant was narrowed is bound the
 * same way. Nothing narrows a grant's scope today (a consent only adds to it), so this is defence in depth: a grant
 * narrowed later binds the next redemption or refresh. The store compares the grant's scope with the one read here
 * when it records the tokens (grant_changed), so a narrowing in between is read again. A `scope` asked for (a
 * refresh's) beyond the grant is invalid_scope; a grant that holds none of `held` any longer ends it for this
 * code or token (invalid_grant: authorize again). `heldBy` names it in that refusal.
 */
export function scopeUnder(grant: GrantRecord, held: string[], asked: string[] | undefined, heldBy: 'authorization code' | 'refresh token'): string[] {
  const granted = parseScope(grant.scope);
  if (asked !== undefined) {
    if (!isSubset(asked, granted)) throw new InvalidScopeError('The requested scope exceeds the one granted.');
    return asked;
  }
  const kept = held.filter((s) => granted.includes(s));
  if (held.length > 0 && kept.length === 0) throw new InvalidGrantError(`The delegation no longer allows the scope this ${heldBy} was issued for; authorize again.`);
  return kept;
}

export interface IssuedPair {
  access: SignedAccessToken;
  accessRecord: IssuedTokenRecord;
  /** Null when the client did not register the refresh_token grant. */
  refresh: { token: string; record: RefreshTokenRecord } | null;
  /** When the delegation (the grant) ends, epoch ms: the refresh token may end sooner. */
  delegationEndsAt: number;
}

/**
 * `scope` is the access token's; `refreshScope` the new refresh token's: the scope of the code redeemed (cut down
 * to the grant's, scopeUnder), or of the refresh token presented, never the grant's. The grant may have grown since through another family (a
 * step-up), and RFC 6749 §6 requires a new refresh token's scope to be identical to the presented one's.
 * Null mints no refresh token.
 */
export async function mintUserTokens(ctx: AuthContext, grant: GrantRecord, familyId: string, scope: string, refreshScope: string | null): Promise<IssuedPair> {
  // A resource that takes no user tokens (the calendar backend): /authorize refuses it, and a grant or code
  // for it made before that is refused here.
  const resource = await ctx.store.resourceByUrl(grant.resource);
  if (!resource || !takesUserTokens(resource)) throw new InvalidGrantError('This delegation is for a resource that takes tokens only from agents, by token exchange; authorize the agent instead.');
  // The calendar the agent reads moved since the grant was approved: a token would reach only the old address, and
  // the agent would challenge it again. invalid_grant (RFC 6749 §5.2) makes the client authorize anew, and the
  // consent page asks for the new address (found in review: an MCP client holding a refresh token refreshed, was
  // challenged the same way, and gave up). Nothing is spent: the refresh token or code is left as it was.
  const unreached = unreachedLocations(grant, resource);
  if (unreached.length > 0) {
    throw new InvalidGrantError(`The delegation does not reach ${unreached.join(', ')}, where the agent now reads the calendar: authorize again to approve it.`);
  }
  const now = ctx.now();
  const iat = Math.floor(now / 1000);
  const grantEndsSec = Math.floor(grant.expiresAt / 1000);
  const access = await signAccessToken(ctx.issuer, ctx.keys, {
    sub: grant.userId,
    aud: grant.resource,
    clientId: grant.clientId,
    scope,
    grantId: grant.id,
    iat,
    exp: Math.min(iat + ctx.lifetimes.accessTokenSec, grantEndsSec),
    authorizationDetails: grant.authorizationDetails as SignedAccessToken['claims']['authorization_details'],
  });
  const refreshToken = REFRESH_TOKEN_PREFIX + randomSecret();
  return {
    access,
    delegationEndsAt: grant.expiresAt,
    accessRecord: {
      jti: access.claims.jti,
      grantId: grant.id,
      familyId,
      parentJti: null,
      clientId: grant.clientId,
      audience: grant.resource,
      scope,
      createdAt: now,
      expiresAt: access.claims.exp * 1000,
      revokedAt: null,
    },
    refresh:
      refreshScope === null
        ? null
        : {
            token: refreshToken,
            record: {
              tokenHash: hashSecret(refreshToken),
              familyId,
              grantId: grant.id,
              clientId: grant.clientId,
              userId: grant.userId,
              resource: grant.resource,
              scope: refreshScope,
              createdAt: now,
              expiresAt: Math.min(now + ctx.lifetimes.refreshTokenSec * 1000, grant.expiresAt),
              usedAt: null,
            },
          },
  };
}

/** The token response (RFC 6749 §5.1) for a minted pair. */
export function tokenResponse(ctx: AuthContext, pair: IssuedPair): Record<string, unknown> {
  const nowSec = Math.floor(ctx.now() / 1000);
  return {
    access_token: pair.access.token,
    token_type: 'Bearer',
    expires_in: pair.access.claims.exp - nowSec,
    ...(pair.refresh
      ? {
          refresh_token: pair.refresh.token,
          // Not in RFC 6749, but widely understood: when this refresh token ends (it may end before the delegation).
          refresh_token_expires_in: Math.max(0, Math.floor(pair.refresh.record.expiresAt / 1000) - nowSec),
          // delegate's own: when the delegation (the grant) ends, unless revoked. Found in review: the CLI showed the
          // refresh token's 30 days as the delegation's end, hiding a 90-day grant approved in the owner's name.
          delegation_expires_in: Math.max(0, Math.floor(pair.delegationEndsAt / 1000) - nowSec),
        }
      : {}),
    scope: pair.access.claims.scope,
    ...(pair.access.claims.authorization_details ? { authorization_details: pair.access.claims.authorization_details } : {}),
  };
}
