// Random calendars for property tests: ICS text as calendar programs write it
// (timed events in an IANA zone, UTC and floating times, all-day events,
// DTEND or DURATION, daily and weekly series with COUNT, EXDATE and a moved
// or cancelled instance, transparent, cancelled and tentative events), and,
// from the same description, the busy time they mean, computed independently
// of the code under test: wall clocks read with @date-fns/tz, recurrence by
// adding days. Start times stay out of 00:00–04:59, where clocks change, so
// the two never have to agree on how to read a time in a DST gap.
import { TZDate } from '@date-fns/tz';
import fc from 'fast-check';
import type { Interval } from '../../../src/calendar/intervals.js';

export const ZONES = ['Europe/Berlin', 'America/New_York', 'Australia/Sydney', 'Asia/Kolkata', 'UTC'] as const;
export type Zone = (typeof ZONES)[number];

/** Around DST changes of 2026 in the zones above, and ordinary weeks. */
export const ANCHOR_DAYS = [
  { y: 2026, m: 3, d: 26 }, // Europe springs forward on the 29th
  { y: 2026, m: 10, d: 22 }, // Europe falls back on the 25th
  { y: 2026, m: 3, d: 5 }, // New York springs forward on the 8th
  { y: 2026, m: 10, d: 29 }, // New York falls back on 1 Nov
  { y: 2026, m: 4, d: 2 }, // Sydney falls back on the 5th
  { y: 2026, m: 10, d: 1 }, // Sydney springs forward on the 4th
  { y: 2026, m: 6, d: 15 },
];

type TimeKind = 'zoned' | 'utc' | 'floating';
type Status = 'busy' | 'transparent' | 'cancelled' | 'tentative';

export interface RandomEvent {
  kind: 'timed' | 'allDay';
  time: TimeKind;
  /** Wall-clock start: days after the anchor day, hour (05–22) and minute. */
  dayOffset: number;
  hour: number;
  minute: number;
  /** Minutes for timed events, days for all-day events. */
  length: number;
  useDuration: boolean;
  status: Status;
  repeat?: { freq: 'DAILY' | 'WEEKLY'; interval: number; count: number; exdates: number[]; moved?: { index: number; hours: number; cancelled: boolean } };
}

export interface RandomCalendar {
  /** The zone TZIDs name (the file has no VTIMEZONE: an IANA TZID as Google, Outlook.com and others write it). */
  eventZone: Zone;
  /** The owner's zone: floating times and all-day events are read in it. */
  ownerZone: Zone;
  anchor: { y: number; m: number; d: number };
  events: RandomEvent[];
}

const event: fc.Arbitrary<RandomEvent> = fc
  .record({
    kind: fc.constantFrom<'timed' | 'allDay'>('timed', 'timed', 'timed', 'allDay'),
    time: fc.constantFrom<TimeKind>('zoned', 'zoned', 'utc', 'floating'),
    dayOffset: fc.integer({ min: -3, max: 6 }),
    hour: fc.integer({ min: 5, max: 22 }),
    minute: fc.constantFrom(0, 10, 15, 30, 45),
    length: fc.integer({ min: 5, max: 240 }),
    useDuration: fc.boolean(),
    status: fc.constantFrom<Status>('busy', 'busy', 'busy', 'transparent', 'cancelled', 'tentative'),
    repeat: fc.option(
      fc.record({
        freq: fc.constantFrom<'DAILY' | 'WEEKLY'>('DAILY', 'WEEKLY'),
        interval: fc.integer({ min: 1, max: 2 }),
        count: fc.integer({ min: 2, max: 6 }),
        exdates: fc.uniqueArray(fc.integer({ min: 1, max: 5 }), { maxLength: 2 }),
        moved: fc.option(fc.record({ index: fc.integer({ min: 1, max: 5 }), hours: fc.integer({ min: -2, max: 3 }), cancelled: fc.boolean() }), { nil: undefined }),
      }),
      { nil: undefined },
    ),
  })
  .map((e) => (e.kind === 'allDay' ? { ...e, length: 1 + (e.length % 2) } : e));

export const randomCalendar: fc.Arbitrary<RandomCalendar> = fc.record({
  eventZone: fc.constantFrom(...ZONES),
  ownerZone: fc.constantFrom(...ZONES),
  anchor: fc.constantFrom(...ANCHOR_DAYS),
  events: fc.array(event, { maxLength: 10 }),
});

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** A wall-clock date `days` after the anchor (calendar arithmetic, no zone). */
function dayAfter(anchor: RandomCalendar['anchor'], days: number): { y: number; m: number; d: number } {
  const t = new Date(Date.UTC(anchor.y, anchor.m - 1, anchor.d + days));
  return { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate() };
}

/** The instant a wall time names in `zone`, read by @date-fns/tz. */
function instant(zone: string, y: number, m: number, d: number, h = 0, min = 0): number {
  return new TZDate(y, m - 1, d, h, min, 0, zone).getTime();
}

interface Occurrence {
  /** Days after the anchor, and the start's wall hour and minute. */
  day: number;
  hour: number;
  minute: number;
  /** The instance's own status (an override may cancel it). */
  cancelled: boolean;
}

function occurrences(e: RandomEvent): Occurrence[] {
  if (!e.repeat) return [{ day: e.dayOffset, hour: e.hour, minute: e.minute, cancelled: false }];
  const step = e.repeat.interval * (e.repeat.freq === 'WEEKLY' ? 7 : 1);
  const out: Occurrence[] = [];
  for (let i = 0; i < e.repeat.count; i++) {
    if (e.repeat.exdates.includes(i)) continue;
    const moved = e.repeat.moved && e.repeat.moved.index === i && i < e.repeat.count ? e.repeat.moved : undefined;
    const hour = moved ? Math.min(22, Math.max(5, e.hour + moved.hours)) : e.hour;
    out.push({ day: e.dayOffset + i * step, hour, minute: e.minute, cancelled: moved?.cancelled ?? false });
  }
  return out;
}

