// The device authorization grant (RFC 8628), for a CLI whose browser cannot
// reach its loopback listener (another computer, a phone, ssh). The device
// asks POST /device_authorization for a device code and a user code; the
// person opens /device (verification_uri_complete carries the code), signs
// in, confirms the code is the one the device shows (§5.4, remote phishing),
// and then gets this server's own consent page: the verification page makes
// an ordinary authorization request for the device's client whose redirect
// URI is this server's /device/done, so consent, grant policy and codes are
// exactly those of the code flow. /device/done keeps the code for the
// device; the device's poll of /token (grant_type device_code, handled by a
// hook before token.ts) redeems it with the PKCE verifier the server holds,
// through the authorization_code grant itself.
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CustomOAuthError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { canonicalResource, formatScope, isSubset } from '../delegation/index.js';
import { ACTS_ON_GET, type FormBody } from '../http/app.js';
import type { ClientRecord, DeviceAuthorizationRecord } from '../store/index.js';
import { authenticateClient } from './client-auth.js';
import { calendarNames, renderConsent, savePendingRequest } from './consent-page.js';
import { crossSiteRefusal } from './consent.js';
import { audit } from './audit.js';
import { DEVICE_DONE_PATH, type AuthContext } from './context.js';
import { constantTimeEqual, hashSecret, randomId, randomSecret } from './crypto.js';
import { renderDeviceConfirm, renderDeviceDone, renderDeviceEntry } from './device-page.js';
import { InvalidRequestError, InvalidScopeError, InvalidTargetError, ServerError, TooManyRequestsError, UnauthorizedClientError, replyWithError } from './errors.js';
import { DEVICE_CODE_USED, redeemAuthorizationCode } from './grant-code.js';
import { ownerAsserted } from './owner-proof.js';
import { AGENTS_ONLY, takesUserTokens } from './grant-policy.js';
import { sendAccountRemovedPage, sendErrorPage } from './pages.js';
import { queryParams, required, scopeParam, singleTarget } from './params.js';
import { addressKey } from './login.js';
import { FailureCounter, type RateLimitRule } from './rate-limit.js';
import { DEVICE_CODE_SEC, VERIFICATION_PATH, boundRequest, completeVerificationPath, normalizeUserCode, readSignIn } from './bound-pages.js';
import { currentSession, startedByOwnerFor, type SessionContext } from './session.js';
import { renderSignIn } from './sign-in-page.js';

export const GRANT_TYPE_DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';
export const DEVICE_AUTHORIZATION_PATH = '/device_authorization';
export { VERIFICATION_PATH, normalizeUserCode } from './bound-pages.js';

/** The least time between polls (§3.2 interval). */
const POLL_INTERVAL_SEC = 5;
/** §6.1: consonants only, so that no code spells a word; 8 of 20 letters ≈ 34.6 bits, plenty for 10 minutes behind a sign-in. */
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';
/** Draws of a user code before giving up (each taken one is already a one-in-billions event). */
const USER_CODE_DRAWS = 5;

/** §5.1: wrong codes typed by one signed-in person before the page makes them wait. */
export const WRONG_CODE_LIMIT = { limit: 5, windowMs: 15 * 60_000 };

/**
 * Device requests stored per source (all of loopback is one) in the device code's lifetime before the next waits
 * (429): a person starts one or two; a program that floods the table is held to this many live rows.
 */
export const DEVICE_REQUEST_LIMIT: RateLimitRule = { limit: 30, windowMs: DEVICE_CODE_SEC * 1000 };

