// Clock changes, asserted by hand, through parse, expansion and slot search:
// a recurring 09:00 meeting keeps 09:00 on the local clock across both DST
// changes of the year in Europe/Berlin, America/New_York, Australia/Sydney
// (southern hemisphere: clocks go back in April) and America/Santiago; a
// meeting in the spring-forward gap; an all-day event on a 23- and a 25-hour
// day; and the first free slot after the meeting, on each side of a change.
import { describe, expect, it } from 'vitest';
import { toUtcIso } from '../../src/calendar/format.js';
import { expandBusy, parseCalendar } from '../../src/calendar/ics.js';
import { findSlots } from '../../src/calendar/slots.js';
import { parseWorkingHours } from '../../src/calendar/working-hours.js';

const utc = Date.UTC;
const MIN = 60_000;

function calendar(events: string[]): ReturnType<typeof parseCalendar> {
  return parseCalendar(['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', ...events, 'END:VCALENDAR', ''].join('\r\n'), 'dst');
}

function series(zone: string, dtstart: string, rule: string, length = 'PT30M'): string[] {
  return ['BEGIN:VEVENT', `UID:${zone}-${dtstart}`, 'DTSTAMP:20260101T000000Z', `DTSTART;TZID=${zone}:${dtstart}`, `DURATION:${length}`, `RRULE:${rule}`, 'END:VEVENT'];
}

const starts = (zone: string, events: string[], from: number, to: number, owner = zone) =>
  expandBusy(calendar(events), { start: from, end: to }, { timeZone: owner }).map((b) => toUtcIso(b.start));

describe('a 09:00 meeting keeps 09:00 local time across DST changes', () => {
  it.each([
    // zone, DTSTART, rule, window, expected starts (UTC)
    ['Europe/Berlin', '20260323T090000', 'FREQ=WEEKLY;BYDAY=MO', [utc(2026, 2, 20), utc(2026, 3, 3)], ['2026-03-23T08:00:00Z', '2026-03-30T07:00:00Z']],
    ['Europe/Berlin', '20261019T090000', 'FREQ=WEEKLY;BYDAY=MO', [utc(2026, 9, 18), utc(2026, 9, 30)], ['2026-10-19T07:00:00Z', '2026-10-26T08:00:00Z']],
    ['America/New_York', '20260306T090000', 'FREQ=DAILY', [utc(2026, 2, 6), utc(2026, 2, 10)], ['2026-03-06T14:00:00Z', '2026-03-07T14:00:00Z', '2026-03-08T13:00:00Z', '2026-03-09T13:00:00Z']],
    ['America/New_York', '20261030T090000', 'FREQ=DAILY', [utc(2026, 9, 30), utc(2026, 10, 3)], ['2026-10-30T13:00:00Z', '2026-10-31T13:00:00Z', '2026-11-01T14:00:00Z', '2026-11-02T14:00:00Z']],
    ['Australia/Sydney', '20260402T090000', 'FREQ=WEEKLY;BYDAY=TH', [utc(2026, 2, 30), utc(2026, 3, 12)], ['2026-04-01T22:00:00Z', '2026-04-08T23:00:00Z']],
    ['Australia/Sydney', '20261001T090000', 'FREQ=WEEKLY;BYDAY=TH', [utc(2026, 8, 28), utc(2026, 9, 10)], ['2026-09-30T23:00:00Z', '2026-10-07T22:00:00Z']],
    ['America/Santiago', '20260403T090000', 'FREQ=DAILY;COUNT=3', [utc(2026, 3, 1), utc(2026, 3, 10)], ['2026-04-03T12:00:00Z', '2026-04-04T12:00:00Z', '2026-04-05T13:00:00Z']],
  ])('%s from %s (%s)', (zone, dtstart, rule, [from, to], expected) => {
    expect(starts(zone, series(zone, dtstart, rule), from!, to!)).toEqual(expected);
    // Read in another owner zone, the meeting stays where its own zone puts it.
    expect(starts(zone, series(zone, dtstart, rule), from!, to!, 'Asia/Tokyo')).toEqual(expected);
  });
});

