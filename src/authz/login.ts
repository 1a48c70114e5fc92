// Named accounts' sign-in (server mode): GET /login shows the form, POST
// /login checks the password (scrypt, constant time) and starts a session
// for the one page it leads to (an authorization request, a device's code,
// /grants), with a random value in its URL (bound-pages.ts), as long as an
// authorization request waits: cookies are not isolated by port (RFC 6265
// §8.5), so another user's listener on this host may get the cookie, or
// plant one. Failed attempts are rate-limited per
// account and per address (all of loopback counting as one). The form is
// protected against CSRF by a cookie it must match (no session exists yet),
// and a login may only lead back to this server's own pages.
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FormBody } from '../http/app.js';
import { audit } from './audit.js';
import { crossSiteRefusal } from './consent.js';
import type { AuthContext } from './context.js';
import { constantTimeEqual, randomSecret } from './crypto.js';
import { html, notePageRefusal, sendPage, type Html } from './pages.js';
import { PasswordChecksBusy, upgradedHash, verifyPassword } from './password.js';
import { FailureCounter } from './rate-limit.js';
import { readCookie, startPasswordSession } from './session.js';
import { GRANTS_PATH, signInTarget } from './bound-pages.js';
import { approveCommand } from './approve-command.js';
import { queryParams } from './params.js';
import { isAnyLoopbackHost } from '../delegation/resource.js';

export const ACCOUNT_LIMIT = { limit: 5, windowMs: 15 * 60_000 };
export const ADDRESS_LIMIT = { limit: 20, windowMs: 15 * 60_000 };

/**
 * A path on this server a sign-in may send the browser back to: one of the
 * given prefixes, in printable ASCII only. A query is percent-encoded when it
 * is real; a raw control or non-ASCII character would not even fit in a
 * Location header, and a backslash is read as a slash by browsers.
 */
export function isReturnPath(next: string, prefixes: readonly string[]): boolean {
  return /^\/[\x21-\x5b\x5d-\x7e]*$/.test(next) && prefixes.some((p) => (p.endsWith('?') || p.endsWith('/') ? next.startsWith(p) : next === p || next.startsWith(`${p}?`)));
}

/** Where a sign-in may lead: this server's authorization endpoint, its device pages or its grants page. */
export function safeNext(next: string | undefined): string {
  return next !== undefined && isReturnPath(next, ['/authorize?', '/device', '/grants']) ? next : '/grants';
}

export function loginCookieName(ctx: AuthContext): string {
  return `${ctx.cookieName}_login`;
}

/**
 * The key of the per-address limit. Every loopback address is one: a user of
 * this machine can send from any of 127.0.0.0/8 (and ::1, or either as an
 * IPv4-mapped address), and would otherwise get 20 guesses from each. An
 * IPv6 address counts by its /64.
 */
export function addressKey(ip: string): string {
  // Behind a trusted proxy, req.ip is what its X-Forwarded-For named (http/app.ts), which some proxies write with a
  // port and any client can fill with text. Found in review (regress20f): `203.0.113.5:40001`, `…:40002`, … each got a
  // budget of their own, 25 failed sign-ins and no 429. The address alone counts; what is no address shares one key.
  const plain = plainAddress(ip);
  if (plain === undefined) return 'address:unparsed';
  const lower = plain.toLowerCase();
  const v4 = lower.startsWith('::ffff:') && isIPv4(lower.slice(7)) ? lower.slice(7) : lower;
  if ((isIPv4(v4) && v4.startsWith('127.')) || v4 === '::1') return 'address:loopback';
  // An IPv4 address whether it comes plain or IPv4-mapped (a dual-stack listener reports the latter).
  if (isIPv4(v4)) return `address:${v4}`;
  // Found in review: in server mode every IPv6 address had a budget of its own, and anyone with a /64 (what a
  // single host is usually given) has 2^64 of them. Counted by /64, as rate limits on IPv6 commonly are.
  const prefix = ipv6Prefix64(v4);
  return prefix === undefined ? `address:${ip}` : `address:${prefix}::/64`;
}

/**
 * The IP address in `value` as a proxy may write it in X-Forwarded-For (RFC 7239 §6 shows both forms): with a port
 * (`203.0.113.5:40001`), in brackets with or without one (`[2001:db8::1]:443`), or plain; undefined for anything else.
 */
