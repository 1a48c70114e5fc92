// Time-zone arithmetic on epoch milliseconds through Intl alone, so results do
// not depend on the process's TZ: the UTC offset a zone has at an instant, the
// wall clock an instant shows there, the instant a wall-clock time names (with
// RFC 5545's rules for DST gaps and overlaps), and the constant-offset spans
// of a stretch of time. Pure: no I/O, no clock.
//
// A wall-clock time is carried as "wall milliseconds": the local date and time
// read as if they were UTC (Date.UTC(y, m - 1, d, h, min, s)). Then
// wall = instant + offset, and calendar arithmetic on wall times (whole days,
// midnight, weekday) is plain UTC arithmetic.
import { BoundedMap } from '../bounded-map.js';
import { isIanaZone } from '../config.js';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

export { isIanaZone };

/** One formatter per zone name; bounded, since a caller may name a zone in any capitalisation. */
const formatters = new BoundedMap<string, Intl.DateTimeFormat>(256);

/** How many formatters are kept (for tests of the bound). */
export function zoneFormatterCount(): number {
  return formatters.size;
}

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** "12/1/2026, 11:45:00" as en-US formats with the options above. */
const EN_US = /^(\d{1,2})\/(\d{1,2})\/(\d{1,6}), (\d{2}):(\d{2}):(\d{2})$/;

/** The offset of `timeZone` from UTC at `instant`, in ms (east positive): wall − instant. */
export function utcOffsetAt(instant: number, timeZone: string): number {
  if (timeZone === 'UTC') return 0;
  const seconds = Math.floor(instant / 1000) * 1000;
  const f = formatterFor(timeZone);
  const m = EN_US.exec(f.format(seconds));
  let wall: number;
  if (m) {
    wall = Date.UTC(Number(m[3]), Number(m[1]) - 1, Number(m[2]), Number(m[4]), Number(m[5]), Number(m[6]));
  } else {
    // An ICU that formats differently: read the parts instead.
    const p: Record<string, number> = {};
    for (const part of f.formatToParts(seconds)) if (part.type !== 'literal') p[part.type] = Number(part.value);
    wall = Date.UTC(p.year ?? 1970, (p.month ?? 1) - 1, p.day ?? 1, p.hour ?? 0, p.minute ?? 0, p.second ?? 0);
  }
  return wall - seconds;
}

/** The wall-clock time `instant` shows in `timeZone`, as wall milliseconds. */
export function toWall(instant: number, timeZone: string): number {
  return instant + utcOffsetAt(instant, timeZone);
}

/**
 * Every instant at which the clock in `timeZone` shows `wall`: one normally,
 * none in a gap (spring forward), two in an overlap (fall back), ascending.
 * Assumes at most one offset change within a day of `wall`, which holds for
 * every zone in the tz database since 1970.
 */
export function instantsAtWall(wall: number, timeZone: string): number[] {
  const before = utcOffsetAt(wall - DAY_MS, timeZone);
  const after = utcOffsetAt(wall + DAY_MS, timeZone);
  const out: number[] = [];
  for (const offset of before === after ? [before] : [before, after]) {
    const candidate = wall - offset;
    if (toWall(candidate, timeZone) === wall && !out.includes(candidate)) out.push(candidate);
  }
  return out.sort((a, b) => a - b);
}

/**
 * The instant a wall-clock time in `timeZone` names, as RFC 5545 §3.3.5 reads
 * DATE-TIME values: a time in an overlap is the first of the two (the offset
 * before the change); a time in a gap is read with the offset before the gap,
 * so 02:30 on a spring-forward night in Berlin is 03:30 CEST.
 */
export function fromWall(wall: number, timeZone: string): number {
  if (timeZone === 'UTC') return wall;
  const found = instantsAtWall(wall, timeZone);
  if (found.length > 0) return found[0]!;
  return wall - utcOffsetAt(wall - DAY_MS, timeZone);
}

/** A stretch of time over which a zone's offset does not change. */
export interface OffsetSegment {
  start: number;
  end: number;
  /** wall − instant, in ms. */
  offset: number;
}

/**
 * The constant-offset segments covering [start, end), in order. Offsets are
 * sampled every 12 hours and each change is located to the millisecond by
 * bisection, so changes less than 12 hours apart (no zone has them) would be
 * missed.
 */
export function offsetSegments(timeZone: string, start: number, end: number): OffsetSegment[] {
  const SAMPLE = 12 * HOUR_MS;
  const segments: OffsetSegment[] = [];
  let segStart = start;
  let offset = utcOffsetAt(start, timeZone);
  let previous = start;
  while (previous < end - 1) {
    const probe = Math.min(previous + SAMPLE, end - 1);
    const probeOffset = utcOffsetAt(probe, timeZone);
    if (probeOffset !== offset) {
      // The change lies in (previous, probe]: bisect to its first instant.
      let lo = previous;
      let hi = probe;
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (utcOffsetAt(mid, timeZone) === offset) lo = mid;
        else hi = mid;
      }
      segments.push({ start: segStart, end: hi, offset });
      segStart = hi;
      offset = probeOffset;
    }
    previous = probe;
  }
  segments.push({ start: segStart, end, offset });
  return segments;
}

/** Day of the week of a wall time: 0 Sunday … 6 Saturday. */
export function weekdayOfWall(wall: number): number {
  return new Date(wall).getUTCDay();
}

/** Local midnight (as wall milliseconds) of the day a wall time falls on. */
export function startOfWallDay(wall: number): number {
  return Math.floor(wall / DAY_MS) * DAY_MS;
}
