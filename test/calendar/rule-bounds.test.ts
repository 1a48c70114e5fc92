// Rules that held the event loop inside one ical.js next() call, past every
// count of iterations (review regress21c): ical.js steps a DAILY or WEEKLY
// INTERVAL one day at a time and searches for the next day its BY-parts allow
// without limit, so FREQ=DAILY;INTERVAL=100000000 took 31 s for two
// iterations, and DAILY;INTERVAL=8000;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO 42 s
// before it failed. ics-periods.ts now expands every rule; here each such
// input gets its right answer within a small maxIterationsPerSeries (the
// expansion's own count of work: an instance, or a run of periods without one),
// and ordinary rules give what ical.js gives.
import ICAL from 'ical.js';
import { describe, expect, it } from 'vitest';
import { CalendarSourceError } from '../../src/calendar/errors.js';
import { expandInstances, parseCalendar } from '../../src/calendar/ics.js';

const utc = Date.UTC;
const HOUR = 3_600_000;

function ics(dtstart: string, rule: string): string {
  return ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', 'BEGIN:VEVENT', 'UID:r@test', 'DTSTAMP:20260101T000000Z', `DTSTART:${dtstart}`, 'DURATION:PT1M', `RRULE:${rule}`, 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
}

/** The instance starts ("YYYY-MM-DDTHH:MM:SSZ") in [from, to), expanded in UTC within `maxIterationsPerSeries`. */
function starts(dtstart: string, rule: string, from: number, to: number, maxIterationsPerSeries: number): string[] {
  const instances = expandInstances(parseCalendar(ics(dtstart, rule), 'test'), { start: from, end: to }, { timeZone: 'UTC', maxIterationsPerSeries });
  return instances.map((i) => new Date(i.start).toISOString().replace('.000', '')).sort();
}

const YEAR_2026 = [utc(2026, 0, 1), utc(2027, 0, 1)] as const;

describe('an INTERVAL whose period is longer than the window (review regress21c: 1.5 s to 31 s in one next() call)', () => {
  it.each([
    'FREQ=DAILY;INTERVAL=10000000',
    'FREQ=DAILY;INTERVAL=40000000',
    'FREQ=DAILY;INTERVAL=100000000',
    'FREQ=WEEKLY;INTERVAL=10000000',
    'FREQ=WEEKLY;INTERVAL=10000000;BYDAY=MO,TH',
    'FREQ=HOURLY;INTERVAL=1000000000',
    'FREQ=MINUTELY;INTERVAL=999999999999',
    'FREQ=MONTHLY;INTERVAL=10000000',
    'FREQ=YEARLY;INTERVAL=10000000',
    'FREQ=YEARLY;INTERVAL=10000000;BYMONTH=1;BYMONTHDAY=1',
  ])('%s has DTSTART as its only instance in reach, in a few iterations, whether DTSTART is in the window or a century before', (rule) => {
    expect(starts('20260101T090000Z', rule, ...YEAR_2026, 5)).toEqual(['2026-01-01T09:00:00Z']);
    expect(starts('20260101T090000Z', rule, utc(2027, 0, 1), utc(2028, 0, 1), 5)).toEqual([]);
    // Found in review: MONTHLY and YEARLY were refused as needing more than 50,000 repetitions.
    expect(starts('19000101T090000Z', rule, ...YEAR_2026, 5)).toEqual([]);
  }, 10_000);

  it('finds the one later instance a long period puts in the window, and the instance COUNT still allows', () => {
    expect(starts('20250101T090000Z', 'FREQ=DAILY;INTERVAL=400', ...YEAR_2026, 5)).toEqual(['2026-02-05T09:00:00Z']);
    expect(starts('20250101T090000Z', 'FREQ=DAILY;INTERVAL=400;COUNT=2', ...YEAR_2026, 5)).toEqual(['2026-02-05T09:00:00Z']);
    expect(starts('20250101T090000Z', 'FREQ=DAILY;INTERVAL=400;COUNT=1', ...YEAR_2026, 5)).toEqual([]);
    // 9000 hours after 1 January 2026 09:00 is 11 January 2027 09:00.
    expect(starts('20260101T090000Z', 'FREQ=HOURLY;INTERVAL=9000', utc(2026, 0, 1), utc(2027, 1, 1), 5)).toEqual(['2026-01-01T09:00:00Z', '2027-01-11T09:00:00Z']);
    // 10,000 weeks after Monday 1 January 1900 is Monday 27 August 2091; its Thursday too.
    expect(starts('19000101T090000Z', 'FREQ=WEEKLY;INTERVAL=10000;BYDAY=MO,TH', utc(2091, 7, 1), utc(2091, 8, 1), 5)).toEqual(['2091-08-27T09:00:00Z', '2091-08-30T09:00:00Z']);
    // 1,000 months after January 1900 is May 1983; the last Sunday of that month.
    expect(starts('19000128T090000Z', 'FREQ=MONTHLY;INTERVAL=1000;BYDAY=-1SU', utc(1983, 0, 1), utc(1984, 0, 1), 5)).toEqual(['1983-05-29T09:00:00Z']);
  });
});

