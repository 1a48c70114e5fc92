// The authorization response: a redirect to the client's validated redirect
// URI carrying the result, the state and the issuer (RFC 9207); and who
// listens at a loopback redirect URI of this computer.
import type { FastifyReply } from 'fastify';
import { isAnyLoopbackHost } from '../delegation/resource.js';
import { errorDescription } from '../error-description.js';
import { foreignListenersAt } from '../http/listener-owner.js';
import type { AuthContext } from './context.js';
import { isLoopbackRedirect } from './policy/redirect-uri.js';

/**
 * 302 (or 303 after a POST, RFC 9700 §4.12) to the redirect URI with the response parameters and `iss`. The
 * parameters are added to the URI's query as it is written (RFC 6749 §3.1.2: a query "MUST be retained when adding
 * additional query parameters"), not re-encoded with them: found in review (s25rfc), `?a&x=~` was delivered as
 * `?a=&x=%7E&code=…`. /authorize took only a URI that names none of these parameters and that a URL parser reads as
 * written (policy/redirect-uri.ts checkDeliveredAsWritten), whose `href` is then that string, or what RFC 3986 calls
 * equivalent to it (the host in lower case, a bare origin's `/`).
 */
export function redirectToClient(
  reply: FastifyReply,
  ctx: Pick<AuthContext, 'issuer'>,
  redirectUri: string,
  params: Record<string, string | undefined>,
  status: 302 | 303 = 302,
): FastifyReply {
  const response = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    // RFC 6749 §4.1.2.1 holds error_description to the same characters as §5.2.
    if (value !== undefined) response.set(key, key === 'error_description' ? errorDescription(value) : value);
  }
  response.set('iss', ctx.issuer);
  const base = new URL(redirectUri).href;
  const separator = !base.includes('?') ? '?' : base.endsWith('?') || base.endsWith('&') ? '' : '&';
  return reply.code(status).header('Cache-Control', 'no-store').header('Location', `${base}${separator}${response}`).send();
}

/** The consent form's field that carries the uids (comma-separated) its page named as listening at the redirect URI (consent-page.ts). */
export const REDIRECT_LISTENER_FIELD = 'redirect_listener';

/**
 * The uids of other users of this computer whose programs listen at a loopback redirect URI, when this server is on
 * loopback too (then the browser, the app and this server share the computer); empty when nobody or this server's
 * own user (or root) listens there, or nothing can tell (not Linux: src/http/listener-owner.ts). Any app may register
 * a loopback redirect URI on any port under any name (RFC 8252 §7.3, §8.6), and while the port is free any user of
 * the computer may listen on it: found in review (s23local), another user registered "Claude Code" with his own
 * listener's port, the owner approved it, and the code went to his program, which redeemed it. For `localhost`
 * both loopbacks count, whichever the browser tries first (s23new: Chromium took [::1], another user's, while this
 * server held 127.0.0.1 on the same port).
 */
export function foreignRedirectListeners(ctx: Pick<AuthContext, 'issuer'>, redirectUri: string | URL): number[] {
  const url = typeof redirectUri === 'string' ? new URL(redirectUri) : redirectUri;
  if (!isLoopbackRedirect(url) || !isAnyLoopbackHost(new URL(ctx.issuer).hostname)) return [];
  return foreignListenersAt(url);
}
