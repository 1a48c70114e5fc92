// Reading a DATE or DATE-TIME of a calendar file as an instant. ical.js keeps
// the wall-clock fields and knows the zones a file defines in VTIMEZONE; a TZID
// with no VTIMEZONE it treats as floating. Here such a TZID is resolved to an
// IANA zone (or a Windows zone name mapped to one) and converted with Intl;
// floating times and all-day dates are read in the owner's zone, which is only
// known when expanding, so a parsed calendar does not depend on it. Pure.
import ICAL from 'ical.js';
import { BoundedMap } from '../bounded-map.js';
import { DAY_MS, fromWall } from './zone.js';
import { ianaZoneForTzid } from './zone-names.js';

/** How a time's wall clock maps to instants. */
export type ZoneRule =
  /** Ends in Z. */
  | { kind: 'utc' }
  /** No TZID (or one nobody knows): the owner's zone. */
  | { kind: 'floating' }
  /** A TZID with no VTIMEZONE in the file, resolved to this IANA zone. */
  | { kind: 'named'; timeZone: string }
  /** A TZID the file defines in a VTIMEZONE: ical.js converts it. */
  | { kind: 'defined' };

/** A date or date-time as written in the file, with how to read it. */
export interface CalendarTime {
  time: ICAL.Time;
  zone: ZoneRule;
}

/** How to read the times of a property, and a note when its TZID is unknown. */
export function zoneRuleOf(property: ICAL.Property, time: ICAL.Time): { rule: ZoneRule; unknownTzid?: string } {
  if (time.zone === ICAL.Timezone.utcTimezone) return { rule: { kind: 'utc' } };
  const tzid = property.getParameter('tzid');
  const name = Array.isArray(tzid) ? tzid[0] : tzid;
  if (typeof name !== 'string' || name === '') return { rule: { kind: 'floating' } };
  if (time.zone && time.zone !== ICAL.Timezone.localTimezone && time.zone.tzid === name) return { rule: { kind: 'defined' } };
  const timeZone = ianaZoneForTzid(name);
  return timeZone ? { rule: { kind: 'named', timeZone } } : { rule: { kind: 'floating' }, unknownTzid: name };
}

/** The wall-clock time as written, in wall milliseconds (a date is its midnight). */
export function wallOf(time: ICAL.Time): number {
  return time.isDate
    ? Date.UTC(time.year, time.month - 1, time.day)
    : Date.UTC(time.year, time.month - 1, time.day, time.hour, time.minute, time.second);
}

/** The local date as written, as the wall milliseconds of its midnight. */
export function dateOf(time: ICAL.Time): number {
  return Date.UTC(time.year, time.month - 1, time.day);
}

/**
 * The instant a calendar time names. All-day dates start at midnight in the
 * owner's zone, so an all-day event blocks the owner's whole day.
 */
export function instantOf(t: CalendarTime, ownerZone: string): number {
  if (t.time.isDate) return fromWall(wallOf(t.time), ownerZone);
  switch (t.zone.kind) {
    case 'utc':
      return wallOf(t.time);
    case 'defined':
      return fromDefinedWall(t.time);
    case 'named':
      return fromWall(wallOf(t.time), t.zone.timeZone);
    case 'floating':
      return fromWall(wallOf(t.time), ownerZone);
  }
}

/** Offsets (ms) of wall times in each VTIMEZONE zone, as ical.js computes them; bounded, and gone with the zone. */
const offsetMemo = new WeakMap<ICAL.Timezone, BoundedMap<number, number>>();
const OFFSET_MEMO_SIZE = 4096;

/**
 * The instant a wall-clock time in a zone the file defines (VTIMEZONE) names,
 * read as fromWall reads an IANA zone (RFC 5545 §3.3.5): in an overlap the
 * first of the two, in a gap with the offset before it. ical.js's toUnixTime
 * takes the offset after the change for both (the second 02:30 of a fall-back
 * night), and its conversion from UTC is an hour off next to a change, so only
 * its offsets for wall-clock times are used, away from the ambiguity.
 */
function fromDefinedWall(time: ICAL.Time): number {
  const zone = time.zone!;
  const wall = wallOf(time);
  // ical.js's offset for a wall-clock time (wall − instant, ms): right except in a gap or an overlap. Memoized per
  // zone and wall time: a series at one time of day asks for its neighbours' days again (it tripled expansion's cost).
  let memo = offsetMemo.get(zone);
  if (!memo) offsetMemo.set(zone, (memo = new BoundedMap<number, number>(OFFSET_MEMO_SIZE)));
  const offsetAt = (w: number) => {
    const known = memo.get(w);
    if (known !== undefined) return known;
    const d = new Date(w);
    const t = ICAL.Time.fromData(
      { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds(), isDate: false },
      zone,
    );
    const offset = zone.utcOffset(t) * 1000;
    memo.set(w, offset);
    return offset;
  };
  const before = offsetAt(wall - DAY_MS);
  const after = offsetAt(wall + DAY_MS);
  const offset = offsetAt(wall);
  // In a gap or overlap ical.js gives the offset after the change; a wall time one change earlier still has the
  // offset before it exactly then (a fall-back's repeated hour, a spring-forward's missing one): read it with that.
  if (before !== after && offset === after && offsetAt(wall - Math.abs(after - before)) === before) return wall - before;
  return wall - offset;
}

/** The IANA zone whose clock a time's wall fields are read on, or undefined for UTC and VTIMEZONE zones. */
export function wallZoneOf(t: CalendarTime, ownerZone: string): string | undefined {
  if (t.time.isDate) return ownerZone;
  if (t.zone.kind === 'named') return t.zone.timeZone;
  if (t.zone.kind === 'floating') return ownerZone;
  return undefined;
}
