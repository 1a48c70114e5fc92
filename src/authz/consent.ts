// POST /consent: the user's decision on the consent page. The request must
// come from the page itself (same-origin, the session that saw the page, its
// single-use CSRF token); only then is the decision sent to the client, and
// the session ends with it (one request, one decision). An
// approval creates the grant, or widens or narrows the user's existing grant
// to this client and agent, with the limits chosen on the page, and issues a
// single-use authorization code; none when another user's program listens at
// a loopback redirect URI and the page did not say so.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { calendarDetailFor, formatScope, isDetailSubset, parseCalendarDetail, parseScope, type AuthorizationDetail, type CalendarDetail } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import { uidsSaid } from '../http/listener-owner.js';
import { AccountRemovedError, type AuditEventInput, type AuthRequestRecord, type ConsentGrantDecision, type ConsentGrantOutcome, type GrantRecord } from '../store/index.js';
import { audit } from './audit.js';
import { decidedRequestExpiry, decidedRequestKey } from './authorize.js';
import { issueCode } from './code.js';
import { KEEP_EXPIRY, applyChoices, readChoices, type ChoicesResult } from './consent-choices.js';
import { viaDevice, type AuthContext } from './context.js';
import { constantTimeEqual, hashSecret, randomId } from './crypto.js';
import { grantLimits, offeredDetails, pageOffer } from './grant-policy.js';
import { sendAccountRemovedPage, sendErrorPage } from './pages.js';
import { REDIRECT_LISTENER_FIELD, foreignRedirectListeners, redirectToClient } from './redirect.js';
import { clearSessionCookie, currentSession } from './session.js';

export function registerConsent(app: FastifyInstance, ctx: AuthContext): void {
  app.post('/consent', async (req, reply) => {
    const refusal = crossSiteRefusal(req, ctx.issuer);
    if (refusal) return sendErrorPage(reply, 403, 'This request did not come from the consent page', refusal);

    const body = (req.body ?? {}) as FormBody;
    const field = (name: string): string | undefined => (typeof body[name] === 'string' ? (body[name] as string) : undefined);
    const requestId = field('request');
    const csrf = field('csrf');
    const decision = field('decision');
    if (!requestId || !csrf || (decision !== 'approve' && decision !== 'deny')) {
      return sendErrorPage(reply, 400, 'This form was not filled in by the consent page', 'A field is missing or repeated.');
    }

    const now = ctx.now();
    const pending = await ctx.store.authRequestById(requestId, now);
    // The session that opened this request may decide it: only that request's page could have made it under that
    // session. Among the session cookies sent (a planted one may come first), the one of that session.
    const signedIn = pending && (await currentSession(req, ctx.store, ctx.cookieName, now, { opened: pending.sessionHash }));
    // CSRF: the decision must come from the session that saw the page (another one is refused as a forgery), with that
    // page's token.
    if (pending && !signedIn && (await currentSession(req, ctx.store, ctx.cookieName, now, { anyBound: true }))) {
      return sendErrorPage(reply, 403, 'This request did not come from the consent page', 'Its security token does not match.');
    }
    if (!pending || !signedIn) {
      return sendErrorPage(reply, 400, 'This request has expired', 'The consent page was open too long, or its decision was already taken. Start again from the app.');
    }
    if (!constantTimeEqual(hashSecret(csrf), pending.csrfHash)) {
      return sendErrorPage(reply, 403, 'This request did not come from the consent page', 'Its security token does not match.');
    }

    if (decision === 'deny') {
      if (!(await spendSession(reply, ctx, signedIn.session.idHash))) return decisionTaken(reply);
      const taken = await take(ctx, pending, now, 'deny');
      if (!taken || !(await decideOnce(ctx, taken, now))) return sendErrorPage(reply, 400, 'This request has expired', 'Its decision was already taken.');
      await audit(ctx, { event: 'consent', user: taken.userId, client: taken.clientId, resource: taken.resource, detail: { decision: 'denied', scope: taken.scope, ...flowOf(ctx, taken) } });
      req.log.info({ client: taken.clientId }, 'consent denied');
      return redirectToClient(reply, ctx, taken.redirectUri, { error: 'access_denied', error_description: 'The user denied the request.', state: taken.state ?? undefined }, 303);
    }
    return approve(req, reply, ctx, pending, signedIn.session.idHash, body, now);
  });
}

