// The busy-time cache gives exactly what expanding afresh gives, for any
// window, zone and tentative setting, and expands a calendar version once for
// windows inside a range it already holds.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createBusyCache } from '../../src/calendar/busy-cache.js';
import { CalendarSourceError } from '../../src/calendar/errors.js';
import { expandBusy, parseCalendar, type ParsedCalendar } from '../../src/calendar/ics.js';

const owner = parseCalendar(readFileSync(new URL('../../fixtures/owner.ics', import.meta.url), 'utf8'), 'owner');
const status = parseCalendar(readFileSync(new URL('../../fixtures/ics-samples/nodeical-macos-calendar-status.ics', import.meta.url), 'utf8'), 'status');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Counts how often a calendar's series are walked, by wrapping the array the expansion reads. */
function counted(calendar: ParsedCalendar): { calendar: ParsedCalendar; expansions: () => number } {
  let n = 0;
  const series = new Proxy(calendar.series as ParsedCalendar['series'][number][], {
    get(target, key, receiver) {
      if (key === Symbol.iterator) n++;
      return Reflect.get(target, key, receiver);
    },
  });
  return { calendar: { ...calendar, series }, expansions: () => n };
}

describe('createBusyCache', () => {
  it('answers exactly as expandBusy does (property)', async () => {
    const cache = createBusyCache();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(owner, status),
        fc.integer({ min: Date.UTC(2022, 0, 1) / HOUR, max: Date.UTC(2027, 0, 1) / HOUR }),
        fc.integer({ min: 1, max: 24 * 40 }),
        fc.integer({ min: 0, max: 59 }),
        fc.constantFrom('Europe/Berlin', 'America/Vancouver', 'Australia/Sydney'),
        fc.constantFrom<'busy' | 'free'>('busy', 'free'),
        async (calendar, startHour, hours, minute, timeZone, tentative) => {
          const window = { start: startHour * HOUR + minute * 60_000, end: (startHour + hours) * HOUR };
          const options = { timeZone, tentative };
          expect(await cache.busy(calendar, window, options)).toEqual(expandBusy(calendar, window, options));
          // A window inside the one just asked: served from the same range.
          const inner = { start: window.start + 60_000, end: Math.max(window.start + 120_000, window.end - HOUR) };
          expect(await cache.busy(calendar, inner, options)).toEqual(expandBusy(calendar, inner, options));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('expands once for repeated calls whose window moves within the day, and again for another zone', async () => {
    const { calendar, expansions } = counted(owner);
    const cache = createBusyCache();
    const now = Date.UTC(2026, 10, 30, 8, 0);
    for (let i = 0; i < 5; i++) await cache.busy(calendar, { start: now + i * 60_000, end: now + i * 60_000 + 7 * DAY - 9 * HOUR }, { timeZone: 'Europe/Berlin' });
    expect(expansions()).toBe(1);
    await cache.busy(calendar, { start: now, end: now + DAY }, { timeZone: 'America/New_York' });
    expect(expansions()).toBe(2);
    await cache.busy(calendar, { start: now, end: now + DAY }, { timeZone: 'Europe/Berlin', tentative: 'free' });
    expect(expansions()).toBe(3);
    await cache.busy(calendar, { start: now + 30 * DAY, end: now + 31 * DAY }, { timeZone: 'Europe/Berlin' });
    expect(expansions()).toBe(4);
  });

  // Found in review: 16 concurrent reads ran 16 expansions side by side (953 MB at the peak, against 288 MB in turn).
  it('expands one range at a time: a small calendar asked for just after a large one waits its turn', async () => {
    const cache = createBusyCache();
    const window = { start: Date.UTC(2026, 0, 1), end: Date.UTC(2026, 2, 1) };
    const done: string[] = [];
    const large = cache.busy(owner, window, { timeZone: 'Europe/Berlin' }).then(() => done.push('owner'));
    const small = cache.busy(status, window, { timeZone: 'Europe/Berlin' }).then(() => done.push('status'));
    await Promise.all([large, small]);
    expect(done).toEqual(['owner', 'status']);
  });

  it('shares one expansion among reads of the same range made while it runs', async () => {
    const { calendar, expansions } = counted(owner);
    const cache = createBusyCache();
    const now = Date.UTC(2026, 10, 30, 8, 0);
    const reads = [0, 1, 2].map((i) => cache.busy(calendar, { start: now + i * 60_000, end: now + 7 * DAY }, { timeZone: 'Europe/Berlin' }));
    const answers = await Promise.all(reads);
    expect(expansions()).toBe(1);
    expect(answers[0]).toEqual(expandBusy(owner, { start: now, end: now + 7 * DAY }, { timeZone: 'Europe/Berlin' }));
  });

  it('remembers a range that went over the expansion limit: refused again without expanding, and so is a range holding it; a range inside it is tried', async () => {
    const { calendar, expansions } = counted(owner);
    const cache = createBusyCache();
    const options = { timeZone: 'Europe/Berlin', maxIterations: 10 };
    const now = Date.UTC(2026, 10, 30, 8, 0);
    const refusal = (window: { start: number; end: number }) => cache.busy(calendar, window, options).then(() => undefined, (err: unknown) => err);
    const first = await refusal({ start: now, end: now + 7 * DAY });
    expect(first).toBeInstanceOf(CalendarSourceError);
    expect((first as CalendarSourceError).code).toBe('ERR_ICS_EXPANSION_LIMIT');
    expect(expansions()).toBe(1);
    // The same read a minute later, and one over more days: the same refusal, nothing expanded.
    expect(await refusal({ start: now + 60_000, end: now + 7 * DAY })).toBe(first);
    expect(await refusal({ start: now - DAY, end: now + 30 * DAY })).toBe(first);
    expect(expansions()).toBe(1);
    // Fewer days may take fewer iterations: tried again. Other settings are another expansion.
    await refusal({ start: now + 2 * DAY, end: now + 3 * DAY });
    expect(expansions()).toBe(2);
    expect(await cache.busy(calendar, { start: now, end: now + 7 * DAY }, { timeZone: 'Europe/Berlin' })).toEqual(
      expandBusy(owner, { start: now, end: now + 7 * DAY }, { timeZone: 'Europe/Berlin' }),
    );
    expect(expansions()).toBe(3);
  });

  it('remembers a rule that could not be expanded (ERR_ICS_RULE) as it remembers the limit: the same read is refused without expanding', async () => {
    // Found in review regress21c: only ERR_ICS_EXPANSION_LIMIT was kept, so a rule that took 42 s to fail cost every read 42 s.
    const failing = parseCalendar(
      ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN', 'BEGIN:VEVENT', 'UID:r@t', 'DTSTART:20260101T090000Z', 'DURATION:PT1H', 'RRULE:FREQ=DAILY', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n'),
      'failing',
    );
    // What ical.js threw from inside a rule (RangeError, "Same occurrence found twice") stands in for any such fault.
    Object.defineProperty(failing.series[0]!.rules[0]!, 'interval', {
      get() {
        throw new RangeError('Invalid array length');
      },
    });
    const { calendar, expansions } = counted(failing);
    const cache = createBusyCache();
    const now = Date.UTC(2026, 10, 30, 8, 0);
    const refusal = (window: { start: number; end: number }) => cache.busy(calendar, window, { timeZone: 'UTC' }).then(() => undefined, (err: unknown) => err);
    const first = await refusal({ start: now, end: now + 7 * DAY });
    expect((first as CalendarSourceError).code).toBe('ERR_ICS_RULE');
    expect(await refusal({ start: now + 60_000, end: now + 7 * DAY })).toBe(first);
    expect(await refusal({ start: now - DAY, end: now + 30 * DAY })).toBe(first);
    expect(expansions()).toBe(1);
  });
});
