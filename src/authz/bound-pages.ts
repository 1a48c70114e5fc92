// The one request a browser session is good for (see SessionUse in
// session.ts), written the same way by the sign-in that binds a session and
// by the pages that check it: a device's code page under its code as this
// server writes it, and a view of /grants whose URL carries a random value
// only the browser that signed in was sent.
import { randomSecret } from './crypto.js';
import { queryParams } from './params.js';

export const VERIFICATION_PATH = '/device';
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

/**
 * One view of /grants. Its URL is the session's only way in: a cookie taken
 * by a listener on another port of this host (cookies are not isolated by
 * port) comes without it, since only the browser that signed in was sent it,
 * in a Location header on this server's own origin.
 */
export function grantsView(view: string): string {
  return `${GRANTS_PATH}?view=${view}`;
}

/** The view a form or URL names, when it has the shape of one this server makes (randomSecret). */
export function readView(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9_-]{43}$/.test(value) ? value : undefined;
}

/**
 * The request a password sign-in for `next` (already a safe return path)
 * binds its session to, and sends the browser on to: that authorization
 * request as it is, a device's code page as this server writes it, or a new
 * view of /grants.
 */
export function signInTarget(next: string): string {
  const path = next.split('?')[0];
  if (path === GRANTS_PATH) return grantsView(randomSecret());
  if (path === VERIFICATION_PATH) {
    const typed = queryParams(next).user_code;
    return typeof typed === 'string' && typed.trim() !== '' ? completeVerificationPath(typed) : VERIFICATION_PATH;
  }
  return next;
}
