// Time zones a calendar defines (VTIMEZONE): their observance rules checked and
// bounded before ical.js expands them (ics-zone-rules.ts), and looked up by
// TZID in one step however many a calendar holds (ics-zones.ts). Found in
// review s23feeds: a STANDARD block with RRULE:FREQ=MINUTELY held the event
// loop 21 s (1 GB), FREQ=SECONDLY ran the process out of memory; 20,000 zones
// and 20,000 events in a TZID none of them defines took 179 s to parse. The
// rules here are cut to expand in well under a second on the code before the
// fix (DTSTART late in 2031, an INTERVAL of a million days), so that the
// fail-before run stays small; the assertions count, never time.
import ICAL from 'ical.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sourceError } from './support/source-error.js';
import { parseCalendar, expandBusy } from '../../src/calendar/ics.js';
import { instantOf } from '../../src/calendar/ics-time.js';
import { MAX_CALENDAR_ZONE_WORK, MAX_ZONE_WORK, observanceCost, ZONE_LAST_YEAR } from '../../src/calendar/ics-zone-rules.js';

/** A calendar of one zone "Evil" (observances as given) and one hour-long event at `start` in it. */
function zoneFeed(observances: string[], start = '20261207T100000', extra: string[] = []): string {
  return [
    'BEGIN:VCALENDAR',
    'VERSION:2.0',
    'PRODID:x',
    'BEGIN:VTIMEZONE',
    'TZID:Evil',
    ...observances,
    'END:VTIMEZONE',
    'BEGIN:VEVENT',
    'UID:a',
    'DTSTAMP:20261201T000000Z',
    `DTSTART;TZID=Evil:${start}`,
    'DURATION:PT1H',
    ...extra,
    'END:VEVENT',
    'END:VCALENDAR',
    '',
  ].join('\r\n');
}

/** One STANDARD block (line 6 of zoneFeed's calendar when first), its RRULE on line 8. */
function standard(dtstart: string, rule: string, from = '+0100', to = '+0100'): string[] {
  return ['BEGIN:STANDARD', `DTSTART:${dtstart}`, `RRULE:${rule}`, `TZOFFSETFROM:${from}`, `TZOFFSETTO:${to}`, 'END:STANDARD'];
}

/** Central European Time as Outlook writes it: both rules from 1601. */
const OUTLOOK_CET = [
  ...standard('16010101T030000', 'FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10', '+0200', '+0100'),
  ...standard('16010101T020000', 'FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3', '+0100', '+0200').map((l) => l.replace('STANDARD', 'DAYLIGHT')),
];