describe('BY-parts that rarely match (review regress21c: 42 s in one next() call, then 502 ERR_ICS_RULE)', () => {
  it('DAILY;INTERVAL=8000;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO: DTSTART alone in 2026, nothing in the years after', () => {
    const rule = 'FREQ=DAILY;INTERVAL=8000;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO';
    expect(starts('20260101T090000Z', rule, ...YEAR_2026, 5)).toEqual(['2026-01-01T09:00:00Z']);
    // Its periods are 8,000 days apart: 2047-11-27 and 2069-09-22 are not 29 February.
    expect(starts('20260101T090000Z', rule, utc(2047, 0, 1), utc(2048, 0, 1), 5)).toEqual([]);
  }, 10_000);

  it('DAILY and HOURLY on a Monday 29 February: the days between are counted in runs, the days of 2044 found', () => {
    const days = 'BYMONTH=2;BYMONTHDAY=29;BYDAY=MO';
    // A day is a period of a daily rule: about 366 + 2 × 2 in the window, each counted.
    expect(starts('20260101T090000Z', `FREQ=DAILY;${days}`, utc(2044, 0, 1), utc(2045, 0, 1), 400)).toEqual(['2044-02-29T09:00:00Z']);
    // An hour is a period of an hourly rule: a day's worth of empty ones counts once, and the day has 24 instances.
    const hourly = starts('20260101T090000Z', `FREQ=HOURLY;${days}`, utc(2044, 0, 1), utc(2045, 0, 1), 450);
    expect([hourly.length, hourly[0], hourly[23]]).toEqual([24, '2044-02-29T00:00:00Z', '2044-02-29T23:00:00Z']);
    // With COUNT every day from DTSTART is walked: 2044 and 2072 are the next two, then the limit speaks for 2100+.
    expect(starts('20260101T090000Z', `FREQ=DAILY;${days};COUNT=3`, utc(2072, 0, 1), utc(2073, 0, 1), 20_000)).toEqual(['2072-02-29T09:00:00Z']);
    const error = (() => {
      try {
        starts('20260101T090000Z', `FREQ=DAILY;${days};COUNT=3`, utc(2072, 0, 1), utc(2073, 0, 1), 10_000);
      } catch (err) {
        return err;
      }
    })();
    expect(error).toBeInstanceOf(CalendarSourceError);
    expect((error as CalendarSourceError).code).toBe('ERR_ICS_EXPANSION_LIMIT');
  }, 10_000);

  it('an hourly, minutely or secondly limit that never matches ends at the window, in runs of empty periods', () => {
    // Every 24 hours from 09:00 never reaches 03:00; every 60 minutes from :00 never reaches :05.
    expect(starts('20260101T090000Z', 'FREQ=HOURLY;INTERVAL=24;BYHOUR=3', ...YEAR_2026, 500)).toEqual(['2026-01-01T09:00:00Z']);
    expect(starts('20260101T090000Z', 'FREQ=MINUTELY;INTERVAL=60;BYMINUTE=5', utc(2026, 0, 1), utc(2026, 0, 8), 500)).toEqual(['2026-01-01T09:00:00Z']);
    expect(starts('20260101T090000Z', 'FREQ=SECONDLY;INTERVAL=60;BYSECOND=5', utc(2026, 0, 1), utc(2026, 0, 2), 500)).toEqual(['2026-01-01T09:00:00Z']);
  }, 10_000);
});

/** ical.js's own instances of a rule in [from, to) (it gets these ordinary rules right), as UTC strings. */
function icalStarts(dtstart: string, rule: string, from: number, to: number): string[] {
  const iterator = ICAL.Recur.fromString(rule).iterator(ICAL.Time.fromDateTimeString(`${dtstart.slice(0, 4)}-${dtstart.slice(4, 6)}-${dtstart.slice(6, 8)}T${dtstart.slice(9, 11)}:${dtstart.slice(11, 13)}:${dtstart.slice(13, 15)}Z`));
  const out: string[] = [];
  for (let t = iterator.next(); t; t = iterator.next()) {
    const ms = t.toJSDate().getTime();
    if (ms >= to) break;
    if (ms >= from) out.push(new Date(ms).toISOString().replace('.000', ''));
  }
  return out.sort();
}

