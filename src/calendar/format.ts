// How slots and instants are written for people and for machines, the same
// way in the CLI, the agent and the calendar backend: a human line such as
// "Tue 1 Dec 2026, 11:45–12:15 (Europe/Berlin)", ISO 8601 with the zone's
// offset ("2026-12-01T11:45:00+01:00"), ISO 8601 in UTC ("2026-12-01T10:45:00Z"),
// and the strict reading of ISO 8601 instants. English names, no locale data,
// independent of the process's TZ. Pure.
import type { Interval } from './intervals.js';
import { toWall, utcOffsetAt } from './zone.js';

const WEEKDAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTH_NAMES = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** "Tue 1 Dec 2026" for a wall time. */
function humanDate(wall: number): string {
  const d = new Date(wall);
  return `${WEEKDAY_NAMES[d.getUTCDay()]} ${d.getUTCDate()} ${MONTH_NAMES[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

/** "11:45" for a wall time. */
function humanClock(wall: number): string {
  const d = new Date(wall);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

/**
 * A slot for people, in `timeZone`, with an en dash between the times:
 * "Tue 1 Dec 2026, 11:45–12:15 (Europe/Berlin)". A slot that ends on a later
 * date names both dates: "Tue 1 Dec 2026, 23:45 – Wed 2 Dec 2026, 00:15 (Europe/Berlin)";
 * one that ends exactly at the next midnight counts as the same day ("23:30–00:00"), and a
 * whole day is written "00:00–24:00".
 */
export function formatSlotHuman(slot: Interval, timeZone: string): string {
  const startWall = toWall(slot.start, timeZone);
  const endWall = toWall(slot.end, timeZone);
  // The last instant of the slot decides its day: a slot is half-open.
  const lastWall = toWall(Math.max(slot.start, slot.end - 1), timeZone);
  const sameDay = humanDate(startWall) === humanDate(lastWall);
  // A whole day ends at 24:00 (ISO 8601's end of day): "00:00–00:00" read as nothing at all (found in review, s34privacy).
  const endClock = sameDay && slot.end > slot.start && humanClock(startWall) === '00:00' && humanClock(endWall) === '00:00' ? '24:00' : humanClock(endWall);
  const range = sameDay
    ? `${humanDate(startWall)}, ${humanClock(startWall)}–${endClock}`
    : `${humanDate(startWall)}, ${humanClock(startWall)} – ${humanDate(endWall)}, ${humanClock(endWall)}`;
  return `${range} (${timeZone})`;
}

/** "+01:00" for an offset in ms; "+00:00" for UTC (never "Z", so every zoned time reads alike). */
function offsetText(offsetMs: number): string {
  const sign = offsetMs < 0 ? '-' : '+';
  const minutes = Math.round(Math.abs(offsetMs) / 60_000);
  return `${sign}${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
}

/** "2026-12-01T11:45:00" (plus ".sss" when the milliseconds are not zero) for a wall time. */
function isoLocal(wall: number): string {
  const d = new Date(wall);
  const ms = d.getUTCMilliseconds();
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` +
    (ms ? `.${pad(ms, 3)}` : '')
  );
}

/**
 * ISO 8601 with the offset `timeZone` has at `ms`: "2026-12-01T11:45:00+01:00".
 * UTC is written "+00:00". Historical offsets with seconds are rounded to the minute.
 */
export function toZonedIso(ms: number, timeZone: string): string {
  const offset = utcOffsetAt(ms, timeZone);
  return `${isoLocal(ms + offset)}${offsetText(offset)}`;
}

/** ISO 8601 in UTC, without milliseconds when they are zero: "2026-12-01T10:45:00Z". */
export function toUtcIso(ms: number): string {
  return `${isoLocal(ms)}Z`;
}

/** Date, time to at least minutes, optional seconds and fraction, and a required offset. */
const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * The instant an ISO 8601 date-time with an explicit offset or Z names, or
 * undefined. A time without an offset is refused: whose clock would it be?
 */
export function parseIsoInstant(text: string): number | undefined {
  const m = ISO_INSTANT.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = '0', zone] = m;
  const fields = [Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s)] as const;
  const wall = Date.UTC(fields[0], fields[1] - 1, fields[2], fields[3], fields[4], fields[5]);
  // Refuse dates that Date.UTC would roll over (31 February, 25:00).
  const check = new Date(wall);
  if (
    check.getUTCFullYear() !== fields[0] ||
    check.getUTCMonth() !== fields[1] - 1 ||
    check.getUTCDate() !== fields[2] ||
    check.getUTCHours() !== fields[3] ||
    check.getUTCMinutes() !== fields[4] ||
    fields[5] > 59
  ) {
    return undefined;
  }
  let offset = 0;
  if (zone!.toUpperCase() !== 'Z') {
    const oh = Number(zone!.slice(1, 3));
    const om = Number(zone!.slice(4, 6));
    if (oh > 23 || om > 59) return undefined;
    offset = (zone![0] === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  return wall + Math.floor(Number(`0.${frac}`) * 1000) - offset;
}
