// The rules ics-periods.ts expands because ical.js 2.2.1 got them wrong:
// yearly ones (review "calendar", finding 1: the review's cases, and the edges
// of week numbering: week 1 starting in December, week 53, negative weeks,
// WKST; BYSETPOS over a whole year; COUNT and UNTIL; EXDATE, overrides and
// all-day dates applied to such a series as to any other), and monthly ones
// and BYSETPOS in daily and weekly ones, where a comparison with
// python-dateutil over random rules found ical.js wrong too.
import { describe, expect, it } from 'vitest';
import { CalendarSourceError } from '../../src/calendar/errors.js';
import { toUtcIso } from '../../src/calendar/format.js';
import { expandBusy, expandInstances, parseCalendar } from '../../src/calendar/ics.js';

const utc = Date.UTC;

function ics(...lines: string[]): string {
  return ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', 'BEGIN:VEVENT', 'UID:y@test', 'DTSTAMP:20250101T000000Z', ...lines, 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
}

/** Busy intervals as "start/end" UTC strings. */
function busy(text: string, from: number, to: number, timeZone = 'UTC'): string[] {
  return expandBusy(parseCalendar(text, 'test'), { start: from, end: to }, { timeZone }).map((i) => `${toUtcIso(i.start)}/${toUtcIso(i.end)}`);
}

/** The busy days ("YYYY-MM-DD", UTC) of an hour-long 09:00Z series over [from, to). */
function days(rule: string, dtstart: string, from: number, to: number, ...extra: string[]): string[] {
  return busy(ics(`DTSTART:${dtstart}`, 'DURATION:PT1H', `RRULE:${rule}`, ...extra), from, to).map((b) => b.slice(0, 10));
}

/** The instance starts ("YYYY-MM-DDTHH:MM:SS", UTC) of a one-second series over [from, to) (busy time would merge them). */
function starts(dtstart: string, rule: string, from: number, to: number): string[] {
  const text = ics(`DTSTART:${dtstart}`, 'DURATION:PT1S', `RRULE:${rule}`);
  return expandInstances(parseCalendar(text, 'test'), { start: from, end: to }, { timeZone: 'UTC' }).map((i) => toUtcIso(i.start).slice(0, 19)).sort();
}

describe('yearly rules ical.js expanded wrongly (review "calendar", finding 1)', () => {
  it('RFC 5545 §3.8.5.3 "Monday of week number 20": only 11 May in May 2026 (found in review: 4, 18 and 25 May)', () => {
    const text = ics('DTSTART:19970512T090000Z', 'DTEND:19970512T100000Z', 'RRULE:FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO');
    expect(busy(text, utc(2026, 4, 1), utc(2026, 5, 1))).toEqual(['2026-05-11T09:00:00Z/2026-05-11T10:00:00Z']);
  });

  it('"the first Monday of the year" (BYSETPOS=1 without BYMONTH) is busy on no day of December (found in review: every Monday)', () => {
    const text = ics('DTSTART:20260105T090000Z', 'DTEND:20260105T100000Z', 'RRULE:FREQ=YEARLY;BYDAY=MO;BYSETPOS=1');
    expect(busy(text, utc(2026, 11, 1), utc(2027, 0, 1))).toEqual([]);
    expect(busy(text, utc(2027, 0, 1), utc(2027, 1, 1))).toEqual(['2027-01-04T09:00:00Z/2027-01-04T10:00:00Z']);
  });

  it('the week-50 offsite in Berlin is 7 December 2026 only (ISO week 50), 09:00-17:00 CET', () => {
    const text = ics('DTSTART;TZID=Europe/Berlin:20251208T090000', 'DTEND;TZID=Europe/Berlin:20251208T170000', 'RRULE:FREQ=YEARLY;BYWEEKNO=50;BYDAY=MO');
    expect(busy(text, utc(2026, 11, 1), utc(2027, 0, 1), 'Europe/Berlin')).toEqual(['2026-12-07T08:00:00Z/2026-12-07T16:00:00Z']);
  });

  it('BYDAY=20MO and BYDAY=-1MO without BYMONTH: the 20th and the last Monday of the year', () => {
    expect(days('FREQ=YEARLY;BYDAY=20MO', '20250519T090000Z', utc(2026, 0, 1), utc(2028, 0, 1))).toEqual(['2026-05-18', '2027-05-17']);
    expect(days('FREQ=YEARLY;BYDAY=-1MO', '20251229T090000Z', utc(2026, 0, 1), utc(2028, 0, 1))).toEqual(['2026-12-28', '2027-12-27']);
  });

  it('BYSETPOS=-1 over the year: the last weekday of each year', () => {
    expect(days('FREQ=YEARLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1', '20251231T090000Z', utc(2026, 0, 1), utc(2029, 0, 1))).toEqual(['2026-12-31', '2027-12-31', '2028-12-29']);
  });
});

