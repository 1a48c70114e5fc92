// The delegation a tool call acts under, in the agent's terms: the caller's
// token claims, whether they carry a tool's scope, and the user's calendar
// limits (docs/internals.md, "Constraints") applied to the call before any
// token leaves the agent. A window past the lookahead is refused with the
// limit named, never silently cut; only a window the caller did not choose
// (the default) is fitted to the limit, and the answer says so.
import { decodeJwt } from 'jose';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Interval } from '../calendar/intervals.js';
import { calendarLocations, canonicalResource, missingFrom, parseScope, type AccessTokenClaims, type CalendarDetail } from '../delegation/index.js';
import { calendarLimits, permittedCalendars } from '../resource/constraints.js';
import type { CallerToken, ToolExtra } from './tool.js';
import type { WindowRequest } from '../calendar/window.js';

const DAY_MS = 86_400_000;

export interface CallerDelegation {
  /** The token itself: only ever sent to the authorization server's token endpoint. */
  token: string;
  claims: AccessTokenClaims;
  scopes: string[];
}

/**
 * The claims of the token a call acts under: over HTTP as the bearer check
 * verified them; over stdio read from the user's own token, which the
 * authorization server and the calendar backend verify when it is used. The
 * tool error when there is none: no token (sign in), or one that is no
 * delegation at all (not a JWT, or without its subject, grant or client),
 * which only another token mends: said as `reauthorize` says it (over stdio
 * under DELEGATE_TOKEN: put a new token there or remove it; found in review,
 * s25faults: "sign in first", which changes nothing while that token wins).
 */
export async function callerDelegation(extra: ToolExtra, callerToken: CallerToken, reauthorize?: ReauthorizeAdvice): Promise<Limited<CallerDelegation>> {
  const token = await callerToken(extra);
  if (!token) return { ok: false, message: 'This call carries no delegation to act under; sign in first.' };
  const unreadable = { ok: false as const, message: `The token this call carries is not a delegation CalendarAgent can read. ${reauthorize?.() ?? 'Sign in again.'}` };
  const verified = extra.authInfo?.token === token ? (extra.authInfo.extra?.claims as AccessTokenClaims | undefined) : undefined;
  let claims: AccessTokenClaims | undefined = verified;
  if (!claims) {
    try {
      claims = decodeJwt(token) as unknown as AccessTokenClaims;
    } catch {
      return unreadable;
    }
  }
  if (typeof claims.sub !== 'string' || typeof claims.grant_id !== 'string' || typeof claims.client_id !== 'string') return unreadable;
  return { ok: true, value: { token, claims, scopes: parseScope(typeof claims.scope === 'string' ? claims.scope : '') } };
}

/** The tool error for a call whose delegation lacks the tool's scope (the HTTP endpoint answers 403 before this). */
export function missingScopeMessage(tool: string, held: readonly string[], needed: readonly string[], howTo?: ReauthorizeAdvice): string | undefined {
  const missing = missingFrom(needed, held);
  if (missing.length === 0) return undefined;
  const what = howTo?.(missing) ?? 'Authorize CalendarAgent again and approve it.';
  return `${tool} needs the permission ${missing.join(' ')}, which this delegation does not include. ${what}`;
}

/**
 * What to tell the person to authorize CalendarAgent again (with these
 * scopes too, when given). Over HTTP the MCP client does that itself on the
 * agent's challenge; over stdio nobody does, so the CLI names its command.
 */
export type ReauthorizeAdvice = (scopes?: readonly string[]) => string;

export type Limited<T> = { ok: true; value: T } | { ok: false; message: string };

/** The user's limits on reading `calendarUrl` through this delegation, or why they cannot be used. */
export function delegationLimits(claims: AccessTokenClaims, calendarUrl: string): Limited<CalendarDetail | undefined> {
  const limits = calendarLimits(claims, calendarUrl);
  return limits.ok ? { ok: true, value: limits.detail } : { ok: false, message: limits.reason };
}

/**
 * Why a token's delegation does not reach the calendar at `calendarUrl`, or
 * undefined: its calendar details name other locations only, so it was
 * approved for the calendar at an address the agent no longer reads (the
 * calendar moved). Only the owner's consent can approve the new address
 * (the AS shows the consent page for it), so over HTTP the agent answers with
 * the scope challenge that makes the client authorize again. A token with no
 * calendar location is limited by its scope alone (calendarLimits); one whose
 * limits cannot be read is refused by the tool, which says why.
 */
