// How a resource server applies the user's limits carried in a token (its
// RFC 9396 detail of type `calendar`, docs/internals.md) to one request: the
// window may not reach past the lookahead, named calendars must be allowed,
// and with none named only the allowed ones are read. Shared by the calendar
// backend and CalendarAgent. Pure: the time is passed in.
import {
  CALENDAR_DETAIL_TYPE,
  allowedCalendars,
  canonicalResource,
  parseCalendarDetail,
  windowAllowed,
  type AccessTokenClaims,
  type CalendarDetail,
} from '../delegation/index.js';

export type Limits = { ok: true; detail: CalendarDetail | undefined } | { ok: false; reason: string };

/**
 * The calendar detail of a token that governs access to `location`. A token
 * with none is limited by its scope alone (the calendar backend takes no such
 * token: src/calendar/server.ts). A detail that names `location` but
 * cannot be read, or two that disagree, refuse the token: limits that cannot
 * be understood must not be ignored.
 */
export function calendarLimits(claims: Pick<AccessTokenClaims, 'authorization_details'>, location: string): Limits {
  const target = canonicalResource(location) ?? location;
  const found: CalendarDetail[] = [];
  for (const raw of claims.authorization_details ?? []) {
    if (raw?.type !== CALENDAR_DETAIL_TYPE) continue;
    const names = Array.isArray(raw.locations) ? raw.locations : [];
    if (!names.some((l) => typeof l === 'string' && (canonicalResource(l) ?? l) === target)) continue;
    const parsed = parseCalendarDetail(raw);
    if (!parsed.ok) return { ok: false, reason: `The token's calendar limits cannot be read: ${parsed.reason}.` };
    found.push(parsed.detail);
  }
  if (found.length > 1) return { ok: false, reason: 'The token carries more than one set of calendar limits for this resource.' };
  return { ok: true, detail: found[0] };
}

export type Check<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Whether the window [from, to) (epoch ms) lies within the lookahead as of `now` (from now to the lookahead). */
export function checkWindow(detail: CalendarDetail | undefined, window: { from: number; to: number }, now: number): Check<void> {
  if (!detail) return { ok: true, value: undefined };
  const verdict = windowAllowed(detail, window, now);
  return verdict.ok ? { ok: true, value: undefined } : { ok: false, reason: `${capitalize(verdict.reason)}.` };
}

/**
 * The calendars a request may name: all of them when the detail names none;
 * otherwise a request naming one outside the detail is refused, and a request
 * naming none gets exactly the allowed ones.
 */
export function permittedCalendars(detail: CalendarDetail | undefined, requested: readonly string[] | undefined): Check<string[] | undefined> {
  if (requested && requested.length > 0) {
    const allowed = detail?.calendars;
    const outside = allowed ? requested.filter((c) => !allowed.includes(c)) : [];
    if (outside.length > 0) {
      return { ok: false, reason: `The delegation allows only the calendar${allowed!.length === 1 ? '' : 's'} ${list(allowed!)}, not ${list(outside)}.` };
    }
    return { ok: true, value: [...new Set(requested)] };
  }
  return { ok: true, value: detail?.calendars ? [...detail.calendars] : undefined };
}

/** Of the user's calendars, the ones a request reads: those it names (all allowed), else all the detail allows. */
export function calendarsToRead(detail: CalendarDetail | undefined, requested: readonly string[] | undefined, all: readonly string[]): string[] {
  if (requested && requested.length > 0) return all.filter((c) => requested.includes(c));
  return detail ? allowedCalendars(detail, all) : [...all];
}

function list(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(', ');
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
