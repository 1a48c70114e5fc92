// GET /authorize (OAuth 2.1 §4.1.1): checks the request in the order that
// keeps redirects safe. Until the client and its redirect URI are known good,
// errors are shown as a page; after that they go back to the client with
// `state` and `iss` (RFC 9207), when its redirect URI is one this server
// trusts (loopback, or a web app the signed-in user approved before; RFC 9700
// §4.11.2), and are shown as a page otherwise. A valid request from a signed-in user gets the
// consent page, unless a grant already covers it (its scopes and limits, at the
// calendar location the agent reads today) and the client's identity is
// assured (RFC 8252 §8.6): the owner's own CLI started this very request, or
// the client's redirect URI is https. Without a session: the sign-in page.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { canonicalResource, formatScope, isSubset, parseScope, type CalendarDetail } from '../delegation/index.js';
import type { ClientRecord, ResourceRecord, SessionRecord } from '../store/index.js';
import { ACTS_ON_GET, type FormBody } from '../http/app.js';
import { issueCode } from './code.js';
import { hashSecret, randomId, randomSecret } from './crypto.js';
import { viaDevice, type AuthContext } from './context.js';
import { calendarNames, renderConsent, savePendingRequest } from './consent-page.js';
import { AGENTS_ONLY, grantCovers, requestedDetails, takesUserTokens } from './grant-policy.js';
import { redirectToClient } from './redirect.js';
import { sendAccountRemovedPage, sendErrorPage } from './pages.js';
import { InvalidClientError } from './errors.js';
import { oneTargetOnly, queryParams, readScope } from './params.js';
import { checkChallenge } from './policy/pkce.js';
import { requestSource } from './request-source.js';
import { checkDeliveredAsWritten, impliedRedirectUri, isLoopbackRedirect, matchRedirectUri, privateUseScheme, redirectDestination, type ImpliedRedirectUri } from './policy/redirect-uri.js';
import { currentSession, startedByOwnerFor } from './session.js';
import { renderSignIn } from './sign-in-page.js';

/** Why an unknown client_id is refused, and what to do when it is an app this server forgot (its registration lapsed). */
const UNKNOWN_APP =
  'The app that sent you here is not registered with this server. If it registered here before, its registration has lapsed: ' +
  'an app that gets no delegation within a day of registering is forgotten. Remove the app\'s saved sign-in for this server, and connect it again: it registers anew.';

/** A validated authorization request. */
export interface AuthorizationRequest {
  client: ClientRecord;
  redirectUri: string;
  /** Whether the request sent redirect_uri (else it is the client's one registered URI): /token then needs it too. */
  redirectUriGiven: boolean;
  state: string | undefined;
  resource: ResourceRecord;
  scope: string;
  codeChallenge: string;
  /** Constraints the client proposes (RFC 9396), validated against what the agent can be given. */
  details: CalendarDetail[];
}

type Outcome =
  | { kind: 'page-error'; status: number; heading: string; detail: string }
  | { kind: 'redirect-error'; client: ClientRecord; redirectUri: string; state: string | undefined; error: string; description: string }
  | { kind: 'ok'; request: AuthorizationRequest };

export function registerAuthorize(app: FastifyInstance, ctx: AuthContext): void {
  app.get('/authorize', ACTS_ON_GET, async (req, reply) => {
    const outcome = await validate(ctx, queryParams(req.url), requestSource(req, ctx.issuer));
    switch (outcome.kind) {
      case 'page-error':
        return sendErrorPage(reply, outcome.status, outcome.heading, outcome.detail);
      case 'redirect-error':
        return sendRedirectError(req, reply, ctx, outcome);
      case 'ok':
        return showConsentOrSignIn(req, reply, ctx, outcome.request);
    }
  });
}

/** A refusal after the client and its redirect URI checked out: back to the client when that is safe, else a page. */
async function sendRedirectError(req: FastifyRequest, reply: FastifyReply, ctx: AuthContext, outcome: Extract<Outcome, { kind: 'redirect-error' }>): Promise<FastifyReply> {
  if (!(await errorMayGoBack(req, ctx, outcome.client, outcome.redirectUri))) {
    return sendErrorPage(
      reply,
      400,
      'This request cannot be completed',
      `The app's request was refused (${outcome.error}): ${outcome.description.replace(/\.?$/, '.')} You were not sent on to ${notSentTo(new URL(outcome.redirectUri))}: any site can register as an app here, so this server sends you to one only for a request you can approve, or when you approved that app before.`,
    );
  }
  return redirectToClient(reply, ctx, outcome.redirectUri, { error: outcome.error, error_description: outcome.description, state: outcome.state });
}

/** What /authorize says of a request already decided (RFC 6749 §4.1.2.1: invalid_request). */
const ALREADY_DECIDED = 'This request was already decided; start again from the app.';