export function plainAddress(value: string): string | undefined {
  const trimmed = value.trim();
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(trimmed);
  const withPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(trimmed);
  const candidate = bracketed?.[1] ?? withPort?.[1] ?? trimmed;
  return isIP(candidate.split('%')[0]!) !== 0 ? candidate : undefined;
}

/** The first four groups of an IPv6 address, in canonical hex (its /64), or undefined when it is not one. */
function ipv6Prefix64(ip: string): string | undefined {
  const address = ip.split('%')[0]!; // a zone (fe80::1%eth0) is not part of the address
  if (!isIPv6(address)) return undefined;
  // A dotted IPv4 tail (::ffff:…, 64:ff9b::1.2.3.4) is the last two groups.
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  const hex = dotted
    ? `${dotted[1]}${((Number(dotted[2]) << 8) | Number(dotted[3])).toString(16)}:${((Number(dotted[4]) << 8) | Number(dotted[5])).toString(16)}`
    : address;
  const [head, tail] = hex.includes('::') ? hex.split('::') : [hex, undefined];
  const before = head ? head.split(':') : [];
  const after = tail ? tail.split(':') : [];
  const groups = tail === undefined ? before : [...before, ...Array<string>(8 - before.length - after.length).fill('0'), ...after];
  if (groups.length !== 8) return undefined;
  return groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':');
}

export function registerLogin(app: FastifyInstance, ctx: AuthContext): void {
  const byAccount = new FailureCounter(ACCOUNT_LIMIT, ctx.now);
  const byAddress = new FailureCounter(ADDRESS_LIMIT, ctx.now);

  app.get('/login', async (req, reply) => {
    const next = safeNext(typeof queryParams(req.url).next === 'string' ? (queryParams(req.url).next as string) : undefined);
    return showLoginForm(reply, ctx, next, 200);
  });

  app.post('/login', async (req, reply) => {
    const refusal = crossSiteRefusal(req, ctx.issuer);
    if (refusal) return showLoginForm(reply, ctx, '/grants', 403, refusal);
    const form = (req.body ?? {}) as FormBody;
    const field = (name: string): string => (typeof form[name] === 'string' ? (form[name] as string) : '');
    const next = safeNext(field('next'));
    const expected = readCookie(req.headers.cookie, loginCookieName(ctx));
    if (!expected || !constantTimeEqual(field('csrf'), expected)) return showLoginForm(reply, ctx, next, 403, 'This form expired. Please sign in again.');

    const name = field('username').trim();
    const accountKey = `account:${name.toLowerCase()}`;
    const address = addressKey(req.ip);
    const wait = Math.max(byAccount.retryAfterMs(accountKey), byAddress.retryAfterMs(address));
    if (wait > 0) {
      req.log.info('sign-in refused: too many failed attempts');
      reply.header('Retry-After', String(Math.ceil(wait / 1000)));
      return showLoginForm(reply, ctx, next, 429, `Too many failed attempts. Try again in ${Math.ceil(wait / 60_000)} minute(s).`);
    }
    // Counted as failed before the check, which takes a while (scrypt): guesses sent all at once
    // would otherwise all be checked before the first failure was counted. Taken back unless it fails.
    const attempt = { account: byAccount.fail(accountKey), address: byAddress.fail(address) };
    const forgive = () => {
      byAccount.forgive(accountKey, attempt.account);
      byAddress.forgive(address, attempt.address);
    };
    let user;
    let ok: boolean;
    try {
      user = name ? await ctx.store.userByName(name) : undefined;
      // An unknown name is checked against a dummy hash at the current parameters (password.ts): as long as a known one.
      ok = await verifyPassword(field('password'), user?.passwordHash);
    } catch (error) {
      // Not a wrong password: the server could not check it (busy, or failing).
      forgive();
      if (!(error instanceof PasswordChecksBusy)) throw error;
      reply.header('Retry-After', '1');
      return showLoginForm(reply, ctx, next, 503, 'Too many sign-ins at once. Try again in a moment.');
    }
    const verified = ok ? user?.passwordHash : undefined;
    // A hash made with older scrypt parameters is replaced by one at the current parameters, now that the password is known.
    const upgraded = verified ? await upgradedHash(field('password'), verified) : undefined;
    // Good for `next` only, for as long as an authorization request waits: whoever else gets the cookie gets that page.
    const target = signInTarget(next);
    const started =
      user &&
      verified &&
      (await startPasswordSession(
        reply,
        ctx.store,
        { cookieName: ctx.cookieName, userId: user.id, now: ctx.now(), ttlMs: ctx.lifetimes.authRequestSec * 1000, secure: ctx.secureCookies, request: target },
        { verified, ...(upgraded ? { upgraded } : {}) },
        // Where from, as a failed sign-in says (found in review, s33audit: only the failures named the address).
        { event: 'sign_in', user: user.id, detail: { method: 'password', source: req.ip, ...(upgraded ? { rehashed: true } : {}) } },
      ));
    if (!user || !started) {
      // Where from (the peer's address), so that an auditor can tell a typo from a spraying run and see what to block;
      // the name typed is not recorded (it may be a password typed in the wrong field). A right password whose account
      // was given another one while it was checked is refused as a wrong one: it no longer matches.
      await audit(ctx, { event: 'sign_in_failed', ...(user ? { user: user.id } : {}), detail: { method: 'password', source: req.ip } });
      return showLoginForm(reply, ctx, next, 400, 'That name and password do not match.');
    }
    // The account's earlier failures are forgiven; attempts still being checked stay counted.
    byAccount.succeed(accountKey, attempt.account);
    byAddress.forgive(address, attempt.address);
    return reply.code(303).header('Cache-Control', 'no-store').header('Location', target).send();
  });
}

