// Large calendars (found in review regress21c): a UID with tens of thousands
// of overridden instances, which parsed in quadratic time (each RECURRENCE-ID
// copied the UID's list: 40,000 took 17 s); a feed up to the 20 MB limit,
// parsed in one synchronous piece on the loop `delegate serve` shares with the
// authorization server and CalendarAgent (20 s for 20 MB); and the caps that
// bound what one calendar, and one component of it, may cost.
import { describe, expect, it } from 'vitest';
import { CalendarSourceError } from '../../src/calendar/errors.js';
import { MAX_CALENDAR_COMPONENTS, MAX_COMPONENT_SIZE, parseCalendar, parseCalendarCooperatively, type ParsedCalendar } from '../../src/calendar/ics.js';

const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').slice(0, 15) + 'Z';
const calendarOf = (lines: string[]) => ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', ...lines, 'END:VCALENDAR', ''].join('\r\n');
const MINUTE = 60_000;
const START = Date.UTC(2040, 0, 1);

/** A daily series and `n` overridden instances of it, one a minute apart. */
function overridden(n: number): string {
  const lines = ['BEGIN:VEVENT', 'UID:a', `DTSTART:${stamp(START)}`, 'RRULE:FREQ=DAILY', 'END:VEVENT'];
  for (let i = 0; i < n; i++) lines.push('BEGIN:VEVENT', 'UID:a', `RECURRENCE-ID:${stamp(START + i * MINUTE)}`, `DTSTART:${stamp(START + i * MINUTE)}`, 'END:VEVENT');
  return calendarOf(lines);
}

/** `n` one-hour events in Europe/Berlin, whose VTIMEZONE comes after them (as some producers write it). */
function berlinEvents(n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const wall = stamp(START + i * 7 * 3_600_000).slice(0, 15);
    lines.push('BEGIN:VEVENT', `UID:e${i}`, `DTSTART;TZID=Europe/Berlin:${wall}`, 'DURATION:PT1H', `ATTENDEE;CN=Guest ${i}:mailto:g${i}@example.com`, 'END:VEVENT');
  }
  lines.push(
    ...['BEGIN:VTIMEZONE', 'TZID:Europe/Berlin', 'BEGIN:DAYLIGHT', 'TZOFFSETFROM:+0100', 'TZOFFSETTO:+0200', 'DTSTART:19700329T020000', 'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU', 'END:DAYLIGHT'],
    ...['BEGIN:STANDARD', 'TZOFFSETFROM:+0200', 'TZOFFSETTO:+0100', 'DTSTART:19701025T030000', 'RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU', 'END:STANDARD', 'END:VTIMEZONE'],
  );
  return calendarOf(lines);
}

/** A parsed calendar as plain data, to compare two parses. */
function plainOf(calendar: ParsedCalendar): string {
  return JSON.stringify(calendar, (_key, value: unknown) => {
    if (value && typeof value === 'object' && 'toICALString' in value) return String(value);
    if (value && typeof value === 'object' && 'tzid' in value) return `zone ${String((value as { tzid: unknown }).tzid)}`;
    return value;
  });
}

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof CalendarSourceError) return { code: err.code, line: err.line, message: err.message };
    throw err;
  }
  return undefined;
};