/** The busy intervals the calendar means, unmerged. */
export function expectedBusy(c: RandomCalendar, tentative: 'busy' | 'free'): Interval[] {
  const out: Interval[] = [];
  for (const e of c.events) {
    const free = e.status === 'transparent' || e.status === 'cancelled' || (e.status === 'tentative' && tentative === 'free');
    if (free) continue;
    for (const o of occurrences(e)) {
      if (o.cancelled) continue;
      const day = dayAfter(c.anchor, o.day);
      if (e.kind === 'allDay') {
        const end = dayAfter(c.anchor, o.day + e.length);
        out.push({ start: instant(c.ownerZone, day.y, day.m, day.d), end: instant(c.ownerZone, end.y, end.m, end.d) });
        continue;
      }
      const zone = e.time === 'utc' ? 'UTC' : e.time === 'floating' ? c.ownerZone : c.eventZone;
      const start = instant(zone, day.y, day.m, day.d, o.hour, o.minute);
      // DTEND is written on the same clock; every instance lasts the master's exact length (RFC 5545 §3.8.5.3 / §3.3.6).
      out.push({ start, end: start + e.length * 60_000 });
    }
  }
  return out;
}

/** The calendar as an .ics file. */
export function toIcs(c: RandomCalendar): string {
  const lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//random//EN'];
  c.events.forEach((e, n) => {
    const stamp = (o: { day: number; hour: number; minute: number }, time: TimeKind) => {
      const day = dayAfter(c.anchor, o.day);
      const date = `${day.y}${pad(day.m)}${pad(day.d)}`;
      if (e.kind === 'allDay') return `;VALUE=DATE:${date}`;
      if (time === 'utc') {
        // UTC: the wall time as UTC.
        return `:${date}T${pad(o.hour)}${pad(o.minute)}00Z`;
      }
      return `${time === 'zoned' ? `;TZID=${c.eventZone}` : ''}:${date}T${pad(o.hour)}${pad(o.minute)}00`;
    };
    const master = { day: e.dayOffset, hour: e.hour, minute: e.minute };
    const endOf = (o: { day: number; hour: number; minute: number }) => {
      if (e.kind === 'allDay') return { day: o.day + e.length, hour: 0, minute: 0 };
      const total = o.hour * 60 + o.minute + e.length;
      return { day: o.day + Math.floor(total / 1440), hour: Math.floor((total % 1440) / 60), minute: total % 60 };
    };
    const body = [
      'BEGIN:VEVENT',
      `UID:event-${n}@delegate.test`,
      'DTSTAMP:20260101T000000Z',
      `DTSTART${stamp(master, e.time)}`,
      // Timed events end on the same clock only when no clock change falls in between; elapsed minutes are what is meant, so UTC and DURATION say it exactly.
      e.kind === 'allDay'
        ? e.useDuration
          ? `DURATION:P${e.length}D`
          : `DTEND${stamp(endOf(master), e.time)}`
        : e.useDuration || e.time !== 'utc'
          ? `DURATION:PT${e.length}M`
          : `DTEND${stamp(endOf(master), 'utc')}`,
      ...(e.status === 'transparent' ? ['TRANSP:TRANSPARENT'] : []),
      ...(e.status === 'cancelled' ? ['STATUS:CANCELLED'] : []),
      ...(e.status === 'tentative' ? ['STATUS:TENTATIVE'] : []),
    ];
    if (e.repeat) {
      body.push(`RRULE:FREQ=${e.repeat.freq};INTERVAL=${e.repeat.interval};COUNT=${e.repeat.count}`);
      const step = e.repeat.interval * (e.repeat.freq === 'WEEKLY' ? 7 : 1);
      for (const i of e.repeat.exdates) if (i < e.repeat.count) body.push(`EXDATE${stamp({ ...master, day: e.dayOffset + i * step }, e.time)}`);
    }
    body.push('END:VEVENT');
    lines.push(...body);
    const moved = e.repeat?.moved;
    if (e.repeat && moved && moved.index < e.repeat.count && !e.repeat.exdates.includes(moved.index)) {
      const step = e.repeat.interval * (e.repeat.freq === 'WEEKLY' ? 7 : 1);
      const original = { ...master, day: e.dayOffset + moved.index * step };
      const hour = Math.min(22, Math.max(5, e.hour + moved.hours));
      const start = { ...original, hour };
      lines.push(
        'BEGIN:VEVENT',
        `UID:event-${n}@delegate.test`,
        'DTSTAMP:20260101T000000Z',
        `RECURRENCE-ID${stamp(original, e.time)}`,
        `DTSTART${stamp(start, e.time)}`,
        e.kind === 'allDay' ? `DURATION:P${e.length}D` : `DURATION:PT${e.length}M`,
        // An override states the instance's own status; programs copy the series' unless it changes.
        ...(moved.cancelled || e.status === 'cancelled' ? ['STATUS:CANCELLED'] : e.status === 'tentative' ? ['STATUS:TENTATIVE'] : []),
        ...(e.status === 'transparent' ? ['TRANSP:TRANSPARENT'] : []),
        'END:VEVENT',
      );
    }
  });
  lines.push('END:VCALENDAR', '');
  return lines.join('\r\n');
}

/** Midnight of the anchor day in the owner's zone, minus a day: where windows around it start. */
export function anchorInstant(c: RandomCalendar): number {
  return instant(c.ownerZone, c.anchor.y, c.anchor.m, c.anchor.d);
}