/**
 * Ends the session that is deciding, and clears its cookie, before the decision is taken: one request, one decision.
 * False when another decision spent it first (two at once). Found in review (s27web): the session stayed good after
 * a decision for the request it was bound to, and the cookie, sent with the Deny's redirect to the app's listener
 * (cookies are not isolated by port), opened that request's consent page again for whoever listened there, who
 * approved it; and a second page of the same session took a second decision (a Deny after an Approve left the
 * Approve's grant).
 */
async function spendSession(reply: FastifyReply, ctx: AuthContext, sessionHash: string): Promise<boolean> {
  if (!(await ctx.store.deleteSession(sessionHash))) return false;
  clearSessionCookie(reply, ctx.cookieName, ctx.secureCookies);
  return true;
}

function decisionTaken(reply: FastifyReply): FastifyReply {
  return sendErrorPage(reply, 400, 'This request has expired', 'A decision was already taken in this sign-in. Start again from the app.');
}

async function approve(req: FastifyRequest, reply: FastifyReply, ctx: AuthContext, pending: AuthRequestRecord, sessionHash: string, form: FormBody, now: number): Promise<FastifyReply> {
  // Looked up again as the code is about to be issued: a program of another user that started listening at a loopback
  // redirect URI after the page was shown (or took the port since) gets no code unless the page named that very user;
  // for `localhost`, on either loopback (s23new). Nothing is taken or changed: the app's page, opened again, says who
  // listens (consent-page.ts returnNotice).
  const named = typeof form[REDIRECT_LISTENER_FIELD] === 'string' ? form[REDIRECT_LISTENER_FIELD].split(',') : [];
  const unnamed = foreignRedirectListeners(ctx, pending.redirectUri).filter((uid) => !named.includes(String(uid)));
  if (unnamed.length > 0) {
    req.log.warn({ client: pending.clientId, uids: unnamed }, "consent approved, no code issued: another user's program listens at the redirect URI");
    return sendErrorPage(
      reply,
      403,
      'Nothing was sent to the app',
      `Its answer would go to a program of another user of this computer (${uidsSaid(unnamed)}), which the page did not say when you approved. Nothing was issued. If you did not expect that, do nothing more; otherwise start again from the app.`,
    );
  }
  const resource = await ctx.store.resourceByUrl(pending.resource);
  if (!resource) return sendErrorPage(reply, 400, 'This agent is no longer available', 'Its registration was removed while you were deciding.');

  // The constraints the client proposed, else what the agent can be given; then the user's narrowing.
  const offers = offeredDetails(resource, pending.authorizationDetails as unknown as CalendarDetail[]);
  // One set of limits for every place, as the page offered it: the narrowest of the places' (found in the s24 brief:
  // the first place's alone, so another place's entry could be granted more than it asked).
  const calendar = pageOffer(offers);
  const userCalendars = (await ctx.store.listCalendars(pending.userId)).map((c) => c.name);
  // The choices read against a grant: the page started from the user's current one, on a step-up.
  const choicesAgainst = (existing: GrantRecord | undefined) =>
    readChoices(form, {
      userCalendars,
      calendarsShown: pending.calendarsShown,
      askedCalendars: calendar?.calendars,
      askedLookahead: calendar?.lookahead_days,
      maxDepth: ctx.defaultMaxDepth,
      hasCalendar: calendar !== undefined,
      ...(existing ? { current: grantLimits(existing) } : {}),
    });
  // Checked before the request is taken, so that choices that cannot be used leave the page to be sent again.
  const read = choicesAgainst(await ctx.store.activeGrant(pending.userId, pending.clientId, pending.resource, now));
  if (!read.ok) return sendErrorPage(reply, 400, 'Your choices could not be used', read.reason);
  if (!(await spendSession(reply, ctx, sessionHash))) return decisionTaken(reply);
  const taken = await take(ctx, pending, now, 'approve');
  if (!taken || !(await decideOnce(ctx, taken, now))) return sendErrorPage(reply, 400, 'This request has expired', 'Its decision was already taken.');

  // The grant is decided again against the one found in the transaction that writes it: another Approve for the same
  // client (a second consent page of the same app, approved at the same moment) may have written one since the look
  // above, and this consent then adds to it, as it would have one after the other (found in review, s26: both made a
  // grant, and `logout` ended one while the other stayed active for 30 days).
  const key = { userId: taken.userId, clientId: taken.clientId, resource: taken.resource };
  let saved: ConsentGrantOutcome;
  try {
    saved = await ctx.store.saveConsentGrant(key, now, (existing) => consentGrant(ctx, taken, offers, existing, choicesAgainst(existing), now));
  } catch (err) {
    // Found in review (s26): an Approve as `users remove` retired the account was a JSON 500 (server_error).
    if (!(err instanceof AccountRemovedError)) throw err;
    // The device this Approve claimed gets no code now: it is ended, so that its polls say why at once.
    if (viaDevice(ctx, taken) && taken.state) await ctx.store.endDeviceOfRemovedAccount(taken.state);
    req.log.info({ client: taken.clientId }, 'consent approved, no grant made: the account was removed');
    return sendAccountRemovedPage(reply);
  }
  if ('refused' in saved) return sendErrorPage(reply, 400, 'Your choices could not be used', `${saved.refused} Start again from the app.`);
  const { grant } = saved;

  req.log.info({ client: taken.clientId, grant: grant.id }, 'consent approved');
  return issueCode(
    reply,
    ctx,
    {
      userId: taken.userId,
      clientId: taken.clientId,
      redirectUri: taken.redirectUri,
      redirectUriGiven: taken.redirectUriGiven !== false,
      resource: taken.resource,
      scope: taken.scope,
      codeChallenge: taken.codeChallenge,
      state: taken.state,
      grantId: grant.id,
    },
    303,
  );
}