export function registerDeviceGrant(app: FastifyInstance, ctx: AuthContext, deviceRequestLimit: RateLimitRule = DEVICE_REQUEST_LIMIT): void {
  const doneUri = `${ctx.issuer}${DEVICE_DONE_PATH}`;
  const wrongCodes = new FailureCounter(WRONG_CODE_LIMIT, ctx.now);
  const deviceRequests = new FailureCounter(deviceRequestLimit, ctx.now);
  /** The answer to someone who typed too many wrong codes lately, or undefined when they may try. */
  const tooManyWrongCodes = (reply: FastifyReply, userId: string): FastifyReply | undefined => {
    const wait = wrongCodes.retryAfterMs(`user:${userId}`);
    if (wait <= 0) return undefined;
    reply.header('Retry-After', String(Math.ceil(wait / 1000)));
    return renderDeviceEntry(reply, `Too many wrong codes. Try again in ${Math.ceil(wait / 60_000)} minute(s).`, 429);
  };

  /**
   * The pending device authorization a typed code names, or undefined (counted as a wrong code).
   * Counted before the lookup and taken back when it is right, so that no number of codes typed
   * at once gets past the limit, whatever the lookup waits for.
   */
  const lookUpCode = async (userId: string, typed: string, now: number) => {
    const attempt = wrongCodes.fail(`user:${userId}`);
    const found = await ctx.store.deviceAuthorizationByUserCode(normalizeUserCode(typed), now);
    if (!found || found.status !== 'pending') return undefined;
    wrongCodes.forgive(`user:${userId}`, attempt);
    return found;
  };

  app.post(DEVICE_AUTHORIZATION_PATH, async (req, reply) => {
    let counted: { source: string; attempt: number } | undefined;
    try {
      // RFC 8628 §3.1: the request is a form, as at the token endpoint (found in review: a JSON body was taken).
      if (!isForm(req)) throw new InvalidRequestError('The device authorization request must be application/x-www-form-urlencoded.');
      // A machine endpoint: no device client sends Origin or Fetch Metadata, so a request with either from
      // elsewhere is a web page's form post (found in review: a cross-site form started device requests).
      const refusal = crossSiteRefusal(req, ctx.issuer);
      if (refusal) throw new InvalidRequestError(`${refusal} Device authorization requests are not taken from web pages.`);
      // Each request leaves a row for its 10 minutes and the sweep's grace after: a bound per source (all of
      // loopback is one), counted before anything is awaited and taken back unless a request is stored, so that
      // none sent at once get past it (found in review: 655 requests a second, never deleted).
      const source = addressKey(req.ip);
      const wait = deviceRequests.retryAfterMs(source);
      if (wait > 0) {
        reply.header('Retry-After', String(Math.ceil(wait / 1000)));
        throw new TooManyRequestsError('Too many device authorization requests from this address; try again later.');
      }
      counted = { source, attempt: deviceRequests.fail(source) };
      const body = formBody(req);
      const { client } = await authenticateClient(req, body, ctx);
      if (!client.grantTypes.includes(GRANT_TYPE_DEVICE_CODE)) throw new UnauthorizedClientError('This client did not register for the device authorization grant.');
      const resourceParam = singleTarget(body, 'resource');
      if (!resourceParam) throw new InvalidTargetError('The resource parameter is required.');
      const resource = await ctx.store.resourceByUrl(canonicalResource(resourceParam) ?? '');
      if (!resource) throw new InvalidTargetError('The resource is not known to this server.');
      if (!takesUserTokens(resource)) throw new InvalidTargetError(AGENTS_ONLY);
      const scopes = scopeParam(body) ?? resource.scopes.slice(0, 1);
      if (!isSubset(scopes, resource.scopes)) throw new InvalidScopeError(`The resource offers only: ${resource.scopes.join(' ')}.`);

      const now = ctx.now();
      const deviceCode = randomSecret();
      const request: Omit<DeviceAuthorizationRecord, 'userCode'> = {
        deviceCodeHash: hashSecret(deviceCode),
        clientId: client.clientId,
        scope: formatScope(scopes),
        resource: resource.url,
        state: randomSecret(),
        codeVerifier: randomSecret(),
        status: 'pending',
        code: null,
        intervalSec: POLL_INTERVAL_SEC,
        lastPolledAt: null,
        createdAt: now,
        expiresAt: now + DEVICE_CODE_SEC * 1000,
      };
      // 20^8 user codes: a draw that a live request already holds is rare, and drawn again.
      let userCode: string | undefined;
      for (let draw = 0; draw < USER_CODE_DRAWS && userCode === undefined; draw++) {
        const drawn = newUserCode();
        if (await ctx.store.createDeviceAuthorization({ ...request, userCode: drawn })) userCode = drawn;
      }
      if (userCode === undefined) throw new ServerError('No free user code could be drawn; try again.');
      counted = undefined;
      req.log.info({ client: client.clientId }, 'device authorization started');
      const verificationUri = `${ctx.issuer}${VERIFICATION_PATH}`;
      return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache').send({
        device_code: deviceCode,
        user_code: userCode,
        verification_uri: verificationUri,
        verification_uri_complete: `${ctx.issuer}${completeVerificationPath(userCode)}`,
        expires_in: DEVICE_CODE_SEC,
        interval: POLL_INTERVAL_SEC,
      });
    } catch (err) {
      // Nothing was stored: the request does not count against its source.
      if (counted) deviceRequests.forgive(counted.source, counted.attempt);
      return replyWithError(req, reply, err);
    }
  });

  // The verification page: the code, then sign in for that code, then confirm it. Typing the code
  // needs no session: a session is good for one code only (see SessionUse), so it is started for the code typed.
  app.get(VERIFICATION_PATH, ACTS_ON_GET, async (req, reply) => {
    const now = ctx.now();
    const query = queryParams(req.url);
    const typed = query.user_code;
    if (typeof typed !== 'string' || typed.trim() === '') return renderDeviceEntry(reply, undefined);
    // Only the person's own visit may spend their wrong codes: otherwise the code is shown to check, and counted when sent.
    if (!openedByThePerson(req)) return renderDeviceEntry(reply, undefined, 200, wellFormedUserCode(typed));
    const page = completeVerificationPath(typed);
    // A sign-in (the owner's link or a password) binds its session to the page with its sign-in value.
    const signIn = readSignIn(query.signin);
    const signedIn = await currentSession(req, ctx.store, ctx.cookieName, now, { request: boundRequest(page, signIn) });
    if (!signedIn) return renderSignIn(reply, ctx, page);
    const guessing = tooManyWrongCodes(reply, signedIn.user.id);
    if (guessing) return guessing;
    const found = await lookUpCode(signedIn.user.id, typed, now);
    if (!found) {
      return renderDeviceEntry(reply, 'That code is not valid, was used already, or has expired. Check the code on your device, or start again there.');
    }
    const context = await requestContext(ctx, found);
    if (!context) return sendErrorPage(reply, 400, 'This request can no longer be completed', 'The app or the agent it asked for is no longer registered.');
    return renderDeviceConfirm(reply, {
      userCode: found.userCode,
      client: context.client,
      clientAssured: ownersOwnLink(signedIn, boundRequest(page, signIn)),
      agentName: context.resource.name,
      csrf: signedIn.csrf,
      ...(signIn ? { signIn } : {}),
    });
  });

  // Confirmed: this server's consent page for an authorization request made for the device's client.
  app.post(VERIFICATION_PATH, async (req, reply) => {
    const refusal = crossSiteRefusal(req, ctx.issuer);
    if (refusal) return sendErrorPage(reply, 403, 'This request did not come from the verification page', refusal);
    const now = ctx.now();
    const body = formBody(req);
    const typed = typeof body.user_code === 'string' ? body.user_code : '';
    // A session may confirm the code it was started for, with the sign-in value the confirmation form carries.
    const signedIn = await currentSession(req, ctx.store, ctx.cookieName, now, { request: boundRequest(completeVerificationPath(typed), readSignIn(body.signin)) });
    if (!signedIn) return renderSignIn(reply, ctx, completeVerificationPath(typed));
    // Both answers change state (Cancel denies the device): the form must be the one this server showed.
    if (typeof body.csrf !== 'string' || !constantTimeEqual(body.csrf, signedIn.csrf)) {
      return sendErrorPage(reply, 403, 'This form expired', 'Open the link on your device again.');
    }
    const guessing = tooManyWrongCodes(reply, signedIn.user.id);
    if (guessing) return guessing;
    const found = await lookUpCode(signedIn.user.id, typed, now);
    if (!found) return renderDeviceEntry(reply, 'That code is not valid, was used already, or has expired.');
    if (body.decision === 'cancel') {
      await ctx.store.settleDeviceAuthorization(found.state, { status: 'denied' }, now);
      // A consent decision like Deny on the consent page, and on the record the same way (found in review: Cancel wrote none).
      await audit(ctx, { event: 'consent', user: signedIn.user.id, client: found.clientId, resource: found.resource, detail: { decision: 'denied', scope: found.scope, via: 'device' } });
      return renderDeviceDone(reply, false);
    }
    const context = await requestContext(ctx, found);
    if (!context) return sendErrorPage(reply, 400, 'This request can no longer be completed', 'The app or the agent it asked for is no longer registered.');
    const csrf = randomSecret();
    const id = randomId('req');
    const codeChallenge = createHash('sha256').update(found.codeVerifier).digest('base64url');
    const calendars = await calendarNames(ctx, signedIn.user.id);
    const saved = await savePendingRequest(ctx, {
      id,
      sessionHash: signedIn.session.idHash,
      userId: signedIn.user.id,
      clientId: found.clientId,
      redirectUri: doneUri,
      scope: found.scope,
      resource: found.resource,
      state: found.state,
      codeChallenge,
      authorizationDetails: [],
      calendarsShown: calendars,
      csrfHash: hashSecret(csrf),
      createdAt: now,
      expiresAt: Math.min(found.expiresAt, now + ctx.lifetimes.authRequestSec * 1000),
    });
    if (!saved) return sendAccountRemovedPage(reply);
    const grant = await ctx.store.activeGrant(signedIn.user.id, found.clientId, found.resource, now);
    return renderConsent(reply, ctx, {
      request: { client: context.client, redirectUri: doneUri, redirectUriGiven: true, state: found.state, resource: context.resource, scope: found.scope, codeChallenge, details: [] },
      user: signedIn.user,
      requestId: id,
      csrf,
      grant,
      device: { userCode: found.userCode },
      clientAssured: ownersOwnLink(signedIn, boundRequest(completeVerificationPath(typed), readSignIn(body.signin))),
      calendars,
    });
  });

  // Where the consent page sends the browser: the decision is kept for the device's next poll.
  app.get(DEVICE_DONE_PATH, ACTS_ON_GET, async (req, reply) => {
    const params = queryParams(req.url);
    const state = typeof params.state === 'string' ? params.state : '';
    const now = ctx.now();
    const found = state ? await ctx.store.deviceAuthorizationByState(state, now) : undefined;
    if (!found) return sendErrorPage(reply, 400, 'This request has expired', 'Start again on your device.');
    if (params.iss !== ctx.issuer) return sendErrorPage(reply, 400, 'This answer is not from this server', 'Start again on your device.');
    // Removed after its Approve, before the browser got here: its device was ended with it (Store.removeUser).
    if (found.status === 'account_removed') return sendAccountRemovedPage(reply);
    const approved = typeof params.code === 'string' && params.error === undefined;
    const settled = await ctx.store.settleDeviceAuthorization(state, approved ? { status: 'approved', code: params.code as string } : { status: 'denied' }, now);
    if (!settled) return sendErrorPage(reply, 400, 'This request was already answered', 'Return to your device.');
    req.log.info({ client: found.clientId, approved }, 'device authorization decided');
    return renderDeviceDone(reply, approved);
  });

  // The device's polls (RFC 8628 §3.4), before token.ts sees the request.
  app.addHook('preHandler', async (req, reply) => {
    if (req.method !== 'POST' || req.url.split('?')[0] !== '/token') return;
    const body = (req.body ?? {}) as FormBody;
    if (body.grant_type !== GRANT_TYPE_DEVICE_CODE) return;
    try {
      return await reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache').send(await deviceCodeGrant(ctx, req, body, doneUri));
    } catch (err) {
      return replyWithError(req, reply, err);
    }
  });
}

