// The one request a browser session is good for (see SessionUse in
// session.ts), written the same way by the sign-in that binds a session and
// by the pages that check it: the page a sign-in leads to (a device's code
// page under its code as this server writes it), with a random `signin` value
// that only the browser that signed in was sent.
import { randomSecret } from './crypto.js';
import { queryParams } from './params.js';

export const VERIFICATION_PATH = '/device';
/** How long a device request waits for the person (RFC 8628 §3.2 expires_in), and so how long the owner's link to its code page may live. */
export const DEVICE_CODE_SEC = 600;
export const GRANTS_PATH = '/grants';

/** What a person types: any case, with or without the dash or spaces (RFC 8628 §6.1). */
export function normalizeUserCode(typed: string): string {
  const letters = typed.toUpperCase().replace(/[^A-Z]/g, '');
  return letters.length === 8 ? `${letters.slice(0, 4)}-${letters.slice(4)}` : letters;
}

/** The path and query of verification_uri_complete (RFC 8628 §3.3.1) for a user code, however it was typed. */
export function completeVerificationPath(typed: string): string {
  return `${VERIFICATION_PATH}?user_code=${encodeURIComponent(normalizeUserCode(typed))}`;
}

/** The user code a device's code page names, when `page` is exactly that page as this server writes it (completeVerificationPath). */
export function verificationPageCode(page: string): string | undefined {
  if (!page.startsWith(`${VERIFICATION_PATH}?`)) return undefined;
  const typed = queryParams(page).user_code;
  return typeof typed === 'string' && completeVerificationPath(typed) === page ? normalizeUserCode(typed) : undefined;
}

/**
 * The query parameter a password sign-in adds to the page it leads to: 256
 * random bits, sent only to the browser that signed in (in the 303's
 * Location, on this server's origin), and part of the request its session is
 * bound to. A cookie taken by a listener on another port of this host
 * (cookies are not isolated by port) comes without it, so it opens nothing,
 * not even that page: the page's `next` may have been written by whoever
 * sent the sign-in link (their own authorization request, their device's
 * code). The owner's sign-in link adds one too (owner-login.ts): the CLI
 * signed its `next`, but that request is public (the app made it, and
 * `delegate approve` has it on its command line), so a cookie bound to it
 * alone opened its consent page for whoever else got the cookie.
 */
export const SIGN_IN_PARAM = 'signin';

export function withSignIn(page: string, value: string): string {
  return `${page}${page.includes('?') ? '&' : '?'}${SIGN_IN_PARAM}=${value}`;
}

/**
 * `page` (a path and query) without any sign-in value, the rest of its query as it was: what the sign-in page names or
 * sends a password sign-in on to. Found in review (s27rev3): Back or reload after a decision showed the command
 * `delegate approve '…&signin=…'`, the value live while another sign-in of the same browser was, and once run it was on
 * a command line every user can read (and signInTarget then added a second).
 */
export function withoutSignIn(page: string): string {
  const at = page.indexOf('?');
  if (at === -1) return page;
  const kept = page
    .slice(at + 1)
    .split('&')
    .filter((part) => {
      const name = part.split('=')[0]!;
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // Not percent-encoding this server reads as the sign-in value's name: kept as it is.
      }
      return decoded !== SIGN_IN_PARAM;
    });
  return kept.length === 0 ? page.slice(0, at) : `${page.slice(0, at)}?${kept.join('&')}`;
}

/** The sign-in value a query or form carries, when it has the shape of one this server makes (randomSecret). */
export function readSignIn(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9_-]{43}$/.test(value) ? value : undefined;
}

/** The request a page was asked for, as a session bound to it names it: the page itself, with the sign-in value it came with. */
export function boundRequest(page: string, signIn: string | undefined): string {
  return signIn === undefined ? page : withSignIn(page, signIn);
}

/**
 * The request a password sign-in for `next` (already a safe return path)
 * binds its session to, and sends the browser on to: that authorization
 * request, a device's code page as this server writes it, or /grants, each
 * with a new sign-in value. The code form (/device without a code) needs no
 * session.
 */
export function signInTarget(next: string): string {
  const path = next.split('?')[0];
  const value = randomSecret();
  if (path === GRANTS_PATH) return withSignIn(GRANTS_PATH, value);
  if (path === VERIFICATION_PATH) {
    const typed = queryParams(next).user_code;
    return typeof typed === 'string' && typed.trim() !== '' ? withSignIn(completeVerificationPath(typed), value) : VERIFICATION_PATH;
  }
  return withSignIn(next, value);
}
