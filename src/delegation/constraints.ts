// The user's limits on a delegation, carried as an RFC 9396 authorization
// detail of type `calendar`: which calendars, how far ahead, free/busy only.
// Attenuation is a subset check on these details. Pure: no I/O, no clock.
import { canonicalResource } from './resource.js';
import type { AuthorizationDetail } from './tokens.js';

export const CALENDAR_DETAIL_TYPE = 'calendar';
export const DATATYPE_FREEBUSY = 'freebusy';
const DAY_MS = 86_400_000;

export interface CalendarDetail extends AuthorizationDetail {
  type: typeof CALENDAR_DETAIL_TYPE;
  locations: string[];
  actions: string[];
  datatypes: string[];
  /** Calendar names the holder may read; undefined means all of the user's calendars. */
  calendars?: string[];
  /** How many days ahead of the request the holder may look; undefined means no limit. */
  lookahead_days?: number;
}

export type DetailCheck = { ok: true } | { ok: false; reason: string };

/**
 * Every member the `calendar` type defines (docs/internals.md, "Constraints").
 * RFC 9396 §2.2 lets a type use the common members it wants; this one uses no
 * `identifier` and no `privileges`, and adds `calendars` and `lookahead_days`.
 */
const CALENDAR_DETAIL_MEMBERS: ReadonlySet<string> = new Set(['type', 'locations', 'actions', 'datatypes', 'calendars', 'lookahead_days']);

const stringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/**
 * Reads a calendar detail, or says why it is not one. A member the type does
 * not define is refused, not carried along: RFC 9396 §5 has the AS refuse
 * details that do not conform to their type, and a member nobody interprets
 * would ride into every token derived from it, where no subset check sees it.
 */
export function parseCalendarDetail(value: unknown): { ok: true; detail: CalendarDetail } | { ok: false; reason: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'an authorization detail must be an object' };
  const d = value as Record<string, unknown>;
  if (d.type !== CALENDAR_DETAIL_TYPE) return { ok: false, reason: `unsupported authorization detail type ${JSON.stringify(d.type)}` };
  const unknown = Object.keys(d).filter((k) => !CALENDAR_DETAIL_MEMBERS.has(k));
  if (unknown.length > 0) return { ok: false, reason: `a calendar authorization detail has no member ${unknown.map((k) => JSON.stringify(k.slice(0, 64))).join(', ')}` };
  if (!stringList(d.locations) || d.locations.length === 0) return { ok: false, reason: 'locations must be a non-empty list of URLs' };
  // Each place once, in the order sent, as actions, datatypes and calendars are below (left open in the s24 stop's
  // note): `[A, A]` was stored as sent, so the grant and every token from it named a place twice that consent named once.
  const locations = new Set<string>();
  for (const l of d.locations) {
    const canonical = canonicalResource(l);
    if (!canonical) return { ok: false, reason: `${l} is not an absolute http(s) URL` };
    locations.add(canonical);
  }
  if (!stringList(d.actions) || d.actions.length === 0) return { ok: false, reason: 'actions must be a non-empty list' };
  const datatypes = d.datatypes === undefined ? [DATATYPE_FREEBUSY] : d.datatypes;
  // An empty list is refused, as empty locations, actions and calendars are (found in review, s30attack: `datatypes: []`
  // was issued, a constraint no resource server reads, which then allowed free/busy reads all the same).
  if (!stringList(datatypes) || datatypes.length === 0 || !datatypes.every((t) => t === DATATYPE_FREEBUSY)) {
    return { ok: false, reason: 'datatypes must be a non-empty list: only the freebusy datatype is supported' };
  }
  if (d.calendars !== undefined && (!stringList(d.calendars) || d.calendars.length === 0 || d.calendars.some((c) => c === ''))) {
    return { ok: false, reason: 'calendars must be a non-empty list of calendar names' };
  }
  if (d.lookahead_days !== undefined && (!Number.isInteger(d.lookahead_days) || (d.lookahead_days as number) < 1 || (d.lookahead_days as number) > 366)) {
    return { ok: false, reason: 'lookahead_days must be a whole number of days from 1 to 366' };
  }
  return {
    ok: true,
    detail: {
      type: CALENDAR_DETAIL_TYPE,
      locations: [...locations],
      actions: [...new Set(d.actions)],
      datatypes: [...new Set(datatypes)],
      ...(d.calendars !== undefined ? { calendars: [...new Set(d.calendars as string[])] } : {}),
      ...(d.lookahead_days !== undefined ? { lookahead_days: d.lookahead_days as number } : {}),
    },
  };
}

/** Every location a token's or grant's calendar details reach (canonical, each once); details that do not parse reach none. */
export function calendarLocations(details: readonly unknown[] | undefined): string[] {
  const out = new Set<string>();
  for (const raw of details ?? []) {
    const parsed = parseCalendarDetail(raw);
    if (parsed.ok) for (const location of parsed.detail.locations) out.add(location);
  }
  return [...out];
}

