// What a rule's expansion costs, counted rather than timed (review regress21d).
// A 461-byte RRULE, FREQ=DAILY;BYSETPOS=1 with every BYHOUR, BYMINUTE and
// BYSECOND, made ics-periods.ts list the day's 86,400 times again for every
// period, with a day in it or not (about 25 ms a period, 100 periods between
// two chances for the event loop): a 30-day read took 716 ms, 366 days 3.7 s,
// and with COUNT=100000 from a year back a /freebusy read 12.5 s. A yearly
// period looks at up to 371 days, which counted as one iteration. And
// parseCalendar asked ical.js to start an iterator for each rule, to check it:
// for a yearly rule that never matches, ical.js's set-up walked every year to
// 20000 (20 such 3 KB events: 2.7 s at parse, synchronous).
import ICAL from 'ical.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { expandInstances, expandInstancesCooperatively, parseCalendar } from '../../src/calendar/ics.js';
import { EMPTY_PERIOD, periodRuleIterator } from '../../src/calendar/ics-periods.js';

const utc = Date.UTC;
const DAY = 86_400_000;
const EVERY = (n: number) => Array.from({ length: n }, (_, i) => i).join(',');
const ALL_TIMES = `BYHOUR=${EVERY(24)};BYMINUTE=${EVERY(60)};BYSECOND=${EVERY(60)}`;

function ics(dtstart: string, ...rules: string[]): string {
  return ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', 'BEGIN:VEVENT', 'UID:w@test', 'DTSTAMP:20260101T000000Z', `DTSTART:${dtstart}`, 'DURATION:PT1S', ...rules.map((r) => `RRULE:${r}`), 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
}

function starts(text: string, from: number, to: number): string[] {
  return expandInstances(parseCalendar(text, 'test'), { start: from, end: to }, { timeZone: 'UTC' })
    .map((i) => new Date(i.start).toISOString().replace('.000', ''))
    .sort();
}

/** The days from `from` (UTC midnight) on, as instance starts at 00:00:00Z. */
function midnights(from: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => new Date(from + i * DAY).toISOString().replace('.000', ''));
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the times of a day are not listed for every period (review regress21d, high)', () => {
  const rule = `FREQ=DAILY;BYSETPOS=1;${ALL_TIMES}`;

  it('the 461-byte BYSETPOS rule gives each day’s midnight, and lists no day’s times to find it', () => {
    // Counted by its cause: the day's times were listed with flatMap over BYHOUR (and BYMINUTE), per period.
    const flatMap = vi.spyOn(Array.prototype, 'flatMap');
    expect(starts(ics('20261130T000000Z', rule), utc(2026, 11, 1), utc(2026, 11, 31))).toEqual(midnights(utc(2026, 11, 1), 30));
    expect(flatMap.mock.calls.length).toBeLessThan(30);
  });

  it('its periods look at one day each, and a period without a day looks at no time', () => {
    const dtstart = ICAL.Time.fromDateTimeString('2026-11-30T00:00:00Z');
    const iterator = periodRuleIterator(ICAL.Recur.fromString(`FREQ=DAILY;BYMONTH=2;BYSETPOS=1;${ALL_TIMES}`), dtstart, utc(2026, 11, 1), utc(2027, 11, 1));
    const flatMap = vi.spyOn(Array.prototype, 'flatMap');
    const found: string[] = [];
    for (let t = iterator.next(); t; t = iterator.next()) if (t !== EMPTY_PERIOD) found.push(t.toString());
    // DTSTART, then the 28 days of February 2027 at midnight; the rest of the year's days are empty periods.
    expect([found.length, found[1], found[28]]).toEqual([29, '2027-02-01T00:00:00Z', '2027-02-28T00:00:00Z']);
    expect(iterator.daysScanned).toBeLessThanOrEqual(370);
    expect(flatMap).not.toHaveBeenCalled();
  });
});