/** How many zone changes ical.js has worked out for the zone of the calendar's first event. */
function changesOf(text: string): number {
  const calendar = parseCalendar(text, 'c');
  const start = calendar.series[0]!.master.start;
  instantOf(start, 'UTC');
  return (start.time.zone as unknown as { changes: unknown[] }).changes.length;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('a time zone observance whose rule is not a yearly one of the forms zones are written with', () => {
  it.each([
    ['FREQ=MINUTELY', '20311201T000000', /FREQ=MINUTELY is not read/],
    ['FREQ=SECONDLY', '20311231T000000', /FREQ=SECONDLY is not read/],
    ['FREQ=DAILY;INTERVAL=1000000', '20250101T000000', /FREQ=DAILY is not read/],
    ['FREQ=HOURLY', '20300101T000000', /FREQ=HOURLY is not read/],
    ['FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;BYHOUR=1,2', '20250101T000000', /BYHOUR is not read in a time zone's rule with more than one value/],
    ['FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;BYMINUTE=0;BYSECOND=0,30', '20250101T000000', /BYSECOND is not read in a time zone's rule with more than one value/],
    ['FREQ=YEARLY;BYWEEKNO=10;BYDAY=SU', '20250101T000000', /BYWEEKNO is not read/],
    ['FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29', '20250101T000000', /INTERVAL=4 is not read/],
    ['FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=15;BYDAY=1MO', '20250101T000000', /numbered BYDAY together with BYMONTHDAY/],
    ['FREQ=YEARLY;BYMONTH=3;BYDAY=6SU', '20250101T000000', /numbered past 5/],
    ['FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30', '20250101T000000', /matches no date/],
    ['FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;UNTIL=20200101T000000Z', '20250101T000000', /UNTIL is before/],
  ])('%s is refused with ERR_ICS_RULE naming the rule\'s line, not the event\'s', (rule, dtstart, reason) => {
    const err = sourceError(() => parseCalendar(zoneFeed(standard(dtstart, rule)), 'c'));
    expect([err.code, err.line]).toEqual(['ERR_ICS_RULE', 8]);
    expect(err.message).toMatch(reason);
  });

  it('is refused in a component of any name directly inside the VTIMEZONE, which ical.js expands too', () => {
    const observance = standard('20311201T000000', 'FREQ=MINUTELY').map((l) => l.replace('STANDARD', 'X-OTHER'));
    const err = sourceError(() => parseCalendar(zoneFeed(observance), 'c'));
    expect([err.code, err.line]).toEqual(['ERR_ICS_RULE', 8]);
  });
});

describe('what a calendar\'s time zones may cost ical.js', () => {
  it('refuses a zone whose yearly rule gives a change every day (ERR_ICS_TOO_LARGE, the VTIMEZONE\'s line)', () => {
    const err = sourceError(() => parseCalendar(zoneFeed(standard('20250101T000000', 'FREQ=YEARLY;BYDAY=MO,TU,WE,TH,FR,SA,SU')), 'c'));
    expect([err.code, err.line]).toEqual(['ERR_ICS_TOO_LARGE', 4]);
    expect(err.message).toContain(`at most ${MAX_ZONE_WORK}`);
  });

  it('refuses zones each under the limit that together cost more than a calendar may', () => {
    // Each zone: one yearly rule with up to 5 Sundays in January from 2100, (ZONE_LAST_YEAR + 5 - 2100 + 1) × 5 steps.
    const work = (ZONE_LAST_YEAR + 5 - 2100 + 1) * 5;
    expect(work).toBeLessThanOrEqual(MAX_ZONE_WORK);
    const zone = (i: number) => ['BEGIN:VTIMEZONE', `TZID:z${i}`, ...standard('21000101T000000', 'FREQ=YEARLY;BYMONTH=1;BYDAY=SU'), 'END:VTIMEZONE'];
    const count = Math.ceil(MAX_CALENDAR_ZONE_WORK / work) + 1;
    const text = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:x', ...Array.from({ length: count }, (_, i) => zone(i)).flat(), 'END:VCALENDAR', ''].join('\r\n');
    const err = sourceError(() => parseCalendar(text, 'c'));
    expect(err.code).toBe('ERR_ICS_TOO_LARGE');
    expect(err.message).toContain(`at most ${MAX_CALENDAR_ZONE_WORK}`);
  });

  it('expands a zone no further than ZONE_LAST_YEAR + 5, however late the time converted, and converts it right', () => {
    // Before: an event in 9999 made ical.js work out every change from 1601 to 10004 (16,808), 2 s at a time.
    const text = zoneFeed(OUTLOOK_CET, '99991207T100000');
    expect(changesOf(text)).toBeLessThanOrEqual(2 * (ZONE_LAST_YEAR + 5 - 1601 + 1));
    expect(new Date(instantOf(parseCalendar(text, 'c').series[0]!.master.start, 'UTC')).toISOString()).toBe('9999-12-07T09:00:00.000Z');
    const summer = zoneFeed(OUTLOOK_CET, '99990607T100000');
    expect(new Date(instantOf(parseCalendar(summer, 'c').series[0]!.master.start, 'UTC')).toISOString()).toBe('9999-06-07T08:00:00.000Z');
  });

  it.each([
    ['16010101T030000', 'FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10', 804], // Outlook
    ['19700308T020000', 'FREQ=YEARLY;BYMONTH=3;BYDAY=2SU', 435], // Google, Apple
    ['19700308T020000', 'FREQ=YEARLY;BYMONTH=3;BYDAY=SU;BYMONTHDAY=8,9,10,11,12,13,14', 435], // "Sun>=8", as some zones write it
    ['19700308T020000', 'FREQ=YEARLY;BYMONTH=2;BYDAY=MO;BYMONTHDAY=29', 835], // rarely matches: a 400-year search counted
    ['19700308T020000', 'FREQ=YEARLY;BYDAY=SU;BYMONTHDAY=1,8,15,22,29', (ZONE_LAST_YEAR + 5 - 1970 + 1) * 12 * 5 + 400],
  ])('counts an observance from %s with %s as %i steps', (dtstart, rule, work) => {
    expect(observanceCost({ dtstart, rules: [{ value: rule, line: 1 }], rdates: 0 })).toEqual({ work });
  });

  it('reads zones as their writers write them, as before', () => {
    const tzurl = [
      ...standard('19961027T030000', 'FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU', '+0200', '+0100'),
      ...standard('19810329T020000', 'FREQ=YEARLY;BYMONTH=3;BYDAY=SU;BYMONTHDAY=25,26,27,28,29,30,31', '+0100', '+0200').map((l) => l.replace('STANDARD', 'DAYLIGHT')),
    ];
    const window = { start: Date.UTC(2026, 2, 1), end: Date.UTC(2026, 11, 31) };
    for (const observances of [OUTLOOK_CET, tzurl]) {
      const text = zoneFeed(observances, '20260301T100000', ['RRULE:FREQ=MONTHLY;COUNT=10']);
      const busy = expandBusy(parseCalendar(text, 'c'), window, { timeZone: 'UTC' }).map((b) => new Date(b.start).toISOString().slice(0, 16));
      expect(busy.slice(0, 4)).toEqual(['2026-03-01T09:00', '2026-04-01T08:00', '2026-05-01T08:00', '2026-06-01T08:00']);
      expect(busy.slice(7, 10)).toEqual(['2026-10-01T08:00', '2026-11-01T09:00', '2026-12-01T09:00']);
    }
  });
});

describe('a time zone as Lotus Notes writes it (found in review, s23new2: refused whole)', () => {
  it('reads one BYHOUR and BYMINUTE in its rules, the change at that time', () => {
    // The CalConnect sample of a Lotus Notes stream: US Eastern, each rule restating its time of day.
    const eastern = [
      ...standard('19501029T020000', 'FREQ=YEARLY;BYMINUTE=0;BYHOUR=2;BYDAY=-1SU;BYMONTH=10', '-0400', '-0500'),
      ...standard('19500402T020000', 'FREQ=YEARLY;BYMINUTE=0;BYHOUR=2;BYDAY=1SU;BYMONTH=4', '-0500', '-0400').map((l) => l.replace('STANDARD', 'DAYLIGHT')),
    ];
    const window = { start: Date.UTC(2026, 0, 1), end: Date.UTC(2026, 11, 31) };
    const busy = expandBusy(parseCalendar(zoneFeed(eastern, '20260108T100000', ['RRULE:FREQ=MONTHLY;COUNT=12']), 'c'), window, { timeZone: 'UTC' }).map((b) => new Date(b.start).toISOString().slice(0, 16));
    // Lotus's rule: from the first Sunday of April to the last of October, -0400.
    expect([busy[0], busy[3], busy[6], busy[9], busy[10]]).toEqual(['2026-01-08T15:00', '2026-04-08T14:00', '2026-07-08T14:00', '2026-10-08T14:00', '2026-11-08T15:00']);
  });
});

describe('a calendar of many time zones', () => {
  const zones = 2_000;
  /** `zones` fixed-offset VTIMEZONEs and as many events in a TZID none of them defines, then one event in the last zone. */
  function manyZones(): string {
    const lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:x'];
    const observance = ['BEGIN:STANDARD', 'DTSTART:19700101T000000', 'TZOFFSETFROM:+0300', 'TZOFFSETTO:+0300', 'END:STANDARD'];
    for (let i = 0; i < zones; i++) lines.push('BEGIN:VTIMEZONE', `TZID:z${i}`, ...observance, 'END:VTIMEZONE');
    for (let i = 0; i < zones; i++) lines.push('BEGIN:VEVENT', `UID:e${i}`, 'DTSTART;TZID=Nope:20261207T100000', 'DTEND;TZID=Nope:20261207T110000', 'END:VEVENT');
    lines.push('BEGIN:VEVENT', 'UID:last', `DTSTART;TZID=z${zones - 1}:20261208T100000`, 'DURATION:PT1H', 'END:VEVENT', 'END:VCALENDAR', '');
    return lines.join('\r\n');
  }

  it('finds each TZID in one look-up: no time makes ical.js scan the VTIMEZONEs (before: one scan of all 2,000 for each of 4,000 times)', () => {
    const scans = vi.spyOn(ICAL.Component.prototype, 'getAllSubcomponents');
    const calendar = parseCalendar(manyZones(), 'c');
    expect(scans.mock.calls.filter(([name]) => name === 'vtimezone')).toHaveLength(0);
    expect(calendar.warnings).toEqual([expect.stringMatching(/unknown time zone "Nope"/)]);
    const busy = expandBusy(calendar, { start: Date.UTC(2026, 11, 8), end: Date.UTC(2026, 11, 9) }, { timeZone: 'UTC' });
    expect(busy.map((b) => new Date(b.start).toISOString())).toEqual(['2026-12-08T07:00:00.000Z']);
  });

  it('reads a TZID defined twice with the first definition, as ical.js did', () => {
    const second = ['BEGIN:VTIMEZONE', 'TZID:Evil', ...standard('19700101T000000', 'FREQ=YEARLY', '+0500', '+0500'), 'END:VTIMEZONE'];
    const text = zoneFeed(standard('19700101T000000', 'FREQ=YEARLY', '+0300', '+0300')).replace('BEGIN:VEVENT', `${second.join('\r\n')}\r\nBEGIN:VEVENT`);
    expect(new Date(instantOf(parseCalendar(text, 'c').series[0]!.master.start, 'UTC')).toISOString()).toBe('2026-12-07T07:00:00.000Z');
  });
});

// Found in review s34privacy: ical.js reads an observance's offsets, DTSTART and RRULE only when it first converts a
// time in the zone, outside every step that names a line; `TZOFFSETFROM:LEAKTZOFF` threw its plain Error ("Could not
// extract integer from …") out of the parse, a 500 for every search. In zoneFeed, the observance's DTSTART is line 7,
// RRULE 8, TZOFFSETFROM 9, TZOFFSETTO 10.
describe('a time zone observance with a value ical.js cannot read', () => {
  const observance = (replace: [string, string]) => standard('19700101T000000', 'FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU').map((l) => (l.startsWith(replace[0]) ? replace[1] : l));
  it.each([
    ['TZOFFSETFROM', 'TZOFFSETFROM:LEAKTZOFF', 9, '"LEAKTZOFF"'],
    ['TZOFFSETTO', 'TZOFFSETTO:LEAK', 10, '"LEAK"'],
    ['TZOFFSETTO', 'TZOFFSETTO:+01:00', 10, '"+01:00"'],
    ['TZOFFSETTO', 'TZOFFSETTO:0100', 10, '"0100"'],
    ['TZOFFSETTO', 'TZOFFSETTO:+2400', 10, '"+2400"'],
    ['TZOFFSETTO', 'TZOFFSETTO:+0160', 10, '"+0160"'],
    ['TZOFFSETTO', 'TZOFFSETTO:+0100,+0200', 10, '"+0100,+0200"'],
    ['TZOFFSETTO', 'TZOFFSETTO;VALUE=TEXT:+0100', 10, 'VALUE=TEXT'],
    ['DTSTART', 'DTSTART;VALUE=TEXT:19700101T000000', 7, 'VALUE=TEXT'],
    ['DTSTART', 'DTSTART;VALUE=PERIOD:19700101T000000/PT1H', 7, 'VALUE=PERIOD'],
    ['RRULE', 'RRULE;VALUE=TEXT:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU', 8, 'VALUE=TEXT'],
  ])('%s as in %s is refused with ERR_ICS_VALUE on its line; the message quotes nothing of it', (property, line, at, quoted) => {
    const err = sourceError(() => parseCalendar(zoneFeed(observance([property, line])), 'c'));
    expect([err.code, err.line, err.quoted]).toEqual(['ERR_ICS_VALUE', at, quoted]);
    expect(err.message).toMatch(new RegExp(`^Calendar "c", line ${at}: ${property} `));
    expect(err.message).not.toContain(quoted.replaceAll('"', ''));
  });

  it('reads offsets as RFC 5545 writes them: with seconds, +0000, -0500, and VALUE=UTC-OFFSET; and -0000 (which it does not allow) as zero', () => {
    // ical.js drops an offset's seconds (no zone has had any since 1972).
    for (const [from, to, utc] of [['+0100', '+013045', '2026-12-07T08:30:00.000Z'], ['-0500', '-0500', '2026-12-07T15:00:00.000Z'], ['+0000', '+0000', '2026-12-07T10:00:00.000Z'], ['-0000', '-0000', '2026-12-07T10:00:00.000Z']] as const) {
      const text = zoneFeed(observance(['TZOFFSETTO', `TZOFFSETTO;VALUE=UTC-OFFSET:${to}`]).map((l) => (l.startsWith('TZOFFSETFROM') ? `TZOFFSETFROM:${from}` : l)));
      expect(new Date(instantOf(parseCalendar(text, 'c').series[0]!.master.start, 'UTC')).toISOString()).toBe(utc);
    }
  });

  it('whatever ical.js throws outside the reads that name a property is the calendar\'s error, on the component\'s line', () => {
    vi.spyOn(ICAL.Timezone.prototype, 'utcOffset').mockImplementation(() => {
      throw new Error('Could not extract integer from "EA"');
    });
    // Read at parse: DTEND compared with DTSTART, both in the zone (the event's BEGIN is line 13).
    const err = sourceError(() => parseCalendar(zoneFeed(standard('19700101T000000', 'FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU'), '20261207T100000', ['DTEND;TZID=Evil:20261207T110000']).replace('DURATION:PT1H\r\n', ''), 'c'));
    expect([err.code, err.message, err.quoted]).toEqual(['ERR_ICS_VALUE', 'Calendar "c", line 13: This event cannot be read.', 'Could not extract integer from "EA"']);
    // Read at expansion: a FREEBUSY period in the zone.
    const busy = zoneFeed(standard('19700101T000000', 'FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU'))
      .replace(/BEGIN:VEVENT[\s\S]*END:VEVENT\r\n/, 'BEGIN:VFREEBUSY\r\nUID:f\r\nFREEBUSY;TZID=Evil:20261207T100000/PT1H\r\nEND:VFREEBUSY\r\n');
    const calendar = parseCalendar(busy, 'c');
    const late = sourceError(() => expandBusy(calendar, { start: Date.UTC(2026, 11, 7), end: Date.UTC(2026, 11, 8) }, { timeZone: 'UTC' }));
    expect([late.code, late.message]).toEqual(['ERR_ICS_VALUE', 'Calendar "c": A FREEBUSY period could not be read.']);
  });
});