/**
 * The one-time identifier (Store.useOnce) of an authorization request, once decided: its client, state, PKCE challenge
 * and redirect URI. A request is decided once (Approve, Deny, or a code for a grant that covers it): found in review
 * (s27rev3, s27web), after an Approve the same request, opened again through a new sign-in (Back shows the sign-in
 * page naming `delegate approve '<that URL>'`), got a consent page again: a Deny there left the Approve's grant, an
 * Approve minted a second code. Device-flow requests are not keyed so: a device takes one decision (RFC 8628 §3.3,
 * consent.ts take).
 */
export function decidedRequestKey(r: { clientId: string; state: string | null | undefined; codeChallenge: string; redirectUri: string }): string {
  return `decided:${hashSecret(JSON.stringify([r.clientId, r.state ?? null, r.codeChallenge, r.redirectUri]))}`;
}

/** How long a decided request is remembered: as long as a request may wait for its decision. */
export function decidedRequestExpiry(ctx: AuthContext, now: number): number {
  return now + ctx.lifetimes.authRequestSec * 1000;
}

/**
 * The parameters this endpoint reads. RFC 6749 §3.1: each may be given once, and any other is ignored, even
 * repeated. `resource` is not here: several of them are a target question (RFC 8707 §2), answered below.
 */
const READ_PARAMETERS = ['client_id', 'redirect_uri', 'state', 'request', 'request_uri', 'response_type', 'response_mode', 'code_challenge', 'code_challenge_method', 'scope', 'authorization_details'];

/** Why a request without redirect_uri is refused, as the page says it. */
const NO_REDIRECT_URI: Record<Extract<ImpliedRedirectUri, { ok: false }>['why'], string> = {
  'none-registered': 'The app did not say where to return you (redirect_uri is missing).',
  'several-registered': 'The app did not say where to return you: redirect_uri is missing, and the app registered more than one.',
  'port-chosen-per-request':
    'The app did not say where to return you: it registered a loopback address whose port it chooses for each sign-in (RFC 8252 section 7.3), so the redirect_uri must be sent.',
};