async function deviceCodeGrant(ctx: AuthContext, req: FastifyRequest, body: FormBody, doneUri: string): Promise<Record<string, unknown>> {
  if (!isForm(req)) throw new InvalidRequestError('The token request must be application/x-www-form-urlencoded.');
  const { client } = await authenticateClient(req, body, ctx);
  if (!client.grantTypes.includes(GRANT_TYPE_DEVICE_CODE)) throw new UnauthorizedClientError('This client may not use the device_code grant.');
  // The owner's CLI proves itself on every poll (a fresh assertion each time), before the poll counts: the code
  // behind an approved device is then redeemed only if the owner approved it (owner-proof.ts).
  const byOwner = await ownerAsserted(ctx, body);
  // Found only with the client it was issued to (RFC 8628 §3.5, RFC 6749 §5.2): another client's poll is refused
  // before it counts (found in review: it slowed the device down, and spent the code the user had approved).
  const deviceCodeHash = hashSecret(required(body, 'device_code'));
  const poll = await ctx.store.pollDeviceAuthorization(deviceCodeHash, client.clientId, ctx.now());
  if (!poll) throw new DeviceError('invalid_grant', 'The device code is not valid.');
  if (poll.status === 'expired') throw new DeviceError('expired_token', 'The device code has expired; start again.');
  if (poll.tooSoon) throw new DeviceError('slow_down', `Poll at most every ${poll.record.intervalSec} seconds.`);
  switch (poll.status) {
    case 'pending':
      throw new DeviceError('authorization_pending', 'The user has not decided yet.');
    case 'denied':
      throw new DeviceError('access_denied', 'The user denied the request.');
    case 'consumed':
      throw new DeviceError('invalid_grant', DEVICE_CODE_USED);
    case 'account_removed':
      // The device's authorization was revoked with the account (`users remove`), as its grants were: invalid_grant
      // (RFC 8628 §3.5 takes RFC 6749 §5.2's codes), not access_denied (nobody denied it), and at once, not
      // authorization_pending until the code expires. The CLI shows the description.
      throw new DeviceError('invalid_grant', 'The account that approved this sign-in was removed.');
    case 'approved': {
      // The request is spent with the code, in the transaction that records the tokens (`device`), so a redemption
      // that fails leaves both for the device's next poll: a grant changed at every reading (500, "try again"), a
      // full or read-only store (500). Found in review (s21): the poll spent the request first, and was handed it
      // back only after the grant-changed race, so after a full disk its next poll was "used already".
      // A poll may name the resource it wants (RFC 8707 §2); one other than the request's is invalid_target, as at the
      // code and refresh grants, and the code is left unspent for the device's next poll (redeemAuthorizationCode checks
      // it before it redeems). Found in review (s35fuzz): the poll's resource was ignored, so resource=the calendar
      // backend, urn:x or another site got 200 with a token for the agent.
      const code = { code: poll.code, redirect_uri: doneUri, code_verifier: poll.record.codeVerifier, resource: body.resource ?? poll.record.resource };
      const tokens = await redeemAuthorizationCode(ctx, client, code, { byOwner, grantType: GRANT_TYPE_DEVICE_CODE, device: deviceCodeHash });
      req.log.info({ client: client.clientId }, 'device authorization redeemed');
      return tokens;
    }
  }
}

