// GET /login/owner: the local owner's passwordless sign-in. The CLI, running
// as the OS user that owns the data directory, signs a short-lived assertion
// with the private key in owner-key.json (0600 in a 0700 directory); nobody
// else on the machine can read that key. Each assertion works once, is signed
// for the one `next` it continues to, and the session it starts is good only
// for that request. It lives 2 minutes, except the link to a device's code
// page, which lives as long as that device request (RFC 8628: it is opened on
// another device, maybe minutes later). A refused link (replayed, expired,
// signed by another key) is recorded as `sign_in_failed`, once per source,
// reason and minute.
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { calculateJwkThumbprint, decodeProtectedHeader, errors, exportJWK, importJWK, jwtVerify, type CryptoKey, type JWK, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { SIGNING_ALG } from '../delegation/index.js';
import { ACTS_ON_GET } from '../http/app.js';
import type { AuthContext } from './context.js';
import { sendErrorPage } from './pages.js';
import { queryParams } from './params.js';
import { startSession } from './session.js';
import { constantTimeEqual, hashSecret, randomSecret } from './crypto.js';
import { addressKey, isReturnPath } from './login.js';
import { OncePerWindow } from './rate-limit.js';
import { audit } from './audit.js';
import { DEVICE_CODE_SEC, verificationPageCode, withSignIn } from './bound-pages.js';

export const OWNER_ASSERTION_ISSUER = 'delegate-cli';
export const OWNER_ASSERTION_SUBJECT = 'owner';
/** Longest life of a login assertion, in seconds (and of the token endpoint's, owner-proof.ts). */
export const OWNER_ASSERTION_MAX_LIFETIME_SEC = 120;
/** Longest life of the login assertion of a device's code page: the device code's (RFC 8628 expires_in). */
export const OWNER_DEVICE_ASSERTION_MAX_LIFETIME_SEC = DEVICE_CODE_SEC;
/** SHA-256 (base64url) of the `next` the link continues to, as the CLI signs it (src/client/owner-login.ts). */
export const OWNER_ASSERTION_NEXT_CLAIM = 'next_sha256';
/**
 * `true` in the link `delegate approve` signs: the request it continues to was made by another app (an MCP client
 * doing its own OAuth), not by the owner's CLI, so the session says so (signedInBy 'owner_approval'): the consent page
 * is always shown, and the app is never named as the owner's own command (RFC 8252 §8.6: its identity is not assured).
 */
export const OWNER_ASSERTION_APPROVAL_CLAIM = 'approval';

/** One `sign_in_failed` record per (source, reason) in this window: a link replayed in a loop cannot grow the log faster. */
export const OWNER_LINK_REFUSAL_WINDOW_MS = 60_000;

/** Why an owner sign-in link was refused, as its `sign_in_failed` record says. */
type OwnerLinkRefusal = 'reused' | 'invalid' | 'other_key';

export function registerOwnerLogin(app: FastifyInstance, ctx: AuthContext): void {
  const recorded = new OncePerWindow(OWNER_LINK_REFUSAL_WINDOW_MS, ctx.now);
  /**
   * Records a refused link, where it came from (the peer's address, as a password sign-in's record says), unless this
   * source's refusal for this reason was recorded within the window. Found in review (s23audit): only a log line said so.
   */
  const refused = async (ip: string, reason: OwnerLinkRefusal): Promise<void> => {
    if (!recorded.first(`${addressKey(ip)} ${reason}`)) return;
    await audit(ctx, { event: 'sign_in_failed', detail: { method: 'owner_link', reason, source: ip } });
  };
  app.get('/login/owner', ACTS_ON_GET, async (req, reply) => {
    const params = queryParams(req.url);
    const assertion = params.assertion;
    const next = params.next;
    if (typeof assertion !== 'string' || typeof next !== 'string') {
      return sendErrorPage(reply, 400, 'This sign-in link is incomplete', `Run ${ctx.delegateCommand()} login again to get a new link.`);
    }
    // Only this server's authorization or device endpoint, as a relative path, may follow the owner's sign-in.
    if (!isReturnPath(next, ['/authorize?', '/device?'])) {
      return sendErrorPage(reply, 400, 'This sign-in link is not safe to follow', 'It would send you somewhere other than this server’s consent page.');
    }
    if (!ctx.ownerKeyPath) return sendErrorPage(reply, 403, 'Owner sign-in is not set up here', 'This server has no owner key, so it cannot check the link.');
    const key = await ownerPublicKey(ctx.ownerKeyPath);
    // The command that signed the link read (or made) the owner key of its data directory; this server's has none, so
    // that command uses another data directory (found in review, regress21a).
    if (!key) return sendOtherDataDirectoryPage(reply, 'This server has no owner key in its data directory');

    const now = ctx.now();
    let jti: string;
    let exp: number;
    let approval: boolean;
    try {
      // `delegate login --device` prints this link for a browser on any device, which may open it minutes later (found in
      // review: dead after 2 minutes while the CLI waited 10). The link to a device's code page may live as long as that
      // device request, and is good only while the request waits for the person and only if signed after it was made; any
      // other link, 2 minutes (verifiedOwnerAssertion).
      const code = verificationPageCode(next);
      const device = code === undefined ? undefined : await ctx.store.deviceAuthorizationByUserCode(code, now);
      const waiting = device !== undefined && device.status === 'pending';
      const payload = await verifiedOwnerAssertion(assertion, key, ctx.issuer, now, waiting ? { maxLifetimeSec: OWNER_DEVICE_ASSERTION_MAX_LIFETIME_SEC } : {});
      ({ jti, exp } = payload);
      approval = payload[OWNER_ASSERTION_APPROVAL_CLAIM] === true;
      if (payload.exp - payload.iat > OWNER_ASSERTION_MAX_LIFETIME_SEC && !(waiting && payload.iat >= Math.floor(device.createdAt / 1000))) {
        throw new Error('long-lived assertion for no waiting device request');
      }
      // Signed for this `next` only: the link passes on command lines, where another user may read it and send it elsewhere.
      const signedFor = payload[OWNER_ASSERTION_NEXT_CLAIM];
      if (typeof signedFor !== 'string' || !constantTimeEqual(signedFor, hashSecret(next))) throw new Error('assertion for another page');
    } catch (error) {
      if (await signedByAnotherKey(error, assertion, key)) {
        req.log.info('owner sign-in refused: assertion signed by another owner key');
        await refused(req.ip, 'other_key');
        return sendOtherDataDirectoryPage(reply, 'It is signed by a key this server does not know');
      }
      req.log.info('owner sign-in refused: invalid assertion');
      await refused(req.ip, 'invalid');
      return sendErrorPage(reply, 403, 'This sign-in link is not valid', `It has expired or was not made on this computer. Run ${ctx.delegateCommand()} login again.`);
    }
    if (!(await ctx.store.useOnce(`owner-login:${jti}`, exp * 1000, now))) {
      req.log.info('owner sign-in refused: link reused');
      await refused(req.ip, 'reused');
      return sendErrorPage(reply, 403, 'This sign-in link was already used', `Each link works once. Run ${ctx.delegateCommand()} login again.`);
    }
    const owner = await ctx.store.ownerUser();
    if (!owner) return sendErrorPage(reply, 500, 'This server has no owner account', 'Restart delegate to set it up.');

    // The request the CLI signed this login for, with a new sign-in value that only this browser is sent (in this 303),
    // as a password sign-in's (bound-pages.ts). Found in review (s27web): bound to `next` alone, which is public (the app
    // made it; `delegate approve` has it on its command line), the cookie, which the browser sends to every port of this
    // host (the Deny's redirect to the app's own listener, say), opened that request's consent page again for whoever
    // got it, who approved it for himself.
    const target = withSignIn(next, randomSecret());
    await startSession(reply, ctx.store, {
      cookieName: ctx.cookieName,
      userId: owner.id,
      now,
      // Bound to that one request (see SessionUse), for as long as it may wait for consent.
      ttlMs: ctx.lifetimes.authRequestSec * 1000,
      secure: ctx.secureCookies,
      request: target,
      signedInBy: approval ? 'owner_approval' : 'owner_link',
    });
    await audit(ctx, { event: 'sign_in', user: owner.id, detail: { method: approval ? 'owner_approval' : 'owner_link' } });
    req.log.info({ user: owner.id }, 'owner signed in');
    return reply.code(303).header('Cache-Control', 'no-store').header('Location', target).send();
  });
}

/**
 * The page for a link that was signed with the owner key of another data directory, as `why` says it. Nothing of that
 * directory is known here, and nothing of this one is named: the page may reach another user.
 */
function sendOtherDataDirectoryPage(reply: FastifyReply, why: string): FastifyReply {
  return sendErrorPage(
    reply,
    403,
    'This sign-in link was made for another data directory',
    `${why}: the command that made the link uses another data directory (DELEGATE_HOME) than this server. Run that command with this server’s data directory, or stop this server and run the command again.`,
  );
}

/**
 * Whether a refused assertion failed only on its signature, made with another key than `key`: the CLI names its key by
 * its RFC 7638 thumbprint (`kid`, src/client/owner-login.ts), and that is not this one's. One that names this key, or
 * none, was altered or made otherwise, and is "not valid" as any other.
 */
async function signedByAnotherKey(error: unknown, assertion: string, key: CryptoKey): Promise<boolean> {
  if (!(error instanceof errors.JWSSignatureVerificationFailed)) return false;
  try {
    const { kid } = decodeProtectedHeader(assertion);
    return typeof kid === 'string' && kid !== (await calculateJwkThumbprint(await exportJWK(key)));
  } catch {
    return false;
  }
}

/**
 * The claims of an assertion signed with the owner key, checked as every one is
 * (the link's here, the token endpoint's in owner-proof.ts): ES256 only, iss
 * "delegate-cli", sub "owner", this audience, iat and exp at most 120 s apart
 * (or `maxLifetimeSec`: a device's code page), a jti of at least 128 bits.
 * Throws when it is not; the caller checks what is its own, and spends the jti.
 */
export async function verifiedOwnerAssertion(
  assertion: string,
  key: CryptoKey,
  audience: string,
  now: number,
  options: Pick<JWTVerifyOptions, 'maxTokenAge'> & { maxLifetimeSec?: number } = {},
): Promise<JWTPayload & { jti: string; exp: number; iat: number }> {
  const { maxLifetimeSec = OWNER_ASSERTION_MAX_LIFETIME_SEC, ...verifyOptions } = options;
  const { payload } = await jwtVerify(assertion, key, {
    algorithms: [SIGNING_ALG],
    issuer: OWNER_ASSERTION_ISSUER,
    subject: OWNER_ASSERTION_SUBJECT,
    audience,
    currentDate: new Date(now),
    requiredClaims: ['jti', 'iat', 'exp'],
    ...verifyOptions,
  });
  const jti = String(payload.jti);
  if (payload.exp! - payload.iat! > maxLifetimeSec || jti.length < 22) throw new Error('assertion too weak');
  return { ...payload, jti, exp: payload.exp!, iat: payload.iat! };
}

/** The public half of the owner's login key, or undefined when there is none to use. */
export async function ownerPublicKey(path: string): Promise<CryptoKey | undefined> {
  try {
    const jwk = JSON.parse(await readFile(path, 'utf8')) as JWK;
    const { d: _private, ...publicJwk } = jwk;
    return (await importJWK(publicJwk, SIGNING_ALG)) as CryptoKey;
  } catch {
    return undefined;
  }
}