/** The sign-in form, with a fresh CSRF cookie. */
export function showLoginForm(reply: FastifyReply, ctx: AuthContext, next: string, status: number, message?: string): FastifyReply {
  const csrf = randomSecret();
  // A __Host- cookie (an https issuer) must have Path=/ and Secure.
  reply.header(
    'Set-Cookie',
    `${loginCookieName(ctx)}=${csrf}; ${ctx.secureCookies ? 'Path=/' : 'Path=/login'}; HttpOnly; SameSite=Strict; Max-Age=600${ctx.secureCookies ? '; Secure' : ''}`,
  );
  const body = html`<h1>Sign in to continue</h1>
${message ? html`<p class="warn">${message}</p>` : ''}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="${csrf}">
<input type="hidden" name="next" value="${next}">
<label for="username">Name</label>
<input type="text" id="username" name="username" autocomplete="username" required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<div class="actions"><button class="primary" type="submit">Sign in</button></div>
</form>
<p class="muted">Signing in lets this browser go on to this one page, for ${Math.round(ctx.lifetimes.authRequestSec / 60)} minutes; anything else asks you to sign in again.</p>
${ownerSignInHint(ctx, next)}`;
  // A refused sign-in (a cross-site post, an expired form, a wrong password, too many attempts) on the access line.
  if (status >= 400 && message !== undefined) notePageRefusal(reply, status, message);
  return sendPage(reply, status, 'Sign in to continue', body);
}

/** Whether `delegate login` by ports signs the owner in here with a one-time link: at an http loopback issuer only. */
export function ownerSignsInByLink(issuer: string): boolean {
  const url = new URL(issuer);
  return url.protocol === 'http:' && isAnyLoopbackHost(url.hostname);
}

/**
 * How the owner signs in without a password, only where that works: `delegate login` by ports signs in at an http
 * loopback issuer; at one published at an https URL it stops (exit 1, naming --agent-url), so that page does not say it
 * (found in review, regress20g).
 */
function ownerSignInHint({ issuer, delegateCommand }: Pick<AuthContext, 'issuer' | 'delegateCommand'>, next: string): Html | undefined {
  if (!ownerSignsInByLink(issuer)) return undefined;
  // Another app's request: the command that signs the owner in for this one (`delegate login` makes its own).
  const approve = approveCommand(issuer, next, delegateCommand());
  if (approve) return html`<p class="muted">The owner of this computer can also approve this request without a password: run this there.</p>
<pre><code>${approve}</code></pre>`;
  // The grants page: `delegate login` signs in its own request and never opens it; the owner has the command instead
  // (found in review, s27rev3: this said `delegate login`).
  if (next.split('?')[0] === GRANTS_PATH) {
    return html`<p class="muted">The owner of this computer sees and revokes delegations without a password: run <code>${delegateCommand()} grants list</code> here.</p>`;
  }
  return html`<p class="muted">The owner of this computer can also sign in without a password: run <code>${delegateCommand()} login</code> here.</p>`;
}

export function loginRedirect(reply: FastifyReply, req: FastifyRequest): FastifyReply {
  return reply.code(303).header('Location', `/login?next=${encodeURIComponent(req.url)}`).send();
}