/** The calendar detail among a token's or grant's details that reaches `location`, if any. */
export function calendarDetailFor(details: readonly AuthorizationDetail[] | undefined, location: string): CalendarDetail | undefined {
  for (const raw of details ?? []) {
    const parsed = parseCalendarDetail(raw);
    if (parsed.ok && parsed.detail.locations.includes(location)) return parsed.detail;
  }
  return undefined;
}

/**
 * Whether `child` asks for no more than `parent` allows (attenuation): the
 * same type, and locations, actions, datatypes and calendars each a subset, and
 * a lookahead no longer. The reason names the first bound crossed.
 */
export function isDetailSubset(child: CalendarDetail, parent: CalendarDetail): DetailCheck {
  const over = (name: string, a: readonly string[], b: readonly string[]): DetailCheck | undefined => {
    const extra = a.filter((x) => !b.includes(x));
    return extra.length > 0 ? { ok: false, reason: `${name} ${extra.join(', ')} not allowed by the delegation` } : undefined;
  };
  const fail =
    over('location', child.locations, parent.locations) ??
    over('action', child.actions, parent.actions) ??
    over('datatype', child.datatypes, parent.datatypes) ??
    (parent.calendars !== undefined
      ? child.calendars === undefined
        ? { ok: false as const, reason: `the delegation allows only the calendars ${parent.calendars.join(', ')}` }
        : over('calendar', child.calendars, parent.calendars)
      : undefined);
  if (fail) return fail;
  if (parent.lookahead_days !== undefined && (child.lookahead_days === undefined || child.lookahead_days > parent.lookahead_days)) {
    return { ok: false, reason: `the delegation allows looking ${parent.lookahead_days} days ahead, not ${child.lookahead_days ?? 'without limit'}` };
  }
  return { ok: true };
}

/**
 * What two details both allow (the narrower of both, member by member):
 * locations, actions, datatypes and calendars in both lists (no list of
 * calendars meaning all), and the shorter lookahead. Not a detail when a list
 * would be empty: the two have nothing in common there.
 */
export function intersectDetails(a: CalendarDetail, b: CalendarDetail): { ok: true; detail: CalendarDetail } | { ok: false; reason: string } {
  const both = (x: readonly string[], y: readonly string[]) => x.filter((v) => y.includes(v));
  const locations = both(a.locations, b.locations);
  const actions = both(a.actions, b.actions);
  const datatypes = both(a.datatypes, b.datatypes);
  const calendars = a.calendars === undefined ? b.calendars : b.calendars === undefined ? a.calendars : both(a.calendars, b.calendars);
  const lookahead = a.lookahead_days === undefined ? b.lookahead_days : b.lookahead_days === undefined ? a.lookahead_days : Math.min(a.lookahead_days, b.lookahead_days);
  const empty = locations.length === 0 ? 'location' : actions.length === 0 ? 'action' : datatypes.length === 0 ? 'datatype' : calendars?.length === 0 ? 'calendar' : undefined;
  if (empty) return { ok: false, reason: `no ${empty} is allowed by both` };
  return {
    ok: true,
    detail: {
      type: CALENDAR_DETAIL_TYPE,
      locations,
      actions,
      datatypes,
      ...(calendars !== undefined ? { calendars: [...calendars] } : {}),
      ...(lookahead !== undefined ? { lookahead_days: lookahead } : {}),
    },
  };
}

/** The narrower of two details, for a request that asks for less: what the child asks, bounded by the parent. */
export function narrowDetail(parent: CalendarDetail, ask: Partial<Pick<CalendarDetail, 'calendars' | 'lookahead_days' | 'actions'>>): CalendarDetail {
  return {
    ...parent,
    ...(ask.actions ? { actions: ask.actions } : {}),
    ...(ask.calendars ? { calendars: ask.calendars } : {}),
    ...(ask.lookahead_days !== undefined ? { lookahead_days: ask.lookahead_days } : {}),
  };
}

/** How far before `now` a window may start under a lookahead: the clocks of the agent and the resource server may differ. */
export const LOOKAHEAD_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * Whether a search window [from, to) (epoch ms) lies within the detail's
 * lookahead as of `now`: it may not end past the lookahead, nor start before
 * now (less the clock skew). A delegation to look 7 days ahead is not one to
 * read the year behind; the agents' windows start at now.
 */
export function windowAllowed(detail: CalendarDetail, window: { from: number; to: number }, now: number): DetailCheck {
  if (detail.lookahead_days === undefined) return { ok: true };
  const limit = now + detail.lookahead_days * DAY_MS;
  if (window.to > limit) {
    return { ok: false, reason: `the delegation lets the agent look ${detail.lookahead_days} days ahead, until ${new Date(limit).toISOString()}; ask for a window that ends by then` };
  }
  if (window.from < now - LOOKAHEAD_CLOCK_SKEW_MS) {
    return { ok: false, reason: `the delegation lets the agent look ${detail.lookahead_days} days ahead from now, not back before ${new Date(now).toISOString()}; ask for a window that starts now or later` };
  }
  return { ok: true };
}

/** Which of the user's calendars the detail lets the holder read. */
export function allowedCalendars(detail: CalendarDetail, all: readonly string[]): string[] {
  return detail.calendars === undefined ? [...all] : all.filter((c) => detail.calendars!.includes(c));
}
