// The whole calendar path, property-based: random calendars as ICS text
// (support/random-calendar.ts) are parsed and expanded, and slots searched in
// them with random options. Checked against what the calendars mean, worked
// out independently with @date-fns/tz:
// - the busy time is exactly the calendar's;
// - no slot overlaps busy time, buffers included;
// - every slot lies inside the window and inside working hours (read on the
//   clock of the search zone), and starts on the step;
// - the first slot is the earliest possible one: no earlier start on the
//   step satisfies all of the above (and with none found, no start does).
import { TZDate } from '@date-fns/tz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createBusyCache } from '../../src/calendar/busy-cache.js';
import { expandBusy, parseCalendar } from '../../src/calendar/ics.js';
import { clipIntervals, type Interval } from '../../src/calendar/intervals.js';
import { findSlots, WEEKDAYS, type WorkingHours } from '../../src/calendar/slots.js';
import { parseWorkingHours } from '../../src/calendar/working-hours.js';
import { anchorInstant, expectedBusy, randomCalendar, toIcs, ZONES } from './support/random-calendar.js';

const MIN = 60_000;
const DAY = 1440 * MIN;

const options = fc.record({
  searchZone: fc.option(fc.constantFrom(...ZONES), { nil: undefined }),
  startShiftMinutes: fc.integer({ min: -1440, max: 3 * 1440 }),
  windowMinutes: fc.integer({ min: 60, max: 3 * 1440 }),
  durationMinutes: fc.constantFrom(15, 30, 45, 60, 90),
  stepMinutes: fc.constantFrom(5, 10, 15, 30, 60),
  bufferBeforeMinutes: fc.constantFrom(0, 0, 5, 15),
  bufferAfterMinutes: fc.constantFrom(0, 0, 10, 30),
  limit: fc.integer({ min: 1, max: 4 }),
  hours: fc.constantFrom('mon-fri 09:00-17:00', 'daily 07:00-22:00', 'mon-thu 08:00-12:00,13:00-18:00; fri 08:00-13:00', 'daily 00:00-24:00', 'sat,sun 10:00-16:00'),
  tentative: fc.constantFrom<'busy' | 'free'>('busy', 'free'),
});

/** Minute-by-minute facts of a window, read on the search zone's clock by @date-fns/tz. */
class Clock {
  private readonly working: boolean[] = [];
  private readonly onStep: boolean[] = [];

  constructor(
    readonly from: number,
    minutes: number,
    zone: string,
    hours: WorkingHours,
    stepMinutes: number,
  ) {
    for (let i = 0; i < minutes; i++) {
      const d = new TZDate(from + i * MIN, zone);
      const minuteOfDay = d.getHours() * 60 + d.getMinutes();
      this.onStep.push(d.getSeconds() === 0 && minuteOfDay % stepMinutes === 0);
      this.working.push(
        (hours[WEEKDAYS[d.getDay()]!] ?? []).some((r) => minuteOfDay >= toMinutes(r.start) && minuteOfDay < toMinutes(r.end)),
      );
    }
  }

  /** Whether a slot of `minutes` starting at minute index `k` is all in working hours, and starts on the step. */
  fits(k: number, minutes: number): boolean {
    if (!this.onStep[k]) return false;
    for (let i = k; i < k + minutes; i++) if (!this.working[i]) return false;
    return true;
  }
}

const toMinutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
const overlapsAny = (busy: readonly Interval[], start: number, end: number) => busy.some((b) => b.start < end && start < b.end);

describe('random calendars, end to end (property-based)', () => {
  it('expand to exactly the busy time they describe, in any owner zone, with tentative events either way', () => {
    fc.assert(
      fc.property(randomCalendar, fc.constantFrom<'busy' | 'free'>('busy', 'free'), (calendar, tentative) => {
        const parsed = parseCalendar(toIcs(calendar), 'random');
        const window = { start: anchorInstant(calendar) - 5 * DAY, end: anchorInstant(calendar) + 40 * DAY };
        const expected = clipIntervals(expectedBusy(calendar, tentative), window);
        expect(expandBusy(parsed, window, { timeZone: calendar.ownerZone, tentative })).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('give slots that avoid busy time and buffers, keep to the window, working hours and step, and start as early as possible', async () => {
    const cache = createBusyCache();
    await fc.assert(
      fc.asyncProperty(randomCalendar, options, async (calendar, o) => {
        const parsed = parseCalendar(toIcs(calendar), 'random');
        const zone = o.searchZone ?? calendar.ownerZone;
        const from = anchorInstant(calendar) + o.startShiftMinutes * MIN;
        const to = from + o.windowMinutes * MIN;
        const hours = parseWorkingHours(o.hours);
        // Busy time as the backend serves it (cached, clipped to a window that covers the buffers).
        const busy = await cache.busy(parsed, { start: from - DAY, end: to + DAY }, { timeZone: calendar.ownerZone, tentative: o.tentative });
        const slots = findSlots(busy, {
          durationMs: o.durationMinutes * MIN,
          from,
          to,
          timeZone: zone,
          workingHours: hours,
          stepMs: o.stepMinutes * MIN,
          bufferBeforeMs: o.bufferBeforeMinutes * MIN,
          bufferAfterMs: o.bufferAfterMinutes * MIN,
          limit: o.limit,
        });

        const truth = expectedBusy(calendar, o.tentative);
        const clock = new Clock(from, o.windowMinutes, zone, hours, o.stepMinutes);
        const valid = (start: number) => {
          const end = start + o.durationMinutes * MIN;
          if (start < from || end > to) return false;
          if (!clock.fits((start - from) / MIN, o.durationMinutes)) return false;
          return !overlapsAny(truth, start - o.bufferBeforeMinutes * MIN, end + o.bufferAfterMinutes * MIN);
        };

        expect(slots.length).toBeLessThanOrEqual(o.limit);
        for (const [i, slot] of slots.entries()) {
          expect(slot.end - slot.start).toBe(o.durationMinutes * MIN);
          expect((slot.start - from) % MIN).toBe(0);
          expect(valid(slot.start)).toBe(true);
          if (i > 0) expect(slot.start).toBeGreaterThanOrEqual(slots[i - 1]!.end);
        }
        // Earliest: nothing valid before the first slot (or anywhere, when none was found).
        const firstStart = slots[0]?.start ?? to;
        for (let t = Math.ceil(from / MIN) * MIN; t < firstStart; t += MIN) expect([new Date(t).toISOString(), valid(t)]).toEqual([new Date(t).toISOString(), false]);
      }),
      { numRuns: 150 },
    );
  });
});