describe('week numbers (RFC 5545 §3.3.10: ISO 8601 weeks, starting on WKST)', () => {
  it('week 1 may start in December: BYWEEKNO=1;BYDAY=MO is 29 December 2025, 4 January 2027, 3 January 2028', () => {
    expect(days('FREQ=YEARLY;BYWEEKNO=1;BYDAY=MO', '20241230T090000Z', utc(2025, 6, 1), utc(2028, 1, 1))).toEqual(['2025-12-29', '2027-01-04', '2028-01-03']);
  });

  it('week 53 exists only in years that have it (2026, not 2027), and week -1 is each year’s last', () => {
    expect(days('FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO', '20201228T090000Z', utc(2026, 0, 1), utc(2029, 0, 1))).toEqual(['2026-12-28']);
    expect(days('FREQ=YEARLY;BYWEEKNO=-1;BYDAY=MO', '20201228T090000Z', utc(2026, 0, 1), utc(2028, 0, 1))).toEqual(['2026-12-28', '2027-12-27']);
  });

  it('a week without BYDAY is all its seven days, including those in January of the next year', () => {
    expect(days('FREQ=YEARLY;BYWEEKNO=53', '20201228T090000Z', utc(2026, 0, 1), utc(2027, 1, 1))).toEqual([
      '2026-12-28',
      '2026-12-29',
      '2026-12-30',
      '2026-12-31',
      '2027-01-01',
      '2027-01-02',
      '2027-01-03',
    ]);
  });

  it('WKST moves the weeks: week 2 of 2026 holds Monday 5 January with Monday starts (ISO), 12 January with Sunday starts', () => {
    // 2026 begins on a Thursday: 29 Dec-4 Jan holds four days of 2026, so it is week 1 of Monday-weeks;
    // 28 Dec-3 Jan holds only three, so Sunday-weeks' week 1 is 4-10 January.
    expect(days('FREQ=YEARLY;BYWEEKNO=2;BYDAY=MO', '20250106T090000Z', utc(2026, 0, 1), utc(2026, 1, 1))).toEqual(['2026-01-05']);
    expect(days('FREQ=YEARLY;BYWEEKNO=2;BYDAY=MO;WKST=SU', '20250106T090000Z', utc(2026, 0, 1), utc(2026, 1, 1))).toEqual(['2026-01-12']);
  });

  it('refuses BYDAY with a number together with BYWEEKNO (RFC 5545 erratum 3779: MUST NOT), naming the line', () => {
    let error: unknown;
    try {
      parseCalendar(ics('DTSTART:20260105T090000Z', 'RRULE:FREQ=YEARLY;BYWEEKNO=2;BYDAY=1MO'), 'test');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CalendarSourceError);
    expect([(error as CalendarSourceError).code, (error as CalendarSourceError).line]).toEqual(['ERR_ICS_RULE', 8]);
  });
});

