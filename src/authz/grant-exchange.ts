// Token exchange (RFC 8693) for agents: an agent, authenticated as itself,
// trades the user's token it received for a narrower token to a resource the
// user's grant lets it reach. The result names the agent as the current actor
// (`act`, §4.1), never outlives the subject token, and stays on the grant's
// revocation chain.
import {
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
  audienceIncludes,
  canonicalResource,
  exchangeHops,
  formatScope,
  isSubset,
  nestActor,
  parseScope,
  type AuthorizationDetail,
} from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import type { ClientRecord } from '../store/index.js';
import { signAccessToken, verifyOwnAccessToken } from './access-token.js';
import { nowSec, type AuthContext } from './context.js';
import { InvalidGrantError, InvalidRequestError, InvalidScopeError, InvalidTargetError, UnauthorizedClientError } from './errors.js';
import { required, single } from './params.js';

export async function tokenExchangeGrant(ctx: AuthContext, client: ClientRecord, body: FormBody): Promise<Record<string, unknown>> {
  if (client.kind !== 'agent' || !client.resource) throw new UnauthorizedClientError('Only a registered agent may exchange tokens.');
  const subjectToken = required(body, 'subject_token');
  const subjectType = required(body, 'subject_token_type');
  if (subjectType !== TOKEN_TYPE_ACCESS_TOKEN && subjectType !== TOKEN_TYPE_JWT) {
    throw new InvalidRequestError('subject_token_type must be an access token.');
  }
  if (single(body, 'actor_token') !== undefined || single(body, 'actor_token_type') !== undefined) {
    throw new InvalidRequestError('actor_token is not supported: the authenticated client is the actor.');
  }
  const requestedType = single(body, 'requested_token_type');
  if (requestedType !== undefined && requestedType !== TOKEN_TYPE_ACCESS_TOKEN) {
    throw new InvalidRequestError('Only access tokens can be requested.');
  }
  const target = exchangeTarget(body);

  const now = ctx.now();
  const checked = await verifyOwnAccessToken(ctx.issuer, ctx.keys, subjectToken, nowSec(ctx));
  if (!checked.ok) throw new InvalidGrantError(`The subject token is not acceptable: ${checked.reason}.`);
  const subject = checked.claims;
  // Only the agent the token was issued to may exchange it.
  if (!audienceIncludes(subject.aud, client.resource)) {
    throw new InvalidGrantError('The subject token was issued for another resource than this client’s.');
  }
  if ((await ctx.store.tokenStanding(subject.jti, now)) !== 'active') throw new InvalidGrantError('The subject token has been revoked.');
  const grant = await ctx.store.grantById(subject.grant_id);
  if (!grant || grant.revokedAt !== null || grant.expiresAt <= now) throw new InvalidGrantError('The delegation behind the subject token has ended.');

  // What the subject token lets its holder reach beyond its own audience.
  const reach = (subject.authorization_details ?? []).filter((d) => (d.locations ?? []).some((l) => canonicalResource(l) === target));
  if (reach.length === 0) throw new InvalidTargetError(`The delegation does not reach ${target}.`);
  const allowed = [...new Set(reach.flatMap((d) => d.actions ?? []))];
  const requested = parseScope(single(body, 'scope'));
  const scopes = requested.length > 0 ? requested : allowed;
  if (!isSubset(scopes, allowed)) {
    throw new InvalidScopeError(`The delegation allows only "${allowed.join(' ')}" at ${target}.`);
  }

  const hops = exchangeHops(subject.act) + 1;
  if (hops > grant.maxDepth) throw new InvalidRequestError(`The delegation allows at most ${grant.maxDepth} hops; this would be hop ${hops}.`);

  const iat = nowSec(ctx);
  const details: AuthorizationDetail[] = reach.map((d) => ({ ...d, locations: [target], actions: (d.actions ?? []).filter((a) => scopes.includes(a)) }));
  const issued = await signAccessToken(ctx.issuer, ctx.keys, {
    sub: subject.sub,
    aud: target,
    clientId: client.clientId,
    scope: formatScope(scopes),
    grantId: subject.grant_id,
    iat,
    exp: Math.min(iat + ctx.lifetimes.accessTokenSec, subject.exp),
    act: nestActor(client.clientId, subject),
    authorizationDetails: details,
  });
  const parent = await ctx.store.issuedToken(subject.jti);
  await ctx.store.recordIssuedToken({
    jti: issued.claims.jti,
    grantId: subject.grant_id,
    familyId: parent?.familyId ?? null,
    parentJti: subject.jti,
    clientId: client.clientId,
    audience: target,
    scope: issued.claims.scope,
    createdAt: now,
    expiresAt: issued.claims.exp * 1000,
    revokedAt: null,
  });
  return {
    access_token: issued.token,
    issued_token_type: TOKEN_TYPE_ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: issued.claims.exp - iat,
    scope: issued.claims.scope,
    authorization_details: details,
  };
}

/** The one resource the exchanged token is for: `resource` (RFC 8707) or `audience` (RFC 8693 §2.1). */
function exchangeTarget(body: FormBody): string {
  const resource = single(body, 'resource');
  const audience = single(body, 'audience');
  if (resource !== undefined && audience !== undefined && canonicalResource(resource) !== canonicalResource(audience)) {
    throw new InvalidTargetError('resource and audience name different targets.');
  }
  const value = resource ?? audience;
  if (value === undefined) throw new InvalidRequestError('A resource or audience is required.');
  const target = canonicalResource(value);
  if (!target) throw new InvalidTargetError('The resource must be an absolute http(s) URI without a fragment.');
  return target;
}