describe('ordinary daily, weekly and sub-daily rules, once iterated by ical.js, give the same instances', () => {
  it('where DTSTART does not match the rule, it counts as the first of COUNT (RFC 5545 §3.3.10), as in monthly and yearly rules', () => {
    // Sunday 4 January 2026, then weekdays: ical.js had counted three weekdays besides DTSTART.
    expect(starts('20260104T090000Z', 'FREQ=WEEKLY;COUNT=3;BYDAY=MO,TU,WE,TH,FR', ...YEAR_2026, 10)).toEqual(['2026-01-04T09:00:00Z', '2026-01-05T09:00:00Z', '2026-01-06T09:00:00Z']);
    expect(starts('20260104T090000Z', 'FREQ=MONTHLY;COUNT=3;BYDAY=1MO', ...YEAR_2026, 10)).toEqual(['2026-01-04T09:00:00Z', '2026-01-05T09:00:00Z', '2026-02-02T09:00:00Z']);
  });

  // DTSTART matches each rule (where it does not, RFC 5545 counts it as the first instance and ical.js skips it).
  const cases: Array<[dtstart: string, rule: string]> = [
    ['20260105T090000Z', 'FREQ=DAILY'],
    ['20260105T090000Z', 'FREQ=DAILY;INTERVAL=3'],
    ['20260105T090000Z', 'FREQ=DAILY;BYDAY=MO,WE,FR'],
    ['20260105T090000Z', 'FREQ=DAILY;BYHOUR=9,14;BYMINUTE=0,30'],
    ['20260105T090000Z', 'FREQ=DAILY;BYMONTH=1,2,7'],
    ['20260115T090000Z', 'FREQ=DAILY;BYMONTHDAY=1,15,31'],
    ['20260105T090000Z', 'FREQ=DAILY;COUNT=10'],
    ['20260105T090000Z', 'FREQ=DAILY;INTERVAL=2;UNTIL=20260301T000000Z'],
    ['20260105T090000Z', 'FREQ=WEEKLY'],
    ['20260105T090000Z', 'FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE'],
    ['20260106T090000Z', 'FREQ=WEEKLY;BYDAY=TU,TH;COUNT=9'],
    ['20260104T090000Z', 'FREQ=WEEKLY;INTERVAL=3;BYDAY=SU,SA;WKST=SU'],
    ['20260306T090000Z', 'FREQ=WEEKLY;BYMONTH=3,9;BYDAY=FR'],
    ['20260105T080000Z', 'FREQ=WEEKLY;BYHOUR=8,17;BYDAY=MO'],
    ['20260105T090000Z', 'FREQ=HOURLY;INTERVAL=5'],
    ['20260105T090000Z', 'FREQ=HOURLY;BYHOUR=9,10,11'],
    ['20260105T090000Z', 'FREQ=HOURLY;INTERVAL=3;BYHOUR=9,12,15'],
    ['20260105T090000Z', 'FREQ=HOURLY;BYMINUTE=0,20,40;COUNT=100'],
    ['20260103T090000Z', 'FREQ=HOURLY;INTERVAL=7;BYDAY=SA,SU'],
    ['20260201T090000Z', 'FREQ=HOURLY;BYMONTHDAY=1,2;UNTIL=20260601T000000Z'],
    ['20260105T090000Z', 'FREQ=MINUTELY;INTERVAL=97'],
    ['20260105T090000Z', 'FREQ=MINUTELY;BYMINUTE=0,45'],
    ['20260105T090000Z', 'FREQ=MINUTELY;INTERVAL=30;BYSECOND=0,30'],
    ['20260105T090000Z', 'FREQ=SECONDLY;INTERVAL=3607'],
    ['20260105T090030Z', 'FREQ=SECONDLY;BYSECOND=30'],
  ];
  it.each(cases)('DTSTART %s, %s', (dtstart, rule) => {
    const sub = /HOURLY|MINUTELY|SECONDLY/.test(rule);
    // From DTSTART's day, and from later (where a rule without COUNT starts at the window).
    const first = utc(+dtstart.slice(0, 4), +dtstart.slice(4, 6) - 1, +dtstart.slice(6, 8));
    for (const from of [first, utc(2026, 5, 10, 7)]) {
      const to = from + (sub ? 3 : 200) * 24 * HOUR;
      // Those that start in the window (not those of a minute that start before it and reach into it).
      const ours = starts(dtstart, rule, from, to, 50_000).filter((s) => Date.parse(s) >= from);
      expect(ours, rule).toEqual(icalStarts(dtstart, rule, from, to));
      if (from === first) expect(ours.length, rule).toBeGreaterThan(2);
    }
  }, 20_000);
});
