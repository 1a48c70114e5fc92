// Token exchange (RFC 8693) for agents: an agent, authenticated as itself,
// trades a token it holds for a narrower one. Every exchange narrows and never
// widens: the audience must be within the subject token's reach, the scope a
// subset of what that reach allows, the constraints (RFC 9396 details) a
// subset of the parent's, the expiry no later, and the chain no deeper than
// the grant allows. The result names the agent as the current actor (`act`,
// §4.1) and stays on the grant's revocation chain. A token may be handed to a
// sub-agent by naming it in `may_act` (§4.4): such a token is a credential for
// that agent's own exchange, not a bearer token for the target, so its
// audience is this authorization server (no resource server accepts it) and
// only the agent it names may exchange it. The limits are bounded by the
// grant as it stands at each exchange, as well as by the subject token's: a
// consent that narrowed the grant narrows every token exchanged after it.
//
// Error codes (RFC 8693 §2.2.2): a subject token that is invalid, or
// unacceptable by policy (not ours, tampered, expired, revoked, issued for
// another agent, its delegation ended), is invalid_request, not RFC 6749's
// invalid_grant. A target the delegation does not reach is invalid_target, a
// scope it does not allow invalid_scope, wider constraints
// invalid_authorization_details.
import {
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
  audienceIncludes,
  calendarDetailFor,
  calendarLocations,
  canonicalResource,
  exchangeHops,
  handOffBeyondDepthDescription,
  formatScope,
  intersectDetails,
  isDetailSubset,
  isSubset,
  nestActor,
  parseCalendarDetail,
  type AccessTokenClaims,
  type CalendarDetail,
} from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import type { ClientRecord } from '../store/index.js';
import { signAccessToken, verifyOwnAccessToken } from './access-token.js';
import { actorsOf, audit } from './audit.js';
import { nowSec, type AuthContext } from './context.js';
import {
  InvalidRequestError,
  InvalidScopeError,
  InvalidTargetError,
  InvalidAuthorizationDetailsError,
  UnauthorizedClientError,
} from './errors.js';
import type { ExchangeRefusals } from './exchange-refusals.js';
import { grantDetails } from './grant-policy.js';
import { required, scopeParam, single, singleTarget } from './params.js';

/**
 * `refusals`, when given, records the refusals that come after the agent authenticated and its subject token
 * verified (exchange-refusals.ts); the token endpoint passes its own.
 */
export async function tokenExchangeGrant(ctx: AuthContext, client: ClientRecord, body: FormBody, refusals?: ExchangeRefusals): Promise<Record<string, unknown>> {
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
  // The scope's syntax, like the target's, before the subject token is looked at (RFC 6749 §3.3: malformed is
  // invalid_scope, not absent).
  const scopes = scopeParam(body);

  const now = ctx.now();
  const checked = await verifyOwnAccessToken(ctx.issuer, ctx.keys, subjectToken, nowSec(ctx));
  if (!checked.ok) throw new InvalidRequestError(`The subject token is not acceptable: ${checked.reason}.`);
  const subject = checked.claims;
  try {
    return await exchangeVerified(ctx, client, client.resource, body, subject, { target, scopes }, now);
  } catch (err) {
    await refusals?.record(ctx, client, subject, target, body, err);
    throw err;
  }
}

/**
 * The exchange of a verified subject token by an authenticated agent: every check against it, then the new token.
 * `asked`: the target and the scope (undefined: none asked for) as the request names them, read and checked already.
 */