describe('times that the clock skips or shows twice, and days that are not 24 hours long', () => {
  it('reads 02:30 on the spring-forward night in Berlin as 03:30 CEST, and on the fall-back night as the first 02:30', () => {
    const events = [
      ...series('Europe/Berlin', '20260328T023000', 'FREQ=DAILY;COUNT=2'),
      ...series('Europe/Berlin', '20261024T023000', 'FREQ=DAILY;COUNT=2'),
    ];
    expect(starts('Europe/Berlin', events, utc(2026, 2, 27), utc(2026, 2, 31))).toEqual(['2026-03-28T01:30:00Z', '2026-03-29T01:30:00Z']);
    expect(starts('Europe/Berlin', events, utc(2026, 9, 23), utc(2026, 9, 27))).toEqual(['2026-10-24T00:30:00Z', '2026-10-25T00:30:00Z']);
  });

  it('makes an all-day event busy for the whole local day: 23 hours in March, 25 in October (Berlin), 25 in April (Sydney)', () => {
    const allDay = (date: string) => ['BEGIN:VEVENT', `UID:${date}`, 'DTSTAMP:20260101T000000Z', `DTSTART;VALUE=DATE:${date}`, 'END:VEVENT'];
    const busy = (owner: string, date: string) =>
      expandBusy(calendar(allDay(date)), { start: utc(2026, 0, 1), end: utc(2027, 0, 1) }, { timeZone: owner }).map((b) => [toUtcIso(b.start), (b.end - b.start) / 3_600_000]);
    expect(busy('Europe/Berlin', '20260329')).toEqual([['2026-03-28T23:00:00Z', 23]]);
    expect(busy('Europe/Berlin', '20261025')).toEqual([['2026-10-24T22:00:00Z', 25]]);
    expect(busy('Australia/Sydney', '20260405')).toEqual([['2026-04-04T13:00:00Z', 25]]);
  });
});

describe('the first free slot after a daily 09:00–09:30 stand-up, either side of a change', () => {
  it.each([
    ['Europe/Berlin', '20260326T090000', utc(2026, 2, 27, 6), ['2026-03-27T08:30:00Z', '2026-03-30T07:30:00Z']], // Fri CET, Mon CEST
    ['America/New_York', '20261029T090000', utc(2026, 9, 30, 12), ['2026-10-30T13:30:00Z', '2026-11-02T14:30:00Z']], // Fri EDT, Mon EST
    ['Australia/Sydney', '20260402T090000', utc(2026, 3, 2, 21), ['2026-04-02T22:30:00Z', '2026-04-05T23:30:00Z']], // Fri AEDT, Mon AEST
  ])('%s', (zone, dtstart, from, expected) => {
    const busy = expandBusy(calendar(series(zone, dtstart, 'FREQ=DAILY')), { start: from - 86_400_000, end: from + 5 * 86_400_000 }, { timeZone: zone });
    // Working hours 09:00–10:00 on weekdays, so each working day offers one half hour, after the stand-up.
    const slots = findSlots(busy, { durationMs: 30 * MIN, from, to: from + 4 * 86_400_000, timeZone: zone, workingHours: parseWorkingHours('mon-fri 09:00-10:00'), limit: 2 });
    expect(slots.map((s) => toUtcIso(s.start))).toEqual(expected);
  });
});

describe('UNTIL in the repeated hour of a fall-back night, the zone defined by the file (review regress21d)', () => {
  const vtimezone = (tzid: string, daylight: string[], standard: string[]) => ['BEGIN:VTIMEZONE', `TZID:${tzid}`, 'BEGIN:DAYLIGHT', ...daylight, 'END:DAYLIGHT', 'BEGIN:STANDARD', ...standard, 'END:STANDARD', 'END:VTIMEZONE'];
  const NEW_YORK = vtimezone(
    'America/New_York',
    ['TZOFFSETFROM:-0500', 'TZOFFSETTO:-0400', 'TZNAME:EDT', 'DTSTART:19700308T020000', 'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU'],
    ['TZOFFSETFROM:-0400', 'TZOFFSETTO:-0500', 'TZNAME:EST', 'DTSTART:19701101T020000', 'RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU'],
  );
  const BERLIN = vtimezone(
    'Europe/Berlin',
    ['TZOFFSETFROM:+0100', 'TZOFFSETTO:+0200', 'TZNAME:CEST', 'DTSTART:19700329T020000', 'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU'],
    ['TZOFFSETFROM:+0200', 'TZOFFSETTO:+0100', 'TZNAME:CET', 'DTSTART:19701025T030000', 'RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU'],
  );
  const window = [utc(2025, 0, 1), utc(2026, 0, 1)] as const;

  it.each([
    // 01:30 on 2 November 2025 is first 05:30Z (EDT), then 06:30Z (EST): UNTIL names the first, which is an instance.
    ['America/New_York', NEW_YORK, '20251026T013000', 'FREQ=WEEKLY;UNTIL=20251102T053000Z', ['2025-10-26T05:30:00Z', '2025-11-02T05:30:00Z']],
    // 02:30 on 26 October 2025 is first 00:30Z (CEST), then 01:30Z (CET).
    ['Europe/Berlin', BERLIN, '20251024T023000', 'FREQ=DAILY;UNTIL=20251026T003000Z', ['2025-10-24T00:30:00Z', '2025-10-25T00:30:00Z', '2025-10-26T00:30:00Z']],
  ])('%s: the instance at UNTIL is kept, as with the zone named without VTIMEZONE', (zone, definition, dtstart, rule, expected) => {
    expect(starts(zone, [...definition, ...series(zone, dtstart, rule)], ...window)).toEqual(expected);
    expect(starts(zone, series(zone, dtstart, rule), ...window)).toEqual(expected);
  });
});
