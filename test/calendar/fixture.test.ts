// The demo calendar (fixtures/owner.ics, described in fixtures/README.md):
// the facts its README states, and that from any moment in 2025–2030 the
// next 7 days are visibly busy yet hold a free 30-minute slot in working hours.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatSlotHuman } from '../../src/calendar/format.js';
import { expandBusy, parseCalendar } from '../../src/calendar/ics.js';
import { clipIntervals, type Interval } from '../../src/calendar/intervals.js';
import { findSlots } from '../../src/calendar/slots.js';
import { fromWall } from '../../src/calendar/zone.js';

const ZONE = 'Europe/Berlin';
const MIN = 60_000;
const DAY = 1440 * MIN;
const owner = parseCalendar(readFileSync(new URL('../../fixtures/owner.ics', import.meta.url), 'utf8'), 'owner');
const at = (y: number, mo: number, d: number, h = 0, mi = 0) => fromWall(Date.UTC(y, mo - 1, d, h, mi), ZONE);
/** Busy time of one local day, as "HH:MM–HH:MM" lines. */
function day(y: number, mo: number, d: number): string[] {
  const from = at(y, mo, d);
  return expandBusy(owner, { start: from, end: at(y, mo, d + 1) }, { timeZone: ZONE }).map((i) => formatSlotHuman(i, ZONE).replace(/^.*, | \(.*$/g, ''));
}

describe('fixtures/owner.ics', () => {
  it('parses without warnings', () => {
    expect(owner.warnings).toEqual([]);
  });

  it('has the weekly pattern its README describes', () => {
    // Sprint planning is every other Monday from 6 Jan 2025, the retro every other Friday from 17 Jan 2025.
    expect(day(2026, 11, 30)).toEqual(['09:30–09:45', '10:00–11:00', '12:00–13:00']);
    expect(day(2026, 12, 7)).toEqual(['09:30–09:45', '10:00–11:00', '12:00–13:00', '13:30–15:00']);
    expect(day(2026, 12, 1)).toEqual(['09:30–09:45', '11:00–11:30', '12:00–13:00']);
    expect(day(2026, 12, 2)).toEqual(['09:30–09:45', '12:00–17:00']); // lunch, focus time, code review (DURATION) in a row
    expect(day(2026, 12, 3)).toEqual(['09:30–09:45', '10:00–11:00', '12:00–13:00', '14:00–14:30', '16:00–17:00']); // all hands: first Thursday
    expect(day(2026, 12, 4)).toEqual(['09:30–09:45', '12:00–13:00', '15:00–16:00']); // the transparent timesheet reminder is free
    expect(day(2026, 12, 11)).toEqual(['09:30–09:45', '12:00–13:00']);
    expect(day(2026, 12, 5)).toEqual([]);
  });

  it('has its overridden instances, EXDATEs and one-off events', () => {
    expect(day(2026, 6, 12)).toEqual(['12:00–13:00']); // the standup is cancelled
    expect(day(2026, 3, 10)).toEqual(['09:30–09:45', '12:00–13:00']); // the 1:1 moved away…
    expect(day(2026, 3, 12)).toEqual(['09:30–09:45', '10:00–11:00', '12:00–13:00', '14:00–14:30', '15:00–15:30']); // …to Thursday
    expect(day(2025, 12, 24)).toEqual(['12:00–17:00']); // a Wednesday, but no standup on Christmas Eve
    expect(day(2026, 2, 5)).toEqual(['08:00–09:00', '09:30–09:45', '10:00–11:00', '12:00–13:00', '14:00–14:30', '16:00–17:00']); // the UTC call
    expect(day(2026, 5, 20)).toEqual(['00:00–24:00']); // the offsite: the whole day…
    expect(expandBusy(owner, { start: at(2026, 5, 19), end: at(2026, 5, 23) }, { timeZone: ZONE })).toContainEqual({ start: at(2026, 5, 20), end: at(2026, 5, 22) }); // …both days
    expect(day(2026, 4, 22)).toEqual(['09:30–09:45', '11:00–17:00']); // a Wednesday: the tentative demo counts as busy, up to lunch
    expect(day(2026, 9, 16)).toEqual(['09:30–09:45', '12:00–17:00']); // the cancelled workshop is free
  });

  it('from any moment in 2025–2030, the next 7 days are busy but hold a free 30-minute slot in working hours', () => {
    const start = at(2025, 1, 6);
    const end = at(2031, 1, 1);
    const busy = expandBusy(owner, { start, end: end + 8 * DAY }, { timeZone: ZONE });
    // One sample a day, each at a different time of day (every 37 minutes later).
    for (let from = start, i = 0; from < end; from += DAY + 37 * MIN, i++) {
      const week: Interval = { start: from, end: from + 7 * DAY };
      const weekBusy = clipIntervals(busy, week);
      const slot = findSlots(weekBusy, { durationMs: 30 * MIN, from: week.start, to: week.end, timeZone: ZONE })[0];
      expect([i, weekBusy.reduce((sum, b) => sum + b.end - b.start, 0) >= 5 * 60 * MIN]).toEqual([i, true]);
      expect([i, slot !== undefined && slot.start < from + 3 * DAY + 8 * 60 * MIN]).toEqual([i, true]);
    }
  });
});