async function exchangeVerified(
  ctx: AuthContext,
  client: ClientRecord,
  agentResource: string,
  body: FormBody,
  subject: AccessTokenClaims,
  asked: { target: string; scopes: string[] | undefined },
  now: number,
): Promise<Record<string, unknown>> {
  const { target } = asked;
  // A token handed on (may_act) is exchanged by the sub-agent it names, and by no one else; any other token by its recipient.
  if (subject.may_act !== undefined) {
    if (subject.may_act.sub !== client.clientId) throw new InvalidRequestError('The subject token was handed to another agent (may_act), not to this client.');
  } else if (!audienceIncludes(subject.aud, agentResource)) {
    throw new InvalidRequestError("The subject token was issued for another resource than this client's, and not handed to it.");
  }
  if ((await ctx.store.tokenStanding(subject.jti, now)) !== 'active') throw new InvalidRequestError('The subject token has been revoked.');
  const grant = await ctx.store.grantById(subject.grant_id);
  if (!grant || grant.revokedAt !== null || grant.expiresAt <= now) throw new InvalidRequestError('The delegation behind the subject token has ended.');

  // Audience: within the subject token's reach (its authorization details), and the grant's as it stands now.
  if (!calendarDetailFor(subject.authorization_details, target)) throw new InvalidTargetError(await unreachedTarget(ctx, grant.resource, subject, target));
  const parent = currentReach(subject, grantDetails(grant), target);

  // Constraints: what the request asks for, never more than the parent allows.
  const narrower = requestedDetail(body, target);
  if (narrower) {
    const subset = isDetailSubset(narrower, parent);
    if (!subset.ok) throw new InvalidAuthorizationDetailsError(`The exchange would widen the delegation: ${subset.reason}.`);
  }
  const detail = narrower ?? parent;

  // Scope: a subset of the actions allowed at the target.
  const scopes = asked.scopes ?? detail.actions;
  if (!isSubset(scopes, detail.actions)) {
    throw new InvalidScopeError(`The delegation allows only '${detail.actions.join(' ')}' at ${target}; '${scopes.join(' ')}' was asked.`);
  }

  // Depth: the grant bounds how many hops a token may travel from the user.
  const hops = exchangeHops(subject.act) + 1;
  if (hops > grant.maxDepth) {
    throw new InvalidRequestError(`The delegation allows at most ${grant.maxDepth} hops from the user; this exchange would be hop ${hops}.`);
  }

  const mayAct = await handOffTarget(ctx, body, hops, grant.maxDepth);
  const iat = nowSec(ctx);
  const narrowed: CalendarDetail = { ...detail, locations: [target], actions: scopes };
  const issued = await signAccessToken(ctx.issuer, ctx.keys, {
    sub: subject.sub,
    // A handed token is for the sub-agent's exchange here (RFC 8693 §4.4: may_act says who may become the actor),
    // so its audience is this server and no resource server takes it; its details still name the target.
    aud: mayAct ? ctx.issuer : target,
    clientId: client.clientId,
    scope: formatScope(scopes),
    grantId: subject.grant_id,
    iat,
    // Expiry: never later than the parent's.
    exp: Math.min(iat + ctx.lifetimes.accessTokenSec, subject.exp),
    act: nestActor(client.clientId, subject),
    ...(mayAct ? { mayAct } : {}),
    authorizationDetails: [narrowed],
  });
  const parentRecord = await ctx.store.issuedToken(subject.jti);
  // Checked again with the write: a revocation may have landed while the token was signed (the check above is only the fast refusal).
  const recorded = await ctx.store.recordDerivedToken(
    {
      jti: issued.claims.jti,
      grantId: subject.grant_id,
      familyId: parentRecord?.familyId ?? null,
      parentJti: subject.jti,
      clientId: client.clientId,
      audience: String(issued.claims.aud),
      scope: issued.claims.scope,
      createdAt: now,
      expiresAt: issued.claims.exp * 1000,
      revokedAt: null,
    },
    ctx.now(),
  );
  if (recorded === 'parent_revoked') throw new InvalidRequestError('The subject token has been revoked.');
  await auditExchange(ctx, subject, issued.claims, mayAct, target);
  return {
    access_token: issued.token,
    // RFC 8693 §2.2.1: a token that is not usable as an access token has token_type N_A. A handed token (may_act) is
    // usable only as the named agent's subject token here: every resource server refuses it (src/resource/bearer.ts).
    // Found in review: it was answered "Bearer". It stays an access token in kind (§3: an OAuth 2.0 access token
    // issued by this server, RFC 9068, which a later exchange names as subject_token_type access_token), and
    // access_token is also the only requested_token_type accepted above, so the answer never contradicts a request.
    issued_token_type: TOKEN_TYPE_ACCESS_TOKEN,
    token_type: mayAct ? 'N_A' : 'Bearer',
    expires_in: issued.claims.exp - iat,
    scope: issued.claims.scope,
    authorization_details: [narrowed],
  };
}

function auditExchange(ctx: AuthContext, subject: AccessTokenClaims, issued: AccessTokenClaims, mayAct: string | undefined, target: string): Promise<void> {
  return audit(ctx, {
    event: 'token_exchanged',
    user: subject.sub,
    client: issued.client_id,
    grant: issued.grant_id,
    resource: String(issued.aud),
    actors: actorsOf(issued),
    detail: { scope: issued.scope, jti: issued.jti, parent_jti: subject.jti, ...(mayAct ? { handed_to: mayAct, target } : {}) },
  });
}

/**
 * The detail the exchange may issue at `target`: the subject token's, bounded by the grant's current one. A consent
 * can narrow a grant after a token was issued from it (a shorter lookahead, fewer calendars); the exchange reads the
 * grant anew, as it does for the depth, so a token issued before the narrowing yields only what the delegation
 * allows now (the narrower of both, member by member). A grant that no longer reaches the target, or leaves
 * nothing in common with the token, refuses the exchange.
 */