/**
 * What an approval makes of the user's grant to the client for the resource, `existing` when there is one: the
 * grant to write and its consent record, or the reason the choices do not hold against it. Pure; called in the
 * store's transaction (Store.saveConsentGrant).
 */
function consentGrant(
  ctx: AuthContext,
  taken: AuthRequestRecord,
  offers: readonly CalendarDetail[],
  existing: GrantRecord | undefined,
  read: ChoicesResult,
  now: number,
): ConsentGrantDecision {
  if (!read.ok) return { refused: read.reason };
  const details: AuthorizationDetail[] = offers.map((o) => applyChoices(o, read.choices));
  const grant: GrantRecord = {
    id: existing?.id ?? randomId('grt'),
    userId: taken.userId,
    clientId: taken.clientId,
    resource: taken.resource,
    // A new consent adds to what the user already allowed this client (step-up); the limits are the ones just
    // chosen, on a page that started from the current ones (consent-page.ts).
    scope: formatScope([...parseScope(existing?.scope), ...parseScope(taken.scope)]),
    authorizationDetails: details as Record<string, unknown>[],
    maxDepth: read.choices.maxDepth,
    createdAt: existing?.createdAt ?? now,
    expiresAt: read.choices.expiresDays === KEEP_EXPIRY && existing ? existing.expiresAt : now + Number(read.choices.expiresDays) * 86_400_000,
    revokedAt: null,
  };
  // A grant narrowed in any way (a limit, the depth, its end) takes back the tokens issued under the old one:
  // they carry the old limits, and resource servers read limits from the token. Found in review: after a
  // narrowing, CalendarAgent went on reading with the user's old token and its cached calendar token.
  const narrowed = existing !== undefined && narrows(existing, grant);
  // The grant's change and its consent record commit together (found in review: with the record failing, a
  // step-up was granted and a narrowing revoked tokens off the record, and the next request got a code
  // without a consent page). A record that cannot be written leaves the grant as it was; no code is issued.
  const record = (tokensRevoked: number): AuditEventInput => ({
    event: 'consent',
    user: taken.userId,
    client: taken.clientId,
    grant: grant.id,
    resource: taken.resource,
    detail: {
      decision: 'approved',
      ...flowOf(ctx, taken),
      scope: grant.scope,
      authorization_details: details,
      max_depth: grant.maxDepth,
      expires_at: new Date(grant.expiresAt).toISOString(),
      ...(existing
        ? {
            previous_scope: existing.scope,
            previous_authorization_details: existing.authorizationDetails,
            previous_max_depth: existing.maxDepth,
            previous_expires_at: new Date(existing.expiresAt).toISOString(),
            ...(narrowed ? { narrowed: true, tokens_revoked: tokensRevoked } : {}),
          }
        : {}),
    },
  });
  return { grant, ...(narrowed ? { narrowedAt: now } : {}), record };
}

