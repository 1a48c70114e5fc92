// A fixed set of calendar results (busy time from the demo calendar in three
// zones around their DST changes, slots, their human and ISO renderings, and a
// sample with floating and all-day times), used to compare runs under
// different process time zones.
import { readFileSync } from 'node:fs';
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
  return results;
}