/** RFC 8628 §3.5 errors: 400 with the code, never cached. */
class DeviceError extends CustomOAuthError {}

async function requestContext(ctx: AuthContext, found: DeviceAuthorizationRecord): Promise<{ client: ClientRecord; resource: NonNullable<Awaited<ReturnType<AuthContext['store']['resourceByUrl']>>> } | undefined> {
  const [client, resource] = await Promise.all([ctx.store.clientById(found.clientId), ctx.store.resourceByUrl(found.resource)]);
  return client && resource ? { client, resource } : undefined;
}

/** Whether the owner's CLI signed this session's sign-in link for this very page (so it started this device request). */
function ownersOwnLink(signedIn: SessionContext, request: string): boolean {
  return signedIn.user.isOwner && startedByOwnerFor(signedIn.session, request);
}

/**
 * Whether the browser says this GET of the verification page is the person's own visit: a document they opened
 * themselves (typed, a bookmark, a QR code, the CLI's link: Sec-Fetch-Site none) or reached from this server's
 * own form (same-origin). An image, frame or fetch from another page, or a link followed from another site
 * (cross-site, or same-site: another port of this host), is not; looking its code up would let that page spend
 * the person's wrong codes and lock them out (RFC 8628 §5.1; found in review: five <img> on another loopback
 * port did). A browser that sends no Fetch Metadata is taken at its word, as at the form posts (consent.ts).
 */
