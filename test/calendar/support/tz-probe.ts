// A fixed set of calendar results (busy time from the demo calendar in three
// zones around their DST changes, slots, their human and ISO renderings, a
// sample with floating and all-day times, and random calendars from a fixed
// seed searched with random options), used to compare runs under different
// process time zones.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parseWorkingHours } from '../../../src/calendar/working-hours.js';
import { anchorInstant, randomCalendar, toIcs } from './random-calendar.js';
import { formatSlotHuman, toZonedIso } from '../../../src/calendar/format.js';
import { expandBusy, parseCalendar } from '../../../src/calendar/ics.js';
import { findSlots } from '../../../src/calendar/slots.js';

const MIN = 60_000;
const DAY = 1440 * MIN;

export function probe(): unknown {
  const owner = parseCalendar(readFileSync(new URL('../../../fixtures/owner.ics', import.meta.url), 'utf8'), 'owner');
  const mixed = parseCalendar(readFileSync(new URL('../../../fixtures/ics-samples/nodeical-mixed-timezone-handling.ics', import.meta.url), 'utf8'), 'mixed');
  const results: unknown[] = [];
  for (const [zone, from] of [
    ['Europe/Berlin', Date.UTC(2026, 2, 26)],
    ['America/New_York', Date.UTC(2026, 9, 29)],
    ['Australia/Sydney', Date.UTC(2026, 3, 2)],
  ] as const) {
    const window = { start: from, end: from + 7 * DAY };
    const busy = expandBusy(owner, window, { timeZone: zone });
    const slots = findSlots(busy, { durationMs: 30 * MIN, from, to: window.end, timeZone: zone, limit: 5 });
    results.push({ zone, busy, slots: slots.map((s) => [formatSlotHuman(s, zone), toZonedIso(s.start, zone)]) });
  }
  results.push(expandBusy(mixed, { start: Date.UTC(2002, 9, 26), end: Date.UTC(2002, 10, 1) }, { timeZone: 'America/Los_Angeles' }));
  for (const random of fc.sample(randomCalendar, { seed: 4, numRuns: 25 })) {
    const parsed = parseCalendar(toIcs(random), 'random');
    const from = anchorInstant(random);
    const window = { start: from - DAY, end: from + 10 * DAY };
    const busy = expandBusy(parsed, window, { timeZone: random.ownerZone });
    const hours = parseWorkingHours('mon-fri 08:00-12:00,13:00-18:00; sat 10:00-12:00');
    const slots = findSlots(busy, { durationMs: 45 * MIN, from, to: from + 7 * DAY, timeZone: random.ownerZone, workingHours: hours, stepMs: 15 * MIN, bufferBeforeMs: 10 * MIN, limit: 3 });
    results.push({ busy, slots: slots.map((s) => toZonedIso(s.start, random.ownerZone)) });
  }
  return results;
}

