// The window of a find_slot or list_busy request: its ISO 8601 bounds (or a
// length, `within`), the time zone, the minimum notice, and the window the
// search runs over. The agent reads the tools' input with it, and the CLI its
// --from, --to and --since, so a value one refuses the other refuses too.
// Pure: no I/O, time passed in.
// Bounds with an offset (`…Z`, `…+01:00`) are instants; bounds without one
// (`2026-12-01`, `2026-12-01T09:00`) are wall-clock times in the search's
// time zone, which may only be known once the calendar has answered.
import { parseIsoInstant } from './format.js';
import type { Interval } from './intervals.js';
import { DEFAULT_WINDOW_DAYS } from './slots.js';
import { ianaZone } from '../config.js';
import { DAY_MS, fromWall } from './zone.js';

/** A window bound as the caller wrote it. */
export type WindowBound =
  | { kind: 'instant'; ms: number }
  | { kind: 'wallClock'; year: number; month: number; day: number; hour: number; minute: number; second: number; dateOnly: boolean };

export interface WindowRequest {
  from?: WindowBound;
  to?: WindowBound;
  timeZone?: string;
  /** issue 4: the window's length when `to` is not given (`within`); default 7 days. */
  withinMs?: number;
  /** issue 4: no slot starts sooner than this after now (`minNotice`). */
  minNoticeMs?: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/** How far ahead the search looks by default (issue 2: the next 7 days). */
export const DEFAULT_WINDOW_MS = DEFAULT_WINDOW_DAYS * DAY_MS;
/** The longest window searched, so one call cannot ask for years of slots. */
export const MAX_WINDOW_MS = 62 * DAY_MS;
/** Wall-clock offsets run from UTC−12 to UTC+14: a window read before its zone is known is widened by this much. */
const MAX_OFFSET_MS = 14 * 3600_000;

/** A date, or a date and time, with no offset: a wall-clock time. */
const WALL_CLOCK = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?$/i;

export function parseWindowRequest(input: { from?: string | undefined; to?: string | undefined; timeZone?: string | undefined }): Parsed<WindowRequest> {
  const request: WindowRequest = {};
  if (input.timeZone !== undefined) {
    const zone = ianaZone(input.timeZone);
    if (zone === undefined) return fail(`"${input.timeZone}" is not an IANA time zone (for example Europe/Berlin).`);
    request.timeZone = zone; // as the database spells it: the answer names it

  }
  for (const name of ['from', 'to'] as const) {
    const text = input[name];
    if (text === undefined) continue;
    const bound = parseWindowBound(text.trim());
    if (!bound) return fail(`"${name}" must be an ISO 8601 date or date-time, for example 2026-12-01 or 2026-12-01T09:00:00+01:00.`);
    request[name] = bound;
  }
  const { from, to } = request;
  // Two instants, or two wall-clock times (which any zone maps to instants in the same order): one that ends
  // before it starts is refused here, before any token is exchanged or calendar read (found in review: two
  // wall-clock bounds were compared only once the calendar had answered, and the CLI exited 1, not 2).
  if (from && to && from.kind === to.kind && boundOrder(from, to) <= 0) return fail('"to" must be later than "from".');
  return { ok: true, value: request };
}

/**
 * The window to ask the calendar for before its time zone is known: exact
 * when the zone is given, otherwise widened around wall-clock bounds by the
 * largest UTC offsets so that it covers them in any zone. It refuses what no
 * zone could make valid, so bad input never reaches the network.
 */
export function coveringWindow(request: WindowRequest, nowMs: number): Parsed<Interval> {
  if (request.timeZone !== undefined) return searchWindow(request, request.timeZone, nowMs);
  const from = request.from === undefined ? nowMs : earliest(request.from, 'from');
  const to = request.to === undefined ? (request.from === undefined ? nowMs : latest(request.from, 'from')) + lengthOf(request) : latest(request.to, 'to');
  const start = Math.max(from, nowMs + (request.minNoticeMs ?? 0));
  if (to <= start) return fail(to <= from ? '"to" must be later than "from".' : request.minNoticeMs ? 'The window ends before the minimum notice has passed.' : 'The window has already passed.');
  if (to - from > MAX_WINDOW_MS + 4 * MAX_OFFSET_MS) return fail(tooLong());
  return { ok: true, value: { start, end: to } };
}

/**
 * The window searched, in `timeZone`: from `from` (or now) to `to` (or 7 days
 * later). A window that starts in the past starts now; a date-only `to` means
 * the end of that day.
 */
export function searchWindow(request: WindowRequest, timeZone: string, nowMs: number): Parsed<Interval> {
  const from = request.from === undefined ? nowMs : instantOf(request.from, timeZone, 'from');
  const to = request.to === undefined ? from + lengthOf(request) : instantOf(request.to, timeZone, 'to');
  if (to <= from) return fail('"to" must be later than "from".');
  if (to - from > MAX_WINDOW_MS) return fail(tooLong());
  const start = Math.max(from, nowMs + (request.minNoticeMs ?? 0));
  if (to <= start) return fail(request.minNoticeMs ? 'The window ends before the minimum notice has passed.' : 'The window has already passed.');
  return { ok: true, value: { start, end: to } };
}

/** How far `to` is after `from`, in milliseconds of the bounds' own clock (both instants, or both wall-clock). */
function boundOrder(from: WindowBound, to: WindowBound): number {
  return instantOf(to, 'UTC', 'to') - instantOf(from, 'UTC', 'from');
}

/** A bound as written, or undefined for anything else, an impossible date (31 February, month 13) or time (25:00) included. */
export function parseWindowBound(text: string): WindowBound | undefined {
  const instant = parseIsoInstant(text);
  if (instant !== undefined) return { kind: 'instant', ms: instant };
  const m = WALL_CLOCK.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  const fields = { year: Number(y), month: Number(mo), day: Number(d), hour: Number(h ?? 0), minute: Number(mi ?? 0), second: Number(s ?? 0) };
  if (!validFields(fields)) return undefined;
  return { kind: 'wallClock', ...fields, dateOnly: h === undefined };
}

function validFields(f: { year: number; month: number; day: number; hour: number; minute: number; second: number }): boolean {
  if (f.month < 1 || f.month > 12 || f.day < 1 || f.hour > 23 || f.minute > 59 || f.second > 59) return false;
  const daysInMonth = new Date(Date.UTC(f.year, f.month, 0)).getUTCDate();
  return f.day <= daysInMonth;
}

/** The instant a bound names in `timeZone`; a date-only `to` is the midnight that ends that day. */
function instantOf(bound: WindowBound, timeZone: string, role: 'from' | 'to'): number {
  if (bound.kind === 'instant') return bound.ms;
  const wall = Date.UTC(bound.year, bound.month - 1, bound.day, bound.hour, bound.minute, bound.second);
  return fromWall(bound.dateOnly && role === 'to' ? wall + DAY_MS : wall, timeZone);
}

function earliest(bound: WindowBound, role: 'from' | 'to'): number {
  return bound.kind === 'instant' ? bound.ms : instantOf(bound, 'UTC', role) - MAX_OFFSET_MS;
}

function latest(bound: WindowBound, role: 'from' | 'to'): number {
  return bound.kind === 'instant' ? bound.ms : instantOf(bound, 'UTC', role) + MAX_OFFSET_MS;
}

/** How long a window without `to` is. */
function lengthOf(request: WindowRequest): number {
  return request.withinMs ?? DEFAULT_WINDOW_MS;
}

function tooLong(): string {
  return `The window is longer than ${MAX_WINDOW_MS / DAY_MS} days; ask for a shorter one.`;
}

function fail(message: string): { ok: false; message: string } {
  return { ok: false, message };
}