describe('a sub-daily BYSETPOS rule over a long range stays bounded (counted)', () => {
  // BYSETPOS in hourly, minutely and secondly rules was refused until now. An hour of every BYMINUTE and BYSECOND
  // (0 to 60, so that second 60 repeats the next minute's :00) holds 3,660 instances: BYSETPOS finds its first and last
  // from the parts, without listing them, and each period given or passed over is an iteration, as in every rule.
  const rule = `FREQ=HOURLY;BYMINUTE=${EVERY(60)};BYSECOND=${EVERY(61)};BYSETPOS=1,-1`;

  it('a year of hours looks at a few dozen places an instance, not each hour’s 3,660, and gives each hour’s :00:00', () => {
    const dtstart = ICAL.Time.fromDateTimeString('2025-12-01T00:00:00Z');
    const iterator = periodRuleIterator(ICAL.Recur.fromString(rule), dtstart, utc(2026, 0, 1), utc(2027, 0, 1));
    const found: string[] = [];
    // Stopped past two instances an hour, so that an iterator giving every instance of each hour ends too.
    for (let t = iterator.next(); t && found.length < 20_000; t = iterator.next()) if (t !== EMPTY_PERIOD) found.push(t.toString());
    // DTSTART, then each hour's first instance; its last, hh:59:60, is the next hour's first (one instance).
    expect([found[1], found[2], found.at(-2), found.at(-1)]).toEqual(['2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z', '2027-01-01T00:00:00Z', '2027-01-01T01:00:00Z']);
    expect(found.length).toBe(1 + 8_760 + 2);
    // A binary search over an hour's instances for each position (about 12 looks), where listing them looks at 3,660.
    expect(iterator.timesLookedAt).toBeLessThan(32 * found.length);
  });

  it('a cooperative expansion of that year lets the event loop run every 100 iterations, and stays under the limits', async () => {
    const calendar = parseCalendar(ics('20251201T000000Z', rule), 'test');
    const immediate = vi.spyOn(globalThis, 'setImmediate');
    const instances = await expandInstancesCooperatively(calendar, { start: utc(2026, 0, 1), end: utc(2027, 0, 1) }, { timeZone: 'UTC' });
    expect(instances.length).toBe(8_760);
    expect(immediate.mock.calls.length).toBeGreaterThanOrEqual(8_760 / 100);
  });

  it('with COUNT from a year before the window, a minutely one is refused by the iteration limit, not walked to the window', () => {
    // One instance a minute: 50,000 iterations are about 35 days, far short of the window (about 700 days on).
    let error: unknown;
    try {
      starts(ics('20250101T000000Z', 'FREQ=MINUTELY;BYSECOND=7,60;BYSETPOS=-1;COUNT=1000000'), utc(2026, 11, 1), utc(2026, 11, 8));
    } catch (err) {
      error = err;
    }
    expect((error as { code?: string }).code).toBe('ERR_ICS_EXPANSION_LIMIT');
  });
});

describe('the days a yearly period looks at count towards the steps of a cooperative expansion', () => {
  it('a yearly rule that never matches, from year 1 with COUNT, lets the event loop run at least every 5,000 days looked at', async () => {
    const text = ics('00010101T100000Z', 'FREQ=YEARLY;BYYEARDAY=200;BYDAY=1MO;COUNT=10000');
    const calendar = parseCalendar(text, 'test');
    const immediate = vi.spyOn(globalThis, 'setImmediate');
    const instances = await expandInstancesCooperatively(calendar, { start: utc(2026, 11, 1), end: utc(2026, 11, 31) }, { timeZone: 'UTC' });
    expect(instances).toEqual([]);
    // Years 1 to 2027 are about 740,000 days, each looked at (found in review: one step per 100 years, 36,600 days).
    expect(immediate.mock.calls.length).toBeGreaterThanOrEqual(740_000 / 5_000);
  }, 20_000);
});

describe('parsing asks ical.js to start no iterator (review regress21d, medium)', () => {
  it('20 yearly rules that never match (3 KB) are parsed without an ical.js iterator, and give no instance in 2026', () => {
    const events = Array.from({ length: 20 }, (_, i) => ['BEGIN:VEVENT', `UID:n${i}@test`, 'DTSTAMP:20260101T000000Z', 'DTSTART:00010101T100000Z', 'DURATION:PT1H', 'RRULE:FREQ=YEARLY;BYYEARDAY=200;BYDAY=1MO', 'END:VEVENT']);
    const text = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', ...events.flat(), 'END:VCALENDAR', ''].join('\r\n');
    // Counted by its cause: ical.js's iterator set-up walked every year to 20000 for each of them.
    const iterator = vi.spyOn(ICAL.Recur.prototype, 'iterator');
    const calendar = parseCalendar(text, 'test');
    expect(iterator).not.toHaveBeenCalled();
    expect(calendar.series.map((s) => s.rules.length)).toEqual(Array(20).fill(1));
    expect(expandInstances(calendar, { start: utc(2026, 0, 1), end: utc(2027, 0, 1) }, { timeZone: 'UTC', maxIterationsPerSeries: 10 })).toEqual([]);
    expect(iterator).not.toHaveBeenCalled();
  });
});
