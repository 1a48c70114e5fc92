// The real-world samples (fixtures/ics-samples, provenance in its README):
// all parse and expand, except the one that is malformed on purpose, and for
// most of them the busy time is asserted by hand.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CalendarSourceError } from '../../src/calendar/errors.js';
import { toUtcIso } from '../../src/calendar/format.js';
import { expandBusy, expandInstances, parseCalendar, type ParsedCalendar } from '../../src/calendar/ics.js';

const dir = new URL('../../fixtures/ics-samples/', import.meta.url);
const load = (file: string): ParsedCalendar => parseCalendar(readFileSync(new URL(file, dir), 'utf8'), file);
const utc = Date.UTC;
const iso = (intervals: Array<{ start: number; end: number }>) => intervals.map((i) => `${toUtcIso(i.start)}/${toUtcIso(i.end)}`);
const busy = (file: string, from: number, to: number, timeZone = 'Europe/Berlin', tentative: 'busy' | 'free' = 'busy') =>
  iso(expandBusy(load(file), { start: from, end: to }, { timeZone, tentative }));

describe('every sample', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.ics'));

  it('is here, with its provenance', () => {
    const readme = readFileSync(new URL('README.md', dir), 'utf8');
    expect(files.length).toBe(15);
    for (const file of files) expect([file, readme.includes(`\`${file}\``)]).toEqual([file, true]);
  });

  it.each(files.filter((f) => f !== 'nodeical-google-bad-rrule.ics'))('%s parses and expands over 2000–2030', (file) => {
    const calendar = load(file);
    expect(calendar.series.length + calendar.freeBusy.length).toBeGreaterThan(0);
    for (const year of [2002, 2009, 2012, 2014, 2017, 2020, 2022, 2026]) {
      expect(() => expandBusy(calendar, { start: utc(year, 0, 1), end: utc(year + 1, 0, 1) }, { timeZone: 'Europe/Berlin' })).not.toThrow();
    }
  });

  it('nodeical-google-bad-rrule.ics, malformed on purpose, is refused naming the calendar and the line', () => {
    let error: unknown;
    try {
      load('nodeical-google-bad-rrule.ics');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(CalendarSourceError);
    expect((error as CalendarSourceError).code).toBe('ERR_ICS_RULE');
    expect((error as CalendarSourceError).line).toBe(50);
    expect((error as CalendarSourceError).message).toBe('Calendar "nodeical-google-bad-rrule.ics", line 50: An RRULE part is not NAME=VALUE.');
    expect((error as CalendarSourceError).ownerMessage).toBe(
      'Calendar "nodeical-google-bad-rrule.ics", line 50: An RRULE part is not NAME=VALUE: "RRULE:AnythingRandom".',
    );
  });
});