describe('a large calendar', () => {
  it('reads 40,000 overridden instances of one UID in linear time, each in its place', () => {
    const calendar = parseCalendar(overridden(40_000), 'busy');
    expect(calendar.series).toHaveLength(1);
    const overrides = calendar.series[0]!.overrides;
    expect(overrides).toHaveLength(40_000);
    expect([String(overrides[0]!.recurrenceId.time), String(overrides[39_999]!.recurrenceId.time)]).toEqual(['2040-01-01T00:00:00Z', '2040-01-28T18:39:00Z']);
    // About 2 s; quadratic, it took 17 s and more.
  }, 10_000);

  it('is parsed cooperatively: the event loop runs between its steps, and the result is the one-piece parse', async () => {
    const text = berlinEvents(3_000);
    let ticks = 0;
    let parsing = true;
    const tick = () => {
      ticks++;
      if (parsing) setImmediate(tick);
    };
    setImmediate(tick);
    const calendar = await parseCalendarCooperatively(text, 'work');
    parsing = false;
    // 3,000 events of 6 lines: the text is read in steps of 4,000 lines and the events in steps of 250 lines' work.
    expect(ticks).toBeGreaterThan(50);
    expect(plainOf(calendar)).toBe(plainOf(parseCalendar(text, 'work')));
    expect(calendar.series).toHaveLength(3_000);
    expect(calendar.series[0]!.master.start.zone).toEqual({ kind: 'defined' });
  });

  it(`with more than ${MAX_CALENDAR_COMPONENTS} components is refused, saying why`, () => {
    const lines: string[] = [];
    for (let i = 0; i <= MAX_CALENDAR_COMPONENTS; i++) lines.push('BEGIN:VEVENT', `UID:u${i}`, `DTSTART:${stamp(START + i * MINUTE)}`, 'END:VEVENT');
    expect(refusal(() => parseCalendar(calendarOf(lines), 'history'))).toEqual({
      code: 'ERR_ICS_TOO_LARGE',
      line: undefined,
      message: `Calendar "history": It holds ${MAX_CALENDAR_COMPONENTS + 1} events and other components; at most ${MAX_CALENDAR_COMPONENTS} are read. Publish less of it (less history).`,
    });
  }, 20_000);

  it('with a component too large to read in one step is refused, naming its line', () => {
    const exdates = Array.from({ length: MAX_COMPONENT_SIZE }, (_, i) => stamp(START + (i + 1) * MINUTE)).join(',');
    const event = ['BEGIN:VEVENT', 'UID:a', `DTSTART:${stamp(START)}`, 'RRULE:FREQ=MINUTELY', `EXDATE:${exdates}`, 'END:VEVENT'];
    expect(refusal(() => parseCalendar(calendarOf(event), 'work'))).toEqual({
      code: 'ERR_ICS_TOO_LARGE',
      line: 4,
      message: `Calendar "work", line 4: This VEVENT has ${MAX_COMPONENT_SIZE + 5} lines and listed dates; at most ${MAX_COMPONENT_SIZE} are read in one component.`,
    });
    const periods = Array.from({ length: MAX_COMPONENT_SIZE }, (_, i) => `${stamp(START + i * 2 * MINUTE)}/PT1M`).join(',');
    expect(refusal(() => parseCalendar(calendarOf(['BEGIN:VFREEBUSY', `FREEBUSY:${periods}`, 'END:VFREEBUSY']), 'work'))?.code).toBe('ERR_ICS_TOO_LARGE');
    const guests = Array.from({ length: MAX_COMPONENT_SIZE }, (_, i) => `ATTENDEE:mailto:g${i}@example.com`);
    expect(refusal(() => parseCalendar(calendarOf(['BEGIN:VEVENT', 'UID:b', `DTSTART:${stamp(START)}`, ...guests, 'END:VEVENT']), 'work'))?.line).toBe(4);
  });

  it('with what real calendars hold is read: an event with a thousand guests, a series with five hundred exceptions', () => {
    const guests = Array.from({ length: 1_000 }, (_, i) => `ATTENDEE;CN=Guest ${i}:mailto:g${i}@example.com`);
    const exdates = Array.from({ length: 500 }, (_, i) => stamp(START + (i + 1) * 86_400_000)).join(',');
    const calendar = parseCalendar(
      calendarOf(['BEGIN:VEVENT', 'UID:all-hands', `DTSTART:${stamp(START)}`, 'DURATION:PT1H', ...guests, 'END:VEVENT', 'BEGIN:VEVENT', 'UID:standup', `DTSTART:${stamp(START)}`, 'RRULE:FREQ=DAILY', `EXDATE:${exdates}`, 'END:VEVENT']),
      'work',
    );
    expect(calendar.series.map((s) => [s.uid, s.exdates.length])).toEqual([
      ['all-hands', 0],
      ['standup', 500],
    ]);
  });
});