/** `requester`: the request's source (request-source.ts), which a client new to this server counts against. */
async function validate(ctx: AuthContext, params: FormBody, requester: string): Promise<Outcome> {
  const repeated = READ_PARAMETERS.find((name) => Array.isArray(params[name]));
  const one = (name: string): string | undefined => {
    const v = params[name];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };

  // 1. Client and redirect URI: until both check out, nothing may be sent to the redirect URI.
  const clientId = one('client_id');
  if (!clientId || Array.isArray(params.client_id)) {
    return { kind: 'page-error', status: 400, heading: 'This sign-in request is incomplete', detail: 'The app did not say who it is (client_id is missing or repeated).' };
  }
  let client: ClientRecord | undefined;
  try {
    client = await ctx.clientDocuments.find(clientId, requester);
  } catch (error) {
    // RFC 6749 §4.1.2.1: a client that cannot be verified gets no redirect; the page says why (the draft's Metadata
    // Discovery Errors: the request is aborted).
    if (!(error instanceof InvalidClientError)) throw error;
    return { kind: 'page-error', status: 400, heading: 'This app could not be verified', detail: error.message };
  }
  // An app that registered and got no delegation within a day is forgotten (Store.sweep); the MCP SDK's client registers
  // again only when /token refuses its id, which it never reaches from here (found in review, s31mcp: "Unknown app",
  // and `approve`'s "Start again from the app", which sent the same id again). The way out is on the page.
  if (!client) return { kind: 'page-error', status: 400, heading: 'Unknown app', detail: UNKNOWN_APP };
  if (client.kind === 'agent') {
    return { kind: 'page-error', status: 400, heading: 'This app cannot sign you in', detail: 'Agents act only through delegations you give to other apps.' };
  }
  if (Array.isArray(params.redirect_uri)) {
    return { kind: 'page-error', status: 400, heading: 'This sign-in request is incomplete', detail: 'The app did not say where to return you (redirect_uri is repeated).' };
  }
  const redirectUriGiven = one('redirect_uri') !== undefined;
  // OAuth 2.1 §4.1.1: without redirect_uri, the client's one registered URI, if that names an address (policy/redirect-uri.ts).
  const implied = redirectUriGiven ? undefined : impliedRedirectUri(client.redirectUris);
  if (implied && !implied.ok) {
    return { kind: 'page-error', status: 400, heading: 'This sign-in request is incomplete', detail: NO_REDIRECT_URI[implied.why] };
  }
  const redirectUri = implied?.ok ? implied.uri : one('redirect_uri')!;
  if (redirectUriGiven && !matchRedirectUri(redirectUri, client.redirectUris)) {
    return {
      kind: 'page-error',
      status: 400,
      heading: 'This sign-in request is not safe to follow',
      detail: 'The address the app asked to return you to is not one it registered, so you were not sent there.',
    };
  }
  // A client stored before registration checked this (policy/redirect-uri.ts): the browser would be sent somewhere
  // other than the string registered and matched (found in review, s25rfc: `…/cb\..\other` went to `…/other`).
  const delivered = checkDeliveredAsWritten(redirectUri);
  if (!delivered.ok) {
    return {
      kind: 'page-error',
      status: 400,
      heading: 'This sign-in request is not safe to follow',
      detail: `The address the app registered to return you to is not one this server can send you to as written (${delivered.reason}), so you were not sent there.`,
    };
  }

  // 2. From here on, errors go back to the client.
  // RFC 6749 §3.1: a parameter sent without a value is as if omitted; `state=` is no state (§4.1.2 returns it only
  // when present; Appendix A.5: 1*VSCHAR). It came back as `state=` on the code and on every error redirect.
  const state = typeof params.state === 'string' && params.state !== '' ? params.state : undefined;
  const fail = (error: string, description: string): Outcome => ({ kind: 'redirect-error', client, redirectUri, state, error, description });
  if (repeated) return fail('invalid_request', `The ${repeated} parameter is repeated.`);
  // OpenID Connect Core §3.1.2.6 (and the IANA OAuth Extensions Error registry): each parameter has its own code.
  if (one('request')) return fail('request_not_supported', 'Request objects are not supported.');
  if (one('request_uri')) return fail('request_uri_not_supported', 'The request_uri parameter is not supported.');

  const responseType = one('response_type');
  // RFC 6749 §4.1.2.1: a missing required parameter is invalid_request; unsupported_response_type is for a value given.
  if (responseType === undefined) return fail('invalid_request', 'The response_type parameter is required.');
  if (responseType !== 'code') return fail('unsupported_response_type', 'Only response_type=code is supported.');
  if (!client.grantTypes.includes('authorization_code')) return fail('unauthorized_client', 'This client may not use the authorization code grant.');
  const responseMode = one('response_mode');
  if (responseMode !== undefined && responseMode !== 'query') return fail('invalid_request', 'Only response_mode=query is supported.');

  const pkce = checkChallenge(one('code_challenge'), one('code_challenge_method'));
  if (!pkce.ok) return fail('invalid_request', pkce.reason);

  // RFC 8707: the resource the token is for is required, and must be one this server knows. §2 allows several,
  // and a target the server will not issue for is invalid_target: a token here is for one resource.
  if (Array.isArray(params.resource)) return fail('invalid_target', oneTargetOnly('resource', params.resource.length));
  const resourceParam = one('resource');
  if (!resourceParam) return fail('invalid_target', 'The resource parameter is required.');
  const resourceUrl = canonicalResource(resourceParam);
  const resource = resourceUrl ? await ctx.store.resourceByUrl(resourceUrl) : undefined;
  if (!resource) return fail('invalid_target', 'The resource is not known to this server.');
  if (!takesUserTokens(resource)) return fail('invalid_target', AGENTS_ONLY);

  const requested = readScope(one('scope'));
  if (!requested.ok) return fail('invalid_scope', requested.reason);
  // RFC 6749 §3.3: without a scope, the default is the resource's primary scope; more is asked for when needed.
  const scopes = requested.scopes ?? resource.scopes.slice(0, 1);
  if (!isSubset(scopes, resource.scopes)) {
    return fail('invalid_scope', `The resource offers only: ${resource.scopes.join(' ')}.`);
  }
  const details = requestedDetails(one('authorization_details'), resource);
  if (!details.ok) return fail('invalid_authorization_details', `The authorization details are not acceptable: ${details.reason}.`);
  const codeChallenge = one('code_challenge')!;
  if (!viaDevice(ctx, { redirectUri }) && (await ctx.store.usedAlready(decidedRequestKey({ clientId: client.clientId, state, codeChallenge, redirectUri }), ctx.now()))) {
    return fail('invalid_request', ALREADY_DECIDED);
  }

  return {
    kind: 'ok',
    request: { client, redirectUri, redirectUriGiven, state, resource, scope: formatScope(scopes), codeChallenge, details: details.details },
  };
}

