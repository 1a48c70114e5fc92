// Browser sessions at the authorization server: a random session id in an
// HttpOnly, SameSite=Lax cookie, stored only as a hash. Cookies are not
// isolated by port, so the cookie name carries the issuer's port.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SessionRecord, Store, UserRecord } from '../store/index.js';
import { hashSecret, randomSecret } from './crypto.js';

export interface SessionContext {
  session: SessionRecord;
  user: UserRecord;
  /** The token that forms of this session must carry (derived from the secret session id, so only pages shown to it know it). */
  csrf: string;
}

export function sessionCsrf(sessionId: string): string {
  return hashSecret(`csrf|${sessionId}`);
}

export function sessionCookieName(issuer: string): string {
  const port = new URL(issuer).port || (issuer.startsWith('https:') ? '443' : '80');
  return `delegate_session_${port}`;
}

/** Reads one cookie from a Cookie header (RFC 6265 §5.4), or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * What a route lets a session do. A session started by the owner's sign-in
 * link is bound to the one request the CLI signed that link for (its path and
 * query, kept as a hash): the link passes through command lines (xdg-open's,
 * the browser's), which other users of the machine can read in /proc, so
 * whoever opens it first gets that request's pages and nothing else. A route
 * that says nothing takes only sessions that are not bound.
 */
export interface SessionUse {
  /** The request being made (path and query): a bound session is good for it when it is the one the session is bound to. */
  request?: string;
  /**
   * A bound session is good whatever the request, because the route's own
   * check ties it to what the session began (the consent decision, whose
   * pending request names the session that opened it) or it gives nothing (sign-out).
   */
  anyBound?: boolean;
}

export async function currentSession(req: FastifyRequest, store: Store, cookieName: string, now: number, use: SessionUse = {}): Promise<SessionContext | undefined> {
  const id = readCookie(req.headers.cookie, cookieName);
  if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
  const session = await store.sessionByHash(hashSecret(id), now);
  if (!session) return undefined;
  if (session.boundRequestHash && !use.anyBound && !(use.request !== undefined && boundTo(session, use.request))) return undefined;
  const user = await store.userById(session.userId);
  return user && { session, user, csrf: sessionCsrf(id) };
}

/** Whether the session is bound to this very request (path and query). The hash is of a public URL, not a secret. */
export function boundTo(session: SessionRecord, request: string): boolean {
  return session.boundRequestHash === hashSecret(request);
}

/** Starts a session for `user` and sets its cookie on `reply`. */
export async function startSession(
  reply: FastifyReply,
  store: Store,
  opts: { cookieName: string; userId: string; now: number; ttlMs: number; secure: boolean; boundRequestHash?: string },
): Promise<SessionRecord> {
  const id = randomSecret();
  const session: SessionRecord = {
    idHash: hashSecret(id),
    userId: opts.userId,
    createdAt: opts.now,
    expiresAt: opts.now + opts.ttlMs,
    boundRequestHash: opts.boundRequestHash ?? null,
  };
  await store.createSession(session);
  const attrs = ['Path=/', 'HttpOnly', 'SameSite=Lax', `Max-Age=${Math.floor(opts.ttlMs / 1000)}`];
  if (opts.secure) attrs.push('Secure');
  reply.header('Set-Cookie', `${opts.cookieName}=${id}; ${attrs.join('; ')}`);
  return session;
}

export function clearSessionCookie(reply: FastifyReply, cookieName: string): void {
  reply.header('Set-Cookie', `${cookieName}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`);
}