function openedByThePerson(req: FastifyRequest): boolean {
  const site = req.headers['sec-fetch-site'];
  const dest = req.headers['sec-fetch-dest'];
  if (site !== undefined && site !== 'none' && site !== 'same-origin') return false;
  return dest === undefined || dest === 'document';
}

/** The typed code in its usual form, when it could be one (to fill in the form), else undefined. */
function wellFormedUserCode(typed: string): string | undefined {
  const normalized = normalizeUserCode(typed);
  return new RegExp(`^[${USER_CODE_ALPHABET}]{4}-[${USER_CODE_ALPHABET}]{4}$`).test(normalized) ? normalized : undefined;
}

/** BCDF-GHJK: 8 letters of the alphabet, grouped by four. */
function newUserCode(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  // 256 is not a multiple of 20: redraw the few values that would favour some letters.
  const letters = [...bytes].map((b) => {
    let v = b;
    while (v >= 240) v = crypto.getRandomValues(new Uint8Array(1))[0]!;
    return USER_CODE_ALPHABET[v % USER_CODE_ALPHABET.length]!;
  });
  return `${letters.slice(0, 4).join('')}-${letters.slice(4).join('')}`;
}

function isForm(req: FastifyRequest): boolean {
  return req.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded') === true;
}

function formBody(req: FastifyRequest): FormBody {
  return (req.body ?? {}) as FormBody;
}

export type { FastifyReply };