describe('a yearly series is limited and amended as any other', () => {
  it('COUNT counts DTSTART as the first instance, and stops there', () => {
    expect(days('FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO;COUNT=3', '20240513T090000Z', utc(2024, 0, 1), utc(2030, 0, 1))).toEqual(['2024-05-13', '2025-05-12', '2026-05-11']);
  });

  it('UNTIL is inclusive, on the series’ own clock', () => {
    const text = ics('DTSTART;TZID=Europe/Berlin:20241209T090000', 'DURATION:PT1H', 'RRULE:FREQ=YEARLY;BYWEEKNO=50;BYDAY=MO;UNTIL=20261207T080000Z');
    expect(busy(text, utc(2024, 0, 1), utc(2030, 0, 1)).map((b) => b.slice(0, 10))).toEqual(['2024-12-09', '2025-12-08', '2026-12-07']);
  });

  it('INTERVAL=2 counts years from DTSTART’s', () => {
    expect(days('FREQ=YEARLY;INTERVAL=2;BYWEEKNO=20;BYDAY=MO', '20240513T090000Z', utc(2024, 0, 1), utc(2029, 0, 1))).toEqual(['2024-05-13', '2026-05-11', '2028-05-15']);
  });

  it('EXDATE removes an instance and a RECURRENCE-ID override moves one', () => {
    const text = [
      'BEGIN:VCALENDAR',
      'VERSION:2.0',
      'PRODID:-//delegate tests//EN',
      'BEGIN:VEVENT',
      'UID:s@test',
      'DTSTAMP:20250101T000000Z',
      'DTSTART:20230515T090000Z',
      'DURATION:PT1H',
      'RRULE:FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO',
      'EXDATE:20250512T090000Z',
      'END:VEVENT',
      'BEGIN:VEVENT',
      'UID:s@test',
      'DTSTAMP:20250101T000000Z',
      'RECURRENCE-ID:20260511T090000Z',
      'DTSTART:20260512T140000Z',
      'DURATION:PT1H',
      'END:VEVENT',
      'END:VCALENDAR',
      '',
    ].join('\r\n');
    expect(busy(text, utc(2024, 0, 1), utc(2028, 0, 1))).toEqual([
      '2024-05-13T09:00:00Z/2024-05-13T10:00:00Z',
      '2026-05-12T14:00:00Z/2026-05-12T15:00:00Z',
      '2027-05-17T09:00:00Z/2027-05-17T10:00:00Z',
    ]);
  });

  it('an all-day yearly series covers the owner’s whole local day', () => {
    const text = ics('DTSTART;VALUE=DATE:20251208', 'DTEND;VALUE=DATE:20251209', 'RRULE:FREQ=YEARLY;BYWEEKNO=50;BYDAY=MO');
    expect(busy(text, utc(2026, 11, 1), utc(2027, 0, 1), 'Europe/Berlin')).toEqual(['2026-12-06T23:00:00Z/2026-12-07T23:00:00Z']);
  });

  it('a yearly rule from 1900 without COUNT reaches a window in 2026 promptly', () => {
    const started = performance.now();
    expect(days('FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO,TU,WE,TH,FR', '19000514T090000Z', utc(2026, 4, 11), utc(2026, 4, 18))).toEqual([
      '2026-05-11',
      '2026-05-12',
      '2026-05-13',
      '2026-05-14',
      '2026-05-15',
    ]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('a yearly rule that never matches in the window (29 February on a Monday) costs little and gives nothing', () => {
    const started = performance.now();
    expect(days('FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO', '19000101T090000Z', utc(2026, 0, 1), utc(2027, 0, 1))).toEqual([]);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe('monthly rules, and BYSETPOS in daily and weekly ones (found comparing with python-dateutil)', () => {
  it('MONTHLY;BYMONTH=8 from March: 12 August of every year, the first included (ical.js skipped 2022)', () => {
    expect(days('FREQ=MONTHLY;BYMONTH=8', '20220312T090000Z', utc(2022, 3, 1), utc(2024, 11, 1))).toEqual(['2022-08-12', '2023-08-12', '2024-08-12']);
  });

  it('MONTHLY;INTERVAL=2 with BYMONTH keeps to every other month (ical.js also gave the months in between)', () => {
    // From December 2021 every other month is Dec, Feb, Apr, …: of February and July, only February.
    expect(days('FREQ=MONTHLY;INTERVAL=2;BYMONTH=7,2;BYDAY=TH', '20211202T090000Z', utc(2022, 0, 1), utc(2023, 0, 1))).toEqual([
      '2022-02-03',
      '2022-02-10',
      '2022-02-17',
      '2022-02-24',
    ]);
  });

  it('MONTHLY;BYDAY=SU with BYHOUR: Sundays at those hours, also from a DTSTART on a Tuesday (ical.js then gave the 1st of the month)', () => {
    const text = ics('DTSTART:20251104T090000Z', 'DURATION:PT1H', 'RRULE:FREQ=MONTHLY;BYMONTH=2,11;BYDAY=SU;BYHOUR=9,14');
    expect(busy(text, utc(2026, 1, 1), utc(2026, 1, 10))).toEqual(['2026-02-01T09:00:00Z/2026-02-01T10:00:00Z', '2026-02-01T14:00:00Z/2026-02-01T15:00:00Z', '2026-02-08T09:00:00Z/2026-02-08T10:00:00Z', '2026-02-08T14:00:00Z/2026-02-08T15:00:00Z']);
  });

  it('WEEKLY;BYDAY=WE,FR;BYSETPOS=-1 is Fridays only (ical.js ignored BYSETPOS: Wednesdays too)', () => {
    expect(days('FREQ=WEEKLY;BYDAY=WE,FR;BYSETPOS=-1', '20251205T090000Z', utc(2026, 0, 5), utc(2026, 0, 19))).toEqual(['2026-01-09', '2026-01-16']);
  });

  it('DAILY;BYHOUR=9,14;BYSETPOS=1 is 09:00 only (ical.js ignored BYSETPOS: 14:00 too)', () => {
    const text = ics('DTSTART:20260101T090000Z', 'DURATION:PT1H', 'RRULE:FREQ=DAILY;BYHOUR=9,14;BYSETPOS=1');
    expect(busy(text, utc(2026, 0, 5), utc(2026, 0, 7))).toEqual(['2026-01-05T09:00:00Z/2026-01-05T10:00:00Z', '2026-01-06T09:00:00Z/2026-01-06T10:00:00Z']);
  });
});

describe('BYSETPOS in hourly, minutely and secondly rules (RFC 5545 §3.3.10: it picks among the instances of each period)', () => {
  // Refused until now (ERR_ICS_RULE), from when ical.js expanded these rules and ignored BYSETPOS. Each expectation is
  // python-dateutil 2.9's, with DTSTART counted first as RFC 5545 counts it (for SECONDLY;BYSETPOS=2, which has no
  // instance, dateutil searches on without end).
  it.each([
    // An hour's instances are its BYMINUTE × BYSECOND: 09:00:00, 09:00:15, 09:30:00, 09:30:15; the 2nd and the last.
    ['FREQ=HOURLY;BYMINUTE=0,30;BYSECOND=0,15;BYSETPOS=2,-1;COUNT=6', ['2025-01-01T09:00:00', '2025-01-01T09:00:15', '2025-01-01T09:30:15', '2025-01-01T10:00:15', '2025-01-01T10:30:15', '2025-01-01T11:00:15']],
    // A minute's instances are its BYSECOND: the last but one is :15.
    ['FREQ=MINUTELY;BYSECOND=0,15,45;BYSETPOS=-2;COUNT=4', ['2025-01-01T09:00:00', '2025-01-01T09:00:15', '2025-01-01T09:01:15', '2025-01-01T09:02:15']],
    // A second has one instance, first and last: BYSETPOS=1 keeps every second, BYSETPOS=2 none (DTSTART alone).
    ['FREQ=SECONDLY;BYSETPOS=1,-1;COUNT=3', ['2025-01-01T09:00:00', '2025-01-01T09:00:01', '2025-01-01T09:00:02']],
    ['FREQ=SECONDLY;BYSETPOS=2;COUNT=3', ['2025-01-01T09:00:00']],
  ])('%s', (rule, expected) => {
    expect(starts('20250101T090000Z', rule, utc(2025, 0, 1), utc(2025, 0, 2))).toEqual(expected);
  });

  it('HOURLY;INTERVAL=5 on Mondays, the last of each hour’s three times: every fifth hour of Monday at :40', () => {
    expect(starts('20250101T090000Z', 'FREQ=HOURLY;INTERVAL=5;BYDAY=MO;BYMINUTE=0,20,40;BYSETPOS=-1', utc(2025, 0, 6), utc(2025, 0, 7))).toEqual([
      '2025-01-06T04:40:00',
      '2025-01-06T09:40:00',
      '2025-01-06T14:40:00',
      '2025-01-06T19:40:00',
    ]);
  });
});

describe('an instant given twice in one period takes one BYSETPOS position (RFC 5545 §3.3.10: the set of instances)', () => {
  // BYSECOND=60 is the next minute's :00, which the period may hold too. python-dateutil refuses second 60; these are
  // the positions in the set written out by hand (and compared with dateutil's instances for the rule without BYSETPOS).
  it('DAILY;BYMINUTE=0,1;BYSECOND=0,60: the set is 09:00, 09:01, 09:02, so the 3rd is 09:02 and the 3rd from the end 09:00', () => {
    expect(starts('20250101T090000Z', 'FREQ=DAILY;BYMINUTE=0,1;BYSECOND=0,60;BYSETPOS=3', utc(2025, 0, 5), utc(2025, 0, 7))).toEqual(['2025-01-05T09:02:00', '2025-01-06T09:02:00']);
    expect(starts('20250101T090000Z', 'FREQ=DAILY;BYMINUTE=0,1;BYSECOND=0,60;BYSETPOS=-3', utc(2025, 0, 5), utc(2025, 0, 7))).toEqual(['2025-01-05T09:00:00', '2025-01-06T09:00:00']);
  });

  it('over an hour’s turn: 09:59:60 is 10:00:00, so of 09:00, 09:01, 09:59, 10:00, 10:01, … the 5th is 10:01', () => {
    expect(starts('20250101T090000Z', 'FREQ=DAILY;BYHOUR=9,10;BYMINUTE=0,59;BYSECOND=0,60;BYSETPOS=5', utc(2025, 0, 5), utc(2025, 0, 7))).toEqual(['2025-01-05T10:01:00', '2025-01-06T10:01:00']);
  });

  it('over a day’s turn in a week: Monday 23:59:60 is Tuesday 00:00:00, so the 9th of the week is Tuesday 00:01', () => {
    // Monday 00:00, 00:01, 00:59, 01:00, 23:00, 23:01, 23:59, Tuesday 00:00 (twice), 00:01, …
    const rule = 'FREQ=WEEKLY;BYDAY=MO,TU;BYHOUR=0,23;BYMINUTE=0,59;BYSECOND=0,60;BYSETPOS=9';
    expect(starts('20250106T000000Z', rule, utc(2025, 0, 13), utc(2025, 0, 20))).toEqual(['2025-01-14T00:01:00']);
  });

  it('in an hourly rule: HOURLY;BYMINUTE=0,1;BYSECOND=0,60;BYSETPOS=3 is each hour’s :02', () => {
    expect(starts('20250101T090000Z', 'FREQ=HOURLY;BYMINUTE=0,1;BYSECOND=0,60;BYSETPOS=3', utc(2025, 0, 5), utc(2025, 0, 5, 3))).toEqual([
      '2025-01-05T00:02:00',
      '2025-01-05T01:02:00',
      '2025-01-05T02:02:00',
    ]);
  });
});

describe('periods without an instance count against the limits', () => {
  // Found in review of the period expansion: a rule whose periods are mostly empty walked every day from year 1 in one
  // uncounted call (about 0.85 s per series, the event loop held), and answered "no busy time" after all that.
  it('refuses a daily BYSETPOS rule that finds a day once in four years, from year 1, as over the series limit', () => {
    let error: unknown;
    try {
      busy(ics('DTSTART:00010101T090000Z', 'DURATION:PT1H', 'RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYSETPOS=1;COUNT=100000'), utc(2026, 11, 1), utc(2026, 11, 8));
    } catch (err) {
      error = err;
    }
    expect((error as CalendarSourceError).code).toBe('ERR_ICS_EXPANSION_LIMIT');
  });

  it('still takes the same rule from a recent start', () => {
    expect(days('FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYSETPOS=1;COUNT=10', '20200101T090000Z', utc(2028, 0, 1), utc(2029, 0, 1))).toEqual(['2028-02-29']);
  });
});

describe('valid rules that ical.js refused when asked to start an iterator (review regress21d, low)', () => {
  // Each compared with python-dateutil (which leaves out a DTSTART the rule does not match; RFC 5545 counts it).
  it.each([
    // 10 April is day 100 of 2025-2027 and 2029; in 2028, a leap year, day 100 is 9 April (ical.js: "Invalid BYYEARDAY rule").
    ['FREQ=YEARLY;BYMONTH=4;BYYEARDAY=100', ['2025-04-10', '2026-04-10', '2027-04-10', '2028-04-09', '2029-04-10']],
    // 15 May in ISO week 20: not in 2027, when it is a Saturday of week 19 (ical.js: "BYWEEKNO does not fit to BYMONTHDAY").
    ['FREQ=YEARLY;BYWEEKNO=20;BYMONTHDAY=15', ['2025-04-10', '2025-05-15', '2026-05-15', '2028-05-15', '2029-05-15']],
    // 1 January in week 1: when it is a Monday to Thursday (this case stood in ics.test.ts as "a rule ical.js refuses").
    ['FREQ=YEARLY;BYWEEKNO=1;BYMONTHDAY=1', ['2025-04-10', '2026-01-01', '2029-01-01']],
    ['FREQ=HOURLY;BYYEARDAY=100;BYHOUR=9', ['2025-04-10', '2026-04-10', '2027-04-10', '2028-04-09', '2029-04-10']],
    // The first Monday is never the 15th: DTSTART alone (RFC 5545 §3.8.5.3), not a refused calendar.
    ['FREQ=MONTHLY;BYDAY=1MO;BYMONTHDAY=15', ['2025-04-10']],
    ['FREQ=MONTHLY;BYDAY=-1FR;BYMONTHDAY=1,2,3', ['2025-04-10']],
  ])('%s from 10 April 2025 09:00Z', (rule, expected) => {
    expect(days(rule, '20250410T090000Z', utc(2025, 0, 1), utc(2030, 0, 1))).toEqual(expected);
  });
});

describe('the same time given twice is one instance, counted once against COUNT (review regress21d, low)', () => {
  it('MINUTELY;BYSECOND=0,60;COUNT=4: second 60 is the next minute’s :00, so four distinct minutes', () => {
    const text = ics('DTSTART:20250101T090000Z', 'DURATION:PT1S', 'RRULE:FREQ=MINUTELY;BYSECOND=0,60;COUNT=4');
    expect(busy(text, utc(2025, 0, 1), utc(2025, 0, 2)).map((b) => b.slice(0, 20))).toEqual(['2025-01-01T09:00:00Z', '2025-01-01T09:01:00Z', '2025-01-01T09:02:00Z', '2025-01-01T09:03:00Z']);
  });

  it('an all-day DTSTART with FREQ=HOURLY;COUNT=3: a day’s hours are that one day, so three days', () => {
    const text = ics('DTSTART;VALUE=DATE:20250101', 'RRULE:FREQ=HOURLY;COUNT=3');
    expect(busy(text, utc(2025, 0, 1), utc(2025, 1, 1))).toEqual(['2025-01-01T00:00:00Z/2025-01-04T00:00:00Z']);
  });
});
