// The slot search: the earliest free stretches of a given length, given busy
// intervals, a window, working hours in a time zone, a step and buffers.
// Pure: no I/O, no clock (the caller passes the window, e.g. from its now()).
//
// A slot [start, start + duration):
// - lies inside the window [from, to);
// - lies inside working hours: every instant of it shows, on the clock in
//   `timeZone`, a time inside that weekday's working hours (hours of adjacent
//   days that touch, such as 00:00–24:00 every day, join up);
// - keeps its buffers clear: [start − bufferBefore, end + bufferAfter) meets
//   no busy interval (buffers may reach outside working hours and the window);
// - starts on the step: its start, read on the clock in `timeZone`, is a whole
//   number of steps after that day's local midnight.
// Slots come earliest first and do not overlap one another: the first is the
// earliest start that satisfies all of this, each next one the earliest that
// starts at or after the end of the one before, up to `limit`.
import { SlotQueryError } from './errors.js';
import { mergeIntervals, subtractIntervals, type Interval } from './intervals.js';
import { DAY_MS, MINUTE_MS, isIanaZone, offsetSegments, startOfWallDay, weekdayOfWall, type OffsetSegment } from './zone.js';

export { mergeIntervals, type Interval };

export type Weekday = 'sun' | 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat';

/** Weekdays in the order Date#getUTCDay numbers them. */
export const WEEKDAYS: readonly Weekday[] = Object.freeze(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']);

/** One stretch of working time in a day, local clock times "HH:MM"; `end` may be "24:00". */
export interface DailyHours {
  start: string;
  end: string;
}

/** Working hours per weekday; a day that is absent or empty has none. */
export type WorkingHours = Readonly<Partial<Record<Weekday, readonly DailyHours[]>>>;

const NINE_TO_FIVE: readonly DailyHours[] = Object.freeze([Object.freeze({ start: '09:00', end: '17:00' })]);

/** 09:00–17:00, Monday to Friday. */
export const DEFAULT_WORKING_HOURS: WorkingHours = Object.freeze({
  mon: NINE_TO_FIVE,
  tue: NINE_TO_FIVE,
  wed: NINE_TO_FIVE,
  thu: NINE_TO_FIVE,
  fri: NINE_TO_FIVE,
});
export const DEFAULT_STEP_MS = 15 * MINUTE_MS;
export const DEFAULT_WINDOW_DAYS = 7;
export const DEFAULT_LIMIT = 1;
/** The longest window a search may cover. */
export const MAX_WINDOW_MS = 366 * DAY_MS;

export interface SlotQuery {
  /** Length of the slot, ms. */
  durationMs: number;
  /** The window to search, [from, to), epoch ms. */
  from: number;
  to: number;
  /** IANA zone in which working hours and the step are read. */
  timeZone: string;
  workingHours?: WorkingHours;
  /** Slot starts are multiples of this after local midnight; whole minutes, at most a day. */
  stepMs?: number;
  bufferBeforeMs?: number;
  bufferAfterMs?: number;
  /** How many slots to return at most. */
  limit?: number;
}

/** The window of a search with no explicit one: from now for DEFAULT_WINDOW_DAYS days. */
export function defaultWindow(now: number, days: number = DEFAULT_WINDOW_DAYS): Interval {
  return { start: now, end: now + days * DAY_MS };
}

/** The earliest slots that fit `query` around `busy`, earliest first; [] when none fits. */
export function findSlots(busy: readonly Interval[], query: SlotQuery): Interval[] {
  const q = checkedQuery(query);
  const segments = offsetSegments(q.timeZone, q.from - DAY_MS, q.to + DAY_MS);
  const working = workingTime(segments, q.hours, { start: q.from, end: q.to });
  // Widen each busy interval by the buffers, so that a slot may touch it but not overlap it.
  const blocked = busy.map((b) => ({ start: b.start - q.bufferAfterMs, end: b.end + q.bufferBeforeMs }));
  const free = subtractIntervals(working, blocked);

  const slots: Interval[] = [];
  const aligned = alignedStarts(segments, q.stepMs);
  for (const gap of free) {
    for (let start = aligned(gap.start); start !== undefined && start + q.durationMs <= gap.end; start = aligned(start + q.durationMs)) {
      slots.push({ start, end: start + q.durationMs });
      if (slots.length >= q.limit) return slots;
    }
  }
  return slots;
}

/**
 * The instants in `window` that working hours cover: for each constant-offset
 * segment and each local day it touches, the instants whose clock time falls
 * inside that weekday's hours. Exact across DST changes, whatever the hours.
 */
function workingTime(segments: readonly OffsetSegment[], hours: readonly MinuteRange[][], window: Interval): Interval[] {
  const pieces: Interval[] = [];
  for (const seg of segments) {
    const from = Math.max(seg.start, window.start);
    const to = Math.min(seg.end, window.end);
    if (from >= to) continue;
    for (let day = startOfWallDay(from + seg.offset); day < to + seg.offset; day += DAY_MS) {
      for (const range of hours[weekdayOfWall(day)] ?? []) {
        const start = Math.max(day + range.start * MINUTE_MS - seg.offset, from);
        const end = Math.min(day + range.end * MINUTE_MS - seg.offset, to);
        if (start < end) pieces.push({ start, end });
      }
    }
  }
  return mergeIntervals(pieces);
}

/**
 * A function giving the first instant at or after t whose local clock time is
 * a whole number of steps after local midnight (undefined past the segments).
 * Calls must come with t never decreasing: it walks the segments once.
 * Within a segment the clock runs with the instant, so this is arithmetic; at
 * a DST change the search moves on to the next segment's own clock.
 */
function alignedStarts(segments: readonly OffsetSegment[], stepMs: number): (t: number) => number | undefined {
  let i = 0;
  const next = (t: number): number | undefined => {
    while (i < segments.length && segments[i]!.end <= t) i++;
    const seg = segments[i];
    if (!seg) return undefined;
    const at = Math.max(t, seg.start);
    const wall = at + seg.offset;
    const midnight = startOfWallDay(wall);
    const alignedWall = Math.min(midnight + Math.ceil((wall - midnight) / stepMs) * stepMs, midnight + DAY_MS);
    const instant = alignedWall - seg.offset;
    return instant < seg.end ? instant : next(seg.end);
  };
  return next;
}

/** Working hours as minutes after midnight, per weekday index (0 = Sunday). */
export interface MinuteRange {
  start: number;
  end: number;
}

interface CheckedQuery {
  durationMs: number;
  from: number;
  to: number;
  timeZone: string;
  hours: MinuteRange[][];
  stepMs: number;
  bufferBeforeMs: number;
  bufferAfterMs: number;
  limit: number;
}

function checkedQuery(query: SlotQuery): CheckedQuery {
  const { durationMs, from, to, timeZone } = query;
  if (!Number.isSafeInteger(durationMs) || durationMs <= 0) {
    throw new SlotQueryError('ERR_SLOT_DURATION', 'The duration must be a positive whole number of milliseconds.');
  }
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to <= from) {
    throw new SlotQueryError('ERR_SLOT_WINDOW', 'The window must be two instants with `to` after `from`.');
  }
  if (to - from > MAX_WINDOW_MS) {
    throw new SlotQueryError('ERR_SLOT_WINDOW', 'The window may cover at most 366 days.');
  }
  if (typeof timeZone !== 'string' || !isIanaZone(timeZone)) {
    throw new SlotQueryError('ERR_SLOT_TIME_ZONE', `"${String(timeZone)}" is not an IANA time zone.`);
  }
  const stepMs = query.stepMs ?? DEFAULT_STEP_MS;
  if (!Number.isSafeInteger(stepMs) || stepMs <= 0 || stepMs % MINUTE_MS !== 0 || stepMs > DAY_MS) {
    throw new SlotQueryError('ERR_SLOT_STEP', 'The step must be whole minutes, at least one and at most a day.');
  }
  const bufferBeforeMs = query.bufferBeforeMs ?? 0;
  const bufferAfterMs = query.bufferAfterMs ?? 0;
  for (const b of [bufferBeforeMs, bufferAfterMs]) {
    if (!Number.isSafeInteger(b) || b < 0 || b > DAY_MS) {
      throw new SlotQueryError('ERR_SLOT_BUFFER', 'Buffers must be whole milliseconds between zero and a day.');
    }
  }
  const limit = query.limit ?? DEFAULT_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new SlotQueryError('ERR_SLOT_LIMIT', 'The limit must be a positive whole number.');
  }
  return {
    durationMs,
    from,
    to,
    timeZone,
    hours: minuteRanges(query.workingHours ?? DEFAULT_WORKING_HOURS),
    stepMs,
    bufferBeforeMs,
    bufferAfterMs,
    limit,
  };
}

const CLOCK = /^(?:([01]\d|2[0-3]):([0-5]\d)|(24):(00))$/;

/** Working hours as minute ranges per weekday index; throws SlotQueryError on bad hours. */
export function minuteRanges(hours: WorkingHours): MinuteRange[][] {
  return WEEKDAYS.map((day) =>
    (hours[day] ?? []).map(({ start, end }) => {
      const s = clockMinutes(start);
      const e = clockMinutes(end);
      if (s === undefined || e === undefined || e <= s) {
        throw new SlotQueryError(
          'ERR_SLOT_WORKING_HOURS',
          `Working hours on ${day} must be "HH:MM" to a later "HH:MM" (at most 24:00), not "${start}"–"${end}".`,
        );
      }
      return { start: s, end: e };
    }),
  );
}

function clockMinutes(text: string): number | undefined {
  const m = CLOCK.exec(text);
  if (!m) return undefined;
  return Number(m[1] ?? m[3]) * 60 + Number(m[2] ?? m[4]);
}
