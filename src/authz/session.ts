// Browser sessions at the authorization server: a random session id in an
// HttpOnly, SameSite=Lax cookie, stored only as a hash. Cookies are not
// isolated by port (RFC 6265 §8.5): on a plain-http issuer the browser sends
// the cookie to every port of the host, another local user's listener
// included, and any of those ports may set it. So the cookie name carries the
// issuer's port, and every session is good for one request only (see
// SessionUse), for as long as that request may wait; on an https issuer the
// cookie is a `__Host-` cookie (RFC 6265bis §4.1.3.2).
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuditEventInput, SessionRecord, SignInMethod, Store, UserRecord } from '../store/index.js';
import { constantTimeEqual, hashSecret, randomSecret } from './crypto.js';

export interface SessionContext {
  session: SessionRecord;
  user: UserRecord;
  /** The token that forms of this session must carry (derived from the secret session id, so only pages shown to it know it). */
  csrf: string;
}

export function sessionCsrf(sessionId: string): string {
  return hashSecret(`csrf|${sessionId}`);
}

/**
 * The session cookie's name. On an https issuer it has the `__Host-` prefix,
 * so browsers take it only with Secure, Path=/ and no Domain, from this very
 * host: a sibling host under the same domain cannot plant one.
 */
export function sessionCookieName(issuer: string): string {
  const https = issuer.startsWith('https:');
  const port = new URL(issuer).port || (https ? '443' : '80');
  return `${https ? '__Host-' : ''}delegate_session_${port}`;
}

/** Reads one cookie from a Cookie header (RFC 6265 §5.4), or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  return readCookies(header, name, 1)[0];
}

/** How many values of the session cookie's name a request is looked at for (cookiesNamed). */
export const SESSION_COOKIES_READ = 4;

/**
 * Every value of one cookie in a Cookie header, in the order sent, at most `max`. A browser sends several of one name
 * when they were set for different paths (the more specific first, RFC 6265 §5.4), and any port of this host may set
 * one (§8.5): a value planted on `Path=/authorize` comes before the session's own.
 */
export function readCookies(header: string | undefined, name: string, max: number): string[] {
  const values: string[] = [];
  if (!header) return values;
  for (const part of header.split(';')) {
    if (values.length >= max) break;
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) values.push(part.slice(eq + 1).trim());
  }
  return values;
}

/**
 * What a route lets a session do. Every session is bound to the one request
 * it was started for (its path and query, kept as a hash): the page its
 * sign-in leads to (one authorization request, one device code, /grants)
 * with a random `signin` value in the URL that only the browser that signed
 * in was sent (bound-pages.ts), for the owner's sign-in link as for a
 * password. Cookies are not isolated by port, and the owner's link passes
 * through command lines that other users can read: whoever else gets the
 * cookie (or plants one) comes without that value, and so opens nothing. A
 * consent decision spends the session (consent.ts): one request, one
 * decision. A route that says nothing takes no session.
 */
export interface SessionUse {
  /** The request being made (path and query): a session is good for it when it is the one the session is bound to. */
  request?: string;
  /**
   * The session that opened a pending request (its id's hash): the consent decision, which only that request's page
   * could have made under it.
   */
  opened?: string;
  /** Any session is good, because it gives nothing (sign-out). */
  anyBound?: boolean;
}

/**
 * The session this request may use: among the values of the session cookie it carries (at most
 * SESSION_COOKIES_READ, in the order sent), the first that names a live session good for `use`. Found in review
 * (s27web): only the first value was read, so one planted on a more specific path, sent first, hid the owner's.
 */
export async function currentSession(req: FastifyRequest, store: Store, cookieName: string, now: number, use: SessionUse): Promise<SessionContext | undefined> {
  for (const id of readCookies(req.headers.cookie, cookieName, SESSION_COOKIES_READ)) {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) continue;
    const session = await store.sessionByHash(hashSecret(id), now);
    if (!session || !goodFor(session, use)) continue;
    const user = await store.userById(session.userId);
    if (user) return { session, user, csrf: sessionCsrf(id) };
  }
  return undefined;
}

function goodFor(session: SessionRecord, use: SessionUse): boolean {
  if (use.anyBound) return true;
  if (use.opened !== undefined) return constantTimeEqual(session.idHash, use.opened);
  return use.request !== undefined && boundTo(session, use.request);
}

/** Whether the session is bound to this very request (path and query). */
export function boundTo(session: SessionRecord, request: string): boolean {
  return constantTimeEqual(session.boundRequestHash, hashSecret(request));
}

/**
 * Whether the owner's CLI asked for this very request: the session was started
 * by its sign-in link, which it signed for this request. A password sign-in's
 * `next` may have been written by anyone (a link someone sent), so a session
 * bound by it says nothing about who made the request.
 */
export function startedByOwnerFor(session: SessionRecord, request: string): boolean {
  return session.signedInBy === 'owner_link' && boundTo(session, request);
}

interface SessionStart {
  cookieName: string;
  userId: string;
  now: number;
  ttlMs: number;
  secure: boolean;
  request: string;
  signedInBy: SignInMethod;
}

/** Starts a session for `user`, good for `request` only, and sets its cookie on `reply`. */
export async function startSession(reply: FastifyReply, store: Store, opts: SessionStart): Promise<SessionRecord> {
  const { id, session } = newSession(opts);
  await store.createSession(session);
  setSessionCookie(reply, opts, id);
  return session;
}

/**
 * startSession for a password sign-in (Store.startPasswordSession): only while the account's hash is still `verified`,
 * the one the password was checked against, then replaced by `upgraded` when given; with the sign-in's `record` in
 * the same transaction. False, no cookie set, when a new password was set meanwhile.
 */
export async function startPasswordSession(
  reply: FastifyReply,
  store: Store,
  opts: Omit<SessionStart, 'signedInBy'>,
  password: { verified: string; upgraded?: string },
  record: AuditEventInput,
): Promise<boolean> {
  const { id, session } = newSession({ ...opts, signedInBy: 'password' });
  if (!(await store.startPasswordSession(session, password, { event: record, at: opts.now }))) return false;
  setSessionCookie(reply, opts, id);
  return true;
}

function newSession(opts: SessionStart): { id: string; session: SessionRecord } {
  const id = randomSecret();
  const session: SessionRecord = {
    idHash: hashSecret(id),
    userId: opts.userId,
    createdAt: opts.now,
    expiresAt: opts.now + opts.ttlMs,
    boundRequestHash: hashSecret(opts.request),
    signedInBy: opts.signedInBy,
  };
  return { id, session };
}

function setSessionCookie(reply: FastifyReply, opts: Pick<SessionStart, 'cookieName' | 'ttlMs' | 'secure'>, id: string): void {
  const attrs = ['Path=/', 'HttpOnly', 'SameSite=Lax', `Max-Age=${Math.floor(opts.ttlMs / 1000)}`];
  if (opts.secure) attrs.push('Secure');
  reply.header('Set-Cookie', `${opts.cookieName}=${id}; ${attrs.join('; ')}`);
}

export function clearSessionCookie(reply: FastifyReply, cookieName: string, secure: boolean): void {
  reply.header('Set-Cookie', `${cookieName}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${secure ? '; Secure' : ''}`);
}