/**
 * Whether `after` allows less than `before` in any way: a detail of `before` (at any of its locations) that
 * `after` does not cover, a shorter chain, an earlier end. The scope only grows (a step-up adds to it).
 */
export function narrows(before: GrantRecord, after: GrantRecord): boolean {
  if (after.maxDepth < before.maxDepth || after.expiresAt < before.expiresAt) return true;
  const now = after.authorizationDetails as unknown as AuthorizationDetail[];
  return before.authorizationDetails.some((raw) => {
    const old = parseCalendarDetail(raw);
    if (!old.ok) return true;
    return old.detail.locations.some((location) => {
      const current = calendarDetailFor(now, location);
      return current === undefined || !isDetailSubset({ ...old.detail, locations: [location] }, current).ok;
    });
  });
}

/**
 * Takes the pending request for this decision, once. A request the device flow made (its redirect URI is this
 * server's /device/done) is taken with its device: only while the device is undecided, and with every other
 * consent page open for it, so a device that was denied, cancelled, approved or expired gets no grant from a
 * second page (RFC 8628 §3.3; found in review: Deny on one page, Approve on another made a 90-day grant).
 */
function take(ctx: AuthContext, pending: AuthRequestRecord, now: number, decision: 'approve' | 'deny'): Promise<AuthRequestRecord | undefined> {
  return viaDevice(ctx, pending) ? ctx.store.takeDeviceAuthRequest(pending.id, now, decision) : ctx.store.takeAuthRequest(pending.id, now);
}

/**
 * Records the request as decided (authorize.ts decidedRequestKey): false when it was already, by another page of it
 * opened under another sign-in. Device-flow requests are decided once with their device (take).
 */
async function decideOnce(ctx: AuthContext, taken: AuthRequestRecord, now: number): Promise<boolean> {
  return viaDevice(ctx, taken) || ctx.store.useOnce(decidedRequestKey(taken), decidedRequestExpiry(ctx, now), now);
}


/**
 * What a consent record says of the flow: the device flow's approvals say so (found in review: an owner asking "what
 * did I approve for another device?", the flow SECURITY.md singles out for remote phishing, could not tell them from
 * local ones).
 */
function flowOf(ctx: AuthContext, request: AuthRequestRecord): { via?: 'device' } {
  return viaDevice(ctx, request) ? { via: 'device' } : {};
}

/**
 * Browsers say where a form post came from: a present Origin must be the
 * issuer's, and Sec-Fetch-Site (when sent) must be same-origin.
 */
export function crossSiteRefusal(req: FastifyRequest, issuer: string): string | undefined {
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== new URL(issuer).origin) return 'It was sent by another site.';
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return 'It was sent by another site.';
  return undefined;
}