async function showConsentOrSignIn(req: FastifyRequest, reply: FastifyReply, ctx: AuthContext, request: AuthorizationRequest): Promise<FastifyReply> {
  const now = ctx.now();
  const signedIn = await currentSession(req, ctx.store, ctx.cookieName, now, { request: req.url });
  if (!signedIn) return renderSignIn(reply, ctx, req.url);


  const grant = await ctx.store.activeGrant(signedIn.user.id, request.client.clientId, request.resource.url, now);
  if (grant && grantCovers(grant, request.resource, parseScope(request.scope), request.details) && identityAssured(req.url, signedIn.session, request)) {
    // A code for this request decides it: the same request again gets no second one.
    if (!(await ctx.store.useOnce(decidedRequestKey({ ...request, clientId: request.client.clientId }), decidedRequestExpiry(ctx, now), now))) {
      return sendRedirectError(req, reply, ctx, { kind: 'redirect-error', client: request.client, redirectUri: request.redirectUri, state: request.state, error: 'invalid_request', description: ALREADY_DECIDED });
    }
    req.log.info({ client: request.client.clientId, grant: grant.id }, 'covered by an existing grant');
    return issueCode(
      reply,
      ctx,
      {
        userId: signedIn.user.id,
        clientId: request.client.clientId,
        redirectUri: request.redirectUri,
        redirectUriGiven: request.redirectUriGiven,
        resource: request.resource.url,
        scope: request.scope,
        codeChallenge: request.codeChallenge,
        state: request.state,
        grantId: grant.id,
      },
      302,
    );
  }

  const csrf = randomSecret();
  const id = randomId('req');
  const calendars = await calendarNames(ctx, signedIn.user.id);
  const saved = await savePendingRequest(ctx, {
    id,
    sessionHash: signedIn.session.idHash,
    userId: signedIn.user.id,
    clientId: request.client.clientId,
    redirectUri: request.redirectUri,
    redirectUriGiven: request.redirectUriGiven,
    scope: request.scope,
    resource: request.resource.url,
    state: request.state ?? null,
    codeChallenge: request.codeChallenge,
    authorizationDetails: request.details as unknown as Record<string, unknown>[],
    calendarsShown: calendars,
    csrfHash: hashSecret(csrf),
    createdAt: now,
    expiresAt: now + ctx.lifetimes.authRequestSec * 1000,
  });
  if (!saved) return sendAccountRemovedPage(reply);
  // The owner's CLI signed this sign-in for exactly this request: the one case where the app's identity is known.
  const clientAssured = startedByOwnerFor(signedIn.session, req.url);
  return renderConsent(reply, ctx, { request, user: signedIn.user, requestId: id, csrf, grant, clientAssured, calendars });
}

/**
 * Whether an error may go back to the client by redirect (RFC 6749 §4.1.2.1) rather than be shown here.
 * RFC 9700 §4.11.2: with open registration anyone can register a phishing site as a redirect URI and send
 * people a broken request for it, making this server bounce them there from its own trusted address; the AS
 * should redirect on its own only to a redirect URI it trusts, having authenticated the user. Trusted here: a
 * loopback redirect URI (a native app on this computer, RFC 8252 §7.3, where the CLI and MCP clients listen),
 * and a web client that the signed-in user has an active delegation to. Found in review: an unsigned
 * /authorize link without response_type went straight to a registered https://evil.example/cb.
 * A private-use scheme (RFC 8252 §7.1) is not trusted so: any app may claim any scheme, and a link to one starts
 * whatever app on the device handles it, from this server's address; it is treated as an https URI is.
 */
async function errorMayGoBack(req: FastifyRequest, ctx: AuthContext, client: ClientRecord, redirectUri: string): Promise<boolean> {
  if (isLoopbackRedirect(new URL(redirectUri))) return true;
  const now = ctx.now();
  const signedIn = await currentSession(req, ctx.store, ctx.cookieName, now, { request: req.url });
  if (!signedIn) return false;
  return (await ctx.store.listGrants(signedIn.user.id)).some((g) => g.clientId === client.clientId && g.revokedAt === null && g.expiresAt > now);
}

/** The page's words for where an error was not sent: the host, or the app behind a private-use scheme. */
function notSentTo(redirect: URL): string {
  return privateUseScheme(redirect) === undefined ? redirect.host : `the app on your device that opens ${redirectDestination(redirect)} links`;
}

/**
 * RFC 8252 §8.6: a request is answered without asking only when the client's
 * identity is assured: the owner's CLI signed the login for exactly this
 * request, or the client's redirect URI is https (a loopback listener could
 * belong to anyone on this machine, and so could the app that claims a
 * private-use scheme, §8.6 again). A password sign-in for this request
 * says nothing about who wrote it (anyone can send a /login?next=… link).
 */
function identityAssured(url: string, session: SessionRecord, request: AuthorizationRequest): boolean {
  if (startedByOwnerFor(session, url)) return true;
  // `delegate approve` promises the owner the consent page for the request they pasted, whatever app made it (found
  // in review s22new: an https app approved before got its code at once, with no page shown).
  if (session.signedInBy === 'owner_approval') return false;
  return new URL(request.redirectUri).protocol === 'https:';
}