describe('busy time, asserted by hand', () => {
  it('own-cancelled-instance.ics: the intervals its README lists (DST change, cancelled and moved instances)', () => {
    expect(busy('own-cancelled-instance.ics', utc(2026, 1, 1), utc(2026, 5, 1))).toEqual([
      '2026-03-02T15:00:00Z/2026-03-02T16:00:00Z',
      '2026-03-17T18:00:00Z/2026-03-17T19:00:00Z',
      '2026-03-23T14:00:00Z/2026-03-23T15:00:00Z',
    ]);
  });

  it('nodeical-google-recurrence-order.ics: the override before its master moves 11 Feb to 10:30 (America/Denver, no VTIMEZONE)', () => {
    expect(busy('nodeical-google-recurrence-order.ics', utc(2026, 1, 1), utc(2026, 2, 1))).toEqual([
      '2026-02-10T17:00:00Z/2026-02-10T17:30:00Z',
      '2026-02-11T17:30:00Z/2026-02-11T18:00:00Z',
      '2026-02-12T17:00:00Z/2026-02-12T17:30:00Z',
    ]);
  });

  it('icaljs-zimbra-recur-instances.ics: monthly rule, RDATEs, EXDATEs and two overrides (TZID and UTC RECURRENCE-ID)', () => {
    expect(busy('icaljs-zimbra-recur-instances.ics', utc(2012, 9, 1), utc(2013, 0, 1))).toEqual([
      '2012-10-02T22:00:00Z/2012-10-02T22:30:00Z', // 2 Oct moved to 15:00 PDT
      '2012-11-06T18:00:00Z/2012-11-06T18:30:00Z', // first Tuesday, 10:00 PST
      '2012-11-07T04:00:00Z/2012-11-07T04:30:00Z', // the 5 Nov RDATE, moved to 6 Nov 20:00 PST
      '2012-11-10T18:00:00Z/2012-11-10T18:30:00Z',
      '2012-11-30T18:00:00Z/2012-11-30T18:30:00Z', // 4 Dec is an EXDATE
    ]);
    expect(busy('icaljs-zimbra-recur-instances.ics', utc(2023, 10, 20), utc(2023, 10, 30))).toEqual([
      '2023-11-23T09:00:00Z/2023-11-23T09:30:00Z',
      '2023-11-25T09:00:00Z/2023-11-25T12:30:00Z', // a PERIOD RDATE keeps its own length
    ]);
  });

  it('nodeical-exchange-whole-day-moved-recurrence.ics: transparent, and the moved all-day instance replaces its date-time RECURRENCE-ID', () => {
    expect(busy('nodeical-exchange-whole-day-moved-recurrence.ics', utc(2026, 1, 1), utc(2026, 8, 1))).toEqual([]);
    const calendar = load('nodeical-exchange-whole-day-moved-recurrence.ics');
    const days = expandInstances(calendar, { start: utc(2026, 1, 18), end: utc(2026, 2, 2) }, { timeZone: 'Europe/Berlin' }).map((i) => toUtcIso(i.start));
    expect(days.sort()).toEqual(['2026-02-18T23:00:00Z', '2026-02-23T23:00:00Z', '2026-02-26T23:00:00Z']); // 19, 24 and 27 Feb
    const last = expandInstances(calendar, { start: utc(2026, 7, 10), end: utc(2026, 7, 30) }, { timeZone: 'Europe/Berlin' }).map((i) => toUtcIso(i.start));
    expect(last.sort()).toEqual(['2026-08-10T22:00:00Z', '2026-08-12T22:00:00Z', '2026-08-17T22:00:00Z']); // UNTIL is 18 Aug 00:00 in Berlin
  });

  it('nodeical-exchange2010-ms-timezones.ics: Windows-named VTIMEZONEs, transparent series free, the quoted DTSTART repaired', () => {
    expect(load('nodeical-exchange2010-ms-timezones.ics').warnings).toEqual(['line 152: moved a value out of a quoted TZID']);
    expect(busy('nodeical-exchange2010-ms-timezones.ics', utc(2020, 8, 1), utc(2020, 9, 1))).toEqual([
      '2020-09-10T07:00:00Z/2020-09-10T07:30:00Z', // 09:00 W. Europe (CEST)
      '2020-09-15T15:30:00Z/2020-09-15T16:30:00Z', // 08:30 Pacific (PDT)
    ]);
  });

  it('nodeical-zimbra-vfreebusy.ics: VFREEBUSY periods are busy', () => {
    const periods = busy('nodeical-zimbra-vfreebusy.ics', utc(2014, 3, 15), utc(2014, 6, 18));
    expect(periods).toHaveLength(29);
    expect(periods.slice(0, 2)).toEqual(['2014-04-16T15:15:00Z/2014-04-16T19:00:00Z', '2014-04-16T19:55:00Z/2014-04-16T23:15:00Z']);
    expect(periods[28]).toBe('2014-05-05T21:00:00Z/2014-05-05T21:30:00Z');
  });

  it('nodeical-macos-calendar-status.ics: tentative busy unless asked otherwise, cancelled free (America/Vancouver, no VTIMEZONE)', () => {
    const all = ['2022-07-04T23:00:00Z/2022-07-04T23:50:00Z', '2022-07-05T16:00:00Z/2022-07-05T17:00:00Z', '2022-07-07T16:00:00Z/2022-07-07T17:00:00Z'];
    expect(busy('nodeical-macos-calendar-status.ics', utc(2022, 6, 1), utc(2022, 6, 10))).toEqual(all);
    expect(busy('nodeical-macos-calendar-status.ics', utc(2022, 6, 1), utc(2022, 6, 10), 'Europe/Berlin', 'free')).toEqual(all.slice(1));
  });

  it('nodeical-mixed-timezone-handling.ics: floating, UTC, IANA TZID and all-day times, floating and dates read in the owner’s zone', () => {
    const calendar = load('nodeical-mixed-timezone-handling.ics');
    const instances = expandInstances(calendar, { start: utc(2002, 9, 20), end: utc(2002, 10, 5) }, { timeZone: 'America/Los_Angeles' });
    expect(iso(instances).sort()).toEqual([
      '2002-10-28T01:20:30Z/2002-10-29T01:20:30Z', // UTC
      '2002-10-28T06:20:30Z/2002-10-29T06:20:30Z', // America/New_York, EST
      '2002-10-28T08:00:00Z/2002-10-29T08:00:00Z', // all-day, explicit VALUE=DATE
      '2002-10-28T08:00:00Z/2002-10-29T08:00:00Z', // all-day, implicit (repaired)
      '2002-10-28T09:20:30Z/2002-10-29T09:20:30Z', // floating, read in PST
    ]);
  });

  it('nodeical-google-biweekly-exdate-until.ics: biweekly with EXDATE list and UTC UNTIL (US/Central, no VTIMEZONE)', () => {
    expect(busy('nodeical-google-biweekly-exdate-until.ics', utc(2017, 6, 1), utc(2017, 7, 14))).toEqual([
      '2017-07-03T14:00:00Z/2017-07-04T00:00:00Z', // 6, 17 and 20 July and 3 Aug are EXDATEs
      '2017-07-31T14:00:00Z/2017-08-01T00:00:00Z',
    ]);
    // The second series' floating EXDATEs (06:00) are read in the owner's zone: in Los Angeles they are its 14:00Z instances.
    const december = (zone: string) => busy('nodeical-google-biweekly-exdate-until.ics', utc(2017, 11, 17), utc(2017, 11, 21), zone);
    expect(december('UTC')).toEqual(['2017-12-18T14:00:00Z/2017-12-19T00:00:00Z', '2017-12-19T14:00:00Z/2017-12-20T00:00:00Z']);
    expect(december('America/Los_Angeles')).toEqual([]);
  });

  it('ical4j-outlook2003-standup.ics: an Outlook VTIMEZONE for Sydney, southern-hemisphere DST', () => {
    expect(busy('ical4j-outlook2003-standup.ics', utc(2026, 0, 4, 12), utc(2026, 0, 5, 12))).toEqual(['2026-01-04T22:30:00Z/2026-01-04T22:45:00Z']); // AEDT
    expect(busy('ical4j-outlook2003-standup.ics', utc(2026, 6, 5, 12), utc(2026, 6, 6, 12))).toEqual(['2026-07-05T23:30:00Z/2026-07-05T23:45:00Z']); // AEST
  });

  it('calendarserver-apple-ical2-allday-duration-until.ics: all-day with DURATION, a date UNTIL before the third instance', () => {
    expect(busy('calendarserver-apple-ical2-allday-duration-until.ics', utc(2001, 0, 1), utc(2006, 0, 1), 'Europe/London')).toEqual([
      '2002-05-05T23:00:00Z/2002-05-06T23:00:00Z',
      '2003-05-04T23:00:00Z/2003-05-05T23:00:00Z',
    ]);
  });

  it('icaljs-google-duration-instead-of-dtend.ics: DURATION:P1D from 06:00 Los Angeles', () => {
    expect(busy('icaljs-google-duration-instead-of-dtend.ics', utc(2012, 5, 1), utc(2012, 7, 1))).toEqual(['2012-06-30T13:00:00Z/2012-07-01T13:00:00Z']);
  });

  it('transparent all-day series are free: icaljs-google-day-long-recur-weekdays.ics, nodeical-contactoffice-exdate-date-only.ics', () => {
    expect(busy('icaljs-google-day-long-recur-weekdays.ics', utc(2026, 0, 1), utc(2026, 1, 1))).toEqual([]);
    expect(busy('nodeical-contactoffice-exdate-date-only.ics', utc(2026, 0, 1), utc(2027, 0, 1))).toEqual([]);
    const office = load('nodeical-contactoffice-exdate-date-only.ics');
    const inJanuary = (year: number) => expandInstances(office, { start: utc(year, 0, 1), end: utc(year, 1, 1) }, { timeZone: 'Europe/Brussels' }).length;
    expect([inJanuary(2039), inJanuary(2040)]).toEqual([1, 0]); // EXDATE:20400116, a date without VALUE=DATE
  });
});
