// findSlots against a brute-force oracle that knows nothing of its algorithm:
// it reads clocks with @date-fns/tz (not our zone arithmetic), walks the
// window minute by minute, and takes the earliest starts that satisfy the
// rules. Random busy sets, windows near DST changes in six zones (two in the
// southern hemisphere, one with a half-hour change), working hours that
// include the night (when clocks change), steps and buffers.
import { TZDate } from '@date-fns/tz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findSlots, WEEKDAYS, type Interval, type SlotQuery, type WorkingHours } from '../../src/calendar/slots.js';

const MIN = 60_000;
const DAY = 1440 * MIN;

const ZONES = ['Europe/Berlin', 'America/New_York', 'Australia/Sydney', 'Australia/Lord_Howe', 'Asia/Kolkata', 'UTC'];
/** Instants near which clocks change in 2026 (UTC), plus ordinary days. */
const ANCHORS = [
  Date.UTC(2026, 2, 29, 1), // Europe, spring
  Date.UTC(2026, 9, 25, 1), // Europe, autumn
  Date.UTC(2026, 2, 8, 7), // New York, spring
  Date.UTC(2026, 10, 1, 6), // New York, autumn
  Date.UTC(2026, 3, 4, 16), // Sydney, autumn
  Date.UTC(2026, 9, 3, 16), // Sydney, spring
  Date.UTC(2026, 3, 4, 15), // Lord Howe, autumn (half an hour)
  Date.UTC(2026, 0, 14, 12),
  Date.UTC(2026, 6, 1, 0),
];

const clock = fc.integer({ min: 0, max: 96 }).map((q) => q * 15); // minutes after midnight, quarter hours, up to 24:00
const hhmm = (minutes: number) => `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
const dayHours = fc.array(fc.tuple(clock, clock).filter(([a, b]) => a !== b), { maxLength: 2 }).map((pairs) =>
  pairs.map(([a, b]) => ({ start: hhmm(Math.min(a, b)), end: hhmm(Math.max(a, b)) })),
);
const workingHours: fc.Arbitrary<WorkingHours> = fc.tuple(...WEEKDAYS.map(() => dayHours)).map((days) =>
  Object.fromEntries(WEEKDAYS.map((d, i) => [d, days[i]!])),
);

const scenario = fc
  .record({
    timeZone: fc.constantFrom(...ZONES),
    anchor: fc.constantFrom(...ANCHORS),
    fromShift: fc.integer({ min: -2 * DAY, max: 2 * DAY }),
    windowMinutes: fc.integer({ min: 30, max: 3 * 1440 }),
    durationMinutes: fc.integer({ min: 1, max: 180 }),
    stepMinutes: fc.constantFrom(1, 5, 10, 15, 20, 30, 45, 60, 90),
    bufferBeforeMinutes: fc.integer({ min: 0, max: 30 }),
    bufferAfterMinutes: fc.integer({ min: 0, max: 30 }),
    limit: fc.integer({ min: 1, max: 4 }),
    workingHours,
    busy: fc.array(fc.record({ at: fc.integer({ min: -DAY, max: 4 * DAY }), minutes: fc.integer({ min: 1, max: 300 }) }), { maxLength: 12 }),
  })
  .map((s) => {
    const from = s.anchor + s.fromShift;
    const query: SlotQuery = {
      durationMs: s.durationMinutes * MIN,
      from,
      to: from + s.windowMinutes * MIN,
      timeZone: s.timeZone,
      workingHours: s.workingHours,
      stepMs: s.stepMinutes * MIN,
      bufferBeforeMs: s.bufferBeforeMinutes * MIN,
      bufferAfterMs: s.bufferAfterMinutes * MIN,
      limit: s.limit,
    };
    const busy: Interval[] = s.busy.map((b) => ({ start: from + b.at, end: from + b.at + b.minutes * MIN }));
    return { query, busy };
  });

function minutesOf(text: string): number {
  return Number(text.slice(0, 2)) * 60 + Number(text.slice(3, 5));
}

/**
 * The rules of a slot, checked minute by minute with clocks read by
 * @date-fns/tz: every minute of the window is read once up front.
 */
class Oracle {
  private readonly base: number;
  private readonly onStep: boolean[] = [];
  /** notWorkingBefore[k]: how many of the minutes before minute k are outside working hours. */
  private readonly notWorkingBefore: number[] = [0];

  constructor(
    private readonly busy: readonly Interval[],
    private readonly q: SlotQuery,
  ) {
    this.base = Math.ceil(q.from / MIN) * MIN;
  }

  /** Reads clocks up to minute k (lazily: clocks are slow to read and most searches stop early). */
  private readUpTo(k: number): void {
    const stepMinutes = this.q.stepMs! / MIN;
    for (let i = this.onStep.length; i <= k; i++) {
      const d = new TZDate(this.base + i * MIN, this.q.timeZone);
      const minuteOfDay = d.getHours() * 60 + d.getMinutes();
      this.onStep.push(d.getSeconds() === 0 && minuteOfDay % stepMinutes === 0);
      const ranges = this.q.workingHours![WEEKDAYS[d.getDay()]!] ?? [];
      const working = ranges.some((r) => minuteOfDay >= minutesOf(r.start) && minuteOfDay < minutesOf(r.end));
      this.notWorkingBefore.push(this.notWorkingBefore[i]! + (working ? 0 : 1));
    }
  }

  valid(start: number): boolean {
    const { q } = this;
    const end = start + q.durationMs;
    if (start < q.from || end > q.to || (start - this.base) % MIN !== 0) return false;
    const k = (start - this.base) / MIN;
    const n = q.durationMs / MIN;
    this.readUpTo(k + n);
    if (!this.onStep[k]) return false;
    if (this.notWorkingBefore[k + n]! - this.notWorkingBefore[k]! > 0) return false;
    return this.busy.every((b) => !(start - q.bufferBeforeMs! < b.end && end + q.bufferAfterMs! > b.start));
  }

  /** The earliest valid starts, each next one at or after the end of the one before. */
  slots(): Interval[] {
    const out: Interval[] = [];
    for (let s = this.base; s + this.q.durationMs <= this.q.to && out.length < this.q.limit!; s += MIN) {
      if (this.valid(s)) {
        out.push({ start: s, end: s + this.q.durationMs });
        s += this.q.durationMs - MIN;
      }
    }
    return out;
  }
}

describe('findSlots (property-based)', () => {
  it('agrees with the brute-force oracle: earliest first, no overlap with busy or buffers, inside window and working hours', () => {
    fc.assert(
      fc.property(scenario, ({ query, busy }) => {
        const slots = findSlots(busy, query);
        const oracle = new Oracle(busy, query);
        for (const slot of slots) {
          expect(slot.end - slot.start).toBe(query.durationMs);
          expect(oracle.valid(slot.start)).toBe(true);
        }
        for (let i = 1; i < slots.length; i++) expect(slots[i]!.start).toBeGreaterThanOrEqual(slots[i - 1]!.end);
        expect(slots).toEqual(oracle.slots());
      }),
      { numRuns: 200 },
    );
  });

  it('does not depend on the order of the busy intervals', () => {
    fc.assert(
      fc.property(scenario, fc.integer(), ({ query, busy }, seed) => {
        const shuffled = [...busy].sort((a, b) => ((a.start * 31 + seed) % 7) - ((b.start * 31 + seed) % 7));
        expect(findSlots(shuffled, query)).toEqual(findSlots(busy, query));
      }),
      { numRuns: 100 },
    );
  });
});