function currentReach(subject: AccessTokenClaims, granted: readonly CalendarDetail[], target: string): CalendarDetail {
  const parent = calendarDetailFor(subject.authorization_details, target);
  if (!parent) throw new InvalidTargetError(`The delegation does not reach ${target}.`);
  const now = calendarDetailFor(granted, target);
  if (!now) throw new InvalidTargetError(`The delegation no longer reaches ${target}.`);
  const both = intersectDetails(parent, now);
  if (!both.ok) throw new InvalidAuthorizationDetailsError(`The delegation as it stands now leaves nothing of the subject token's: ${both.reason}.`);
  return both.detail;
}

/**
 * Why the subject token does not reach `target`. When the agent the user signed in for reads its calendar at
 * `target` today, the delegation was approved for the calendar at another address (the servers moved): the
 * refusal says so, so that the person is told to sign in again, which asks for the new address on the consent
 * page (authorize.ts). Found in review: it said only "does not reach", and nothing told the person what to do.
 * Any other target is simply out of reach. Never widened here: only the owner's consent adds a location.
 */
async function unreachedTarget(ctx: AuthContext, grantResource: string, subject: AccessTokenClaims, target: string): Promise<string> {
  const resource = await ctx.store.resourceByUrl(grantResource);
  const held = calendarLocations(subject.authorization_details);
  if (resource?.downstream.some((d) => d.resource === target) && held.length > 0) {
    return `The delegation reaches ${held.join(', ')}, not ${target}, where the agent now reads the calendar: the calendar moved since it was approved.`;
  }
  return `The delegation does not reach ${target}.`;
}

/** The longest resource or audience an exchange names (the longest redirect URI a client may register, register.ts). */
const MAX_TARGET_LENGTH = 2048;

/** The one resource the exchanged token is for: `resource` (RFC 8707) or `audience` (RFC 8693 §2.1). */
function exchangeTarget(body: FormBody): string {
  const resource = singleTarget(body, 'resource');
  const audience = singleTarget(body, 'audience');
  if (resource !== undefined && audience !== undefined && canonicalResource(resource) !== canonicalResource(audience)) {
    throw new InvalidTargetError('resource and audience name different targets.');
  }
  const value = resource ?? audience;
  if (value === undefined) throw new InvalidRequestError('A resource or audience is required.');
  const target = canonicalResource(value);
  if (!target) throw new InvalidTargetError('The resource must be an absolute http(s) URI without a fragment.');
  // Bounded as registered URIs are: the target goes on the audit log with a refusal (exchange-refusals.ts), and no
  // resource here has a longer URL (found in review regress21b: a refused exchange recorded 60,000 characters).
  if (value.length > MAX_TARGET_LENGTH || target.length > MAX_TARGET_LENGTH) throw new InvalidTargetError(`The resource may have at most ${MAX_TARGET_LENGTH} characters.`);
  return target;
}

/** The narrower constraints a request asks for (RFC 9396 `authorization_details`), for the target only. */
function requestedDetail(body: FormBody, target: string): CalendarDetail | undefined {
  const raw = single(body, 'authorization_details');
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new InvalidAuthorizationDetailsError('authorization_details is not JSON.');
  }
  if (!Array.isArray(value) || value.length !== 1) throw new InvalidAuthorizationDetailsError('Ask for exactly one authorization detail, for the target.');
  const parsed = parseCalendarDetail(value[0]);
  if (!parsed.ok) throw new InvalidAuthorizationDetailsError(`The authorization detail is not acceptable: ${parsed.reason}.`);
  if (parsed.detail.locations.some((l) => l !== target)) throw new InvalidAuthorizationDetailsError('The authorization detail must name only the target as its location.');
  return parsed.detail;
}

/**
 * The registered agent the new token is handed to (`may_act`), if the request names one. A token issued at hop
 * `hops` that names an agent in may_act states that this agent is authorized to act next (RFC 8693 §4.4), at hop
 * `hops + 1`: that statement is made only where the grant allows that hop, like the hop itself.
 */
async function handOffTarget(ctx: AuthContext, body: FormBody, hops: number, maxDepth: number): Promise<string | undefined> {
  const id = single(body, 'may_act');
  if (id === undefined) return undefined;
  if (hops + 1 > maxDepth) {
    throw new InvalidRequestError(handOffBeyondDepthDescription(maxDepth, hops + 1));
  }
  const agent = await ctx.store.clientById(id);
  if (!agent || agent.kind !== 'agent') throw new InvalidRequestError(`may_act must name a registered agent; ${id} is not one.`);
  return id;
}