export function unreachedCalendar(claims: Pick<AccessTokenClaims, 'authorization_details'>, calendarUrl: string): string | undefined {
  const limits = calendarLimits(claims, calendarUrl);
  if (!limits.ok || limits.detail) return undefined;
  const held = calendarLocations(claims.authorization_details);
  if (held.length === 0) return undefined;
  const target = canonicalResource(calendarUrl) ?? calendarUrl;
  return `The delegation reaches ${held.join(', ')}, not ${target}, where CalendarAgent now reads the calendar: authorize it again to approve the new address.`;
}

/** The calendars to ask the backend for: those named (if all allowed), else exactly the allowed ones, else all (undefined). */
export function calendarsFor(detail: CalendarDetail | undefined, requested: readonly string[] | undefined): Limited<string[] | undefined> {
  const permitted = permittedCalendars(detail, requested);
  return permitted.ok ? permitted : { ok: false, message: permitted.reason };
}

/** A window fitted to the lookahead: `note` says when a default window was shortened. */
export interface BoundedWindow {
  window: Interval;
  note?: string;
}

/**
 * Applies the lookahead to a window. A window the caller chose that ends past
 * the limit is refused, naming the limit; a default window (the caller gave
 * no end) ends at the limit instead, with a note; a window that starts past
 * the limit is refused either way.
 */
export function boundWindow(detail: CalendarDetail | undefined, window: Interval, callerChoseEnd: boolean, now: number): Limited<BoundedWindow> {
  if (detail?.lookahead_days === undefined) return { ok: true, value: { window } };
  const days = detail.lookahead_days;
  const limit = now + days * DAY_MS;
  if (window.end <= limit) return { ok: true, value: { window } };
  const until = new Date(limit).toISOString();
  if (callerChoseEnd || window.start >= limit) {
    return {
      ok: false,
      message: `The delegation lets CalendarAgent look ${days} day${days === 1 ? '' : 's'} ahead, until ${until}; this window ends later. Ask for a window that ends by then.`,
    };
  }
  return {
    ok: true,
    value: { window: { start: window.start, end: limit }, note: `Searched until ${until}: the delegation lets CalendarAgent look ${days} day${days === 1 ? '' : 's'} ahead.` },
  };
}

/** The window to read busy time over, and the parts of the buffers the delegation does not let the agent read. */
export interface ReadWindow {
  window: Interval;
  /** To be counted as busy: time the agent may not read is never assumed free. */
  unreadable: Interval[];
}

/**
 * The window to ask the calendar for when a search over `window` keeps
 * `before` and `after` free around each slot: widened by the buffers, since
 * the backend returns only busy time inside the window it is asked for, and a
 * slot at the window's edge has its buffer outside it. Under a lookahead the
 * widening stops at what the delegation lets the agent read (from now to the
 * limit), so a call the delegation allows never fails for its buffers; the
 * buffer time cut off is returned as `unreadable`, and a slot whose buffer
 * reaches into it is not offered. `window` is already within the lookahead (boundWindow).
 */
export function readWindow(detail: CalendarDetail | undefined, window: Interval, before: number, after: number, now: number): ReadWindow {
  const wanted = { start: window.start - before, end: window.end + after };
  if (detail?.lookahead_days === undefined) return { window: wanted, unreadable: [] };
  const limit = now + detail.lookahead_days * DAY_MS;
  const read = { start: Math.max(wanted.start, Math.min(now, window.start)), end: Math.min(wanted.end, Math.max(limit, window.end)) };
  const unreadable = [
    ...(wanted.start < read.start ? [{ start: wanted.start, end: read.start }] : []),
    ...(read.end < wanted.end ? [{ start: read.end, end: wanted.end }] : []),
  ];
  return { window: read, unreadable };
}

/** Whether a window is known before the calendar's time zone is: a zone was given, or every bound has an offset. */
export function isExact(request: WindowRequest): boolean {
  return request.timeZone !== undefined || ![request.from, request.to].some((b) => b?.kind === 'wallClock');
}

/** The result with a line added to its text (a default window fitted to the lookahead says so). */
export function withNote(result: CallToolResult, note: string | undefined): CallToolResult {
  const [first, ...rest] = result.content ?? [];
  if (!note || first?.type !== 'text') return result;
  return { ...result, content: [{ ...first, text: `${first.text}\n${note}` }, ...rest] };
}
