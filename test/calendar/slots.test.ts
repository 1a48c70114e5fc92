import { describe, expect, it } from 'vitest';
import { SlotQueryError } from '../../src/calendar/errors.js';
import { formatSlotHuman } from '../../src/calendar/format.js';
import {
  DEFAULT_STEP_MS,
  DEFAULT_WINDOW_DAYS,
  DEFAULT_WORKING_HOURS,
  defaultWindow,
  findSlots,
  type Interval,
  type SlotQuery,
} from '../../src/calendar/slots.js';
import { fromWall } from '../../src/calendar/zone.js';

const MIN = 60_000;
const H = 60 * MIN;
const DAY = 24 * H;
const utc = Date.UTC;
/** An instant from a wall-clock time in a zone: at(zone, 2026, 12, 1, 9, 30). */
const at = (zone: string, y: number, mo: number, d: number, h = 0, mi = 0) => fromWall(utc(y, mo - 1, d, h, mi), zone);
const human = (slots: Interval[], zone: string) => slots.map((s) => formatSlotHuman(s, zone));

const BERLIN = 'Europe/Berlin';
/** Mon 30 Nov 2026 00:00 Berlin, for a week. */
const week = (zone = BERLIN): Pick<SlotQuery, 'from' | 'to' | 'timeZone'> => {
  const from = at(zone, 2026, 11, 30);
  return { from, to: from + 7 * DAY, timeZone: zone };
};

describe('defaults', () => {
  it('are 09:00–17:00 Monday to Friday, a 15-minute step and a 7-day window', () => {
    expect(DEFAULT_WORKING_HOURS).toEqual({
      mon: [{ start: '09:00', end: '17:00' }],
      tue: [{ start: '09:00', end: '17:00' }],
      wed: [{ start: '09:00', end: '17:00' }],
      thu: [{ start: '09:00', end: '17:00' }],
      fri: [{ start: '09:00', end: '17:00' }],
    });
    expect(DEFAULT_STEP_MS).toBe(15 * MIN);
    expect(DEFAULT_WINDOW_DAYS).toBe(7);
    expect(defaultWindow(1000)).toEqual({ start: 1000, end: 1000 + 7 * DAY });
  });
});

describe('findSlots', () => {
  it('finds the first free half hour on a free calendar at 09:00 Monday', () => {
    expect(human(findSlots([], { ...week(), durationMs: 30 * MIN }), BERLIN)).toEqual(['Mon 30 Nov 2026, 09:00–09:30 (Europe/Berlin)']);
  });

  it('never overlaps busy time, but may touch it', () => {
    const busy = [
      { start: at(BERLIN, 2026, 11, 30, 9), end: at(BERLIN, 2026, 11, 30, 10, 5) },
      { start: at(BERLIN, 2026, 11, 30, 10, 45), end: at(BERLIN, 2026, 11, 30, 12) },
    ];
    // 10:05 → next step 10:15; 10:15–10:45 fits exactly up to the next meeting.
    expect(human(findSlots(busy, { ...week(), durationMs: 30 * MIN }), BERLIN)).toEqual(['Mon 30 Nov 2026, 10:15–10:45 (Europe/Berlin)']);
  });

  it('keeps buffers clear before and after busy time', () => {
    const busy = [
      { start: at(BERLIN, 2026, 11, 30, 9), end: at(BERLIN, 2026, 11, 30, 10) },
      { start: at(BERLIN, 2026, 11, 30, 11), end: at(BERLIN, 2026, 11, 30, 12) },
    ];
    const q = { ...week(), durationMs: 30 * MIN, bufferBeforeMs: 10 * MIN, bufferAfterMs: 10 * MIN };
    // The slot needs 10 minutes free before it (after the 10:00 end: start ≥ 10:10, on the step: 10:15)
    // and 10 after (end ≤ 10:50): 10:15–10:45.
    expect(human(findSlots(busy, q), BERLIN)).toEqual(['Mon 30 Nov 2026, 10:15–10:45 (Europe/Berlin)']);
    // With 20-minute buffers the gap no longer fits a slot; 12:30 is the next (12:00 + 20 min → 12:30 on the step).
    expect(human(findSlots(busy, { ...q, bufferBeforeMs: 20 * MIN, bufferAfterMs: 20 * MIN }), BERLIN)).toEqual([
      'Mon 30 Nov 2026, 12:30–13:00 (Europe/Berlin)',
    ]);
  });

  it('starts on the step counted from local midnight', () => {
    const from = at(BERLIN, 2026, 11, 30, 10, 7);
    const q = { from, to: from + DAY, timeZone: BERLIN, durationMs: 30 * MIN };
    expect(human(findSlots([], q), BERLIN)).toEqual(['Mon 30 Nov 2026, 10:15–10:45 (Europe/Berlin)']);
    expect(human(findSlots([], { ...q, stepMs: 45 * MIN }), BERLIN)).toEqual(['Mon 30 Nov 2026, 10:30–11:00 (Europe/Berlin)']);
    expect(human(findSlots([], { ...q, stepMs: 60 * MIN }), BERLIN)).toEqual(['Mon 30 Nov 2026, 11:00–11:30 (Europe/Berlin)']);
  });

  it('stays inside the window at both ends', () => {
    const from = at(BERLIN, 2026, 11, 30, 16, 20);
    const to = at(BERLIN, 2026, 11, 30, 16, 55);
    // 16:20 → first start 16:30; a 30-minute slot would end at 17:00, after the window.
    expect(findSlots([], { from, to, timeZone: BERLIN, durationMs: 30 * MIN })).toEqual([]);
    expect(human(findSlots([], { from, to, timeZone: BERLIN, durationMs: 25 * MIN }), BERLIN)).toEqual([
      'Mon 30 Nov 2026, 16:30–16:55 (Europe/Berlin)',
    ]);
    // A window ending at 09:30 fits exactly one slot of 30 minutes.
    expect(findSlots([], { from: at(BERLIN, 2026, 11, 30), to: at(BERLIN, 2026, 11, 30, 9, 30), timeZone: BERLIN, durationMs: 30 * MIN })).toHaveLength(1);
  });

  it('skips the weekend and honours custom working hours', () => {
    const from = at(BERLIN, 2026, 12, 4, 17); // Friday after work
    const q = { from, to: from + 7 * DAY, timeZone: BERLIN, durationMs: 60 * MIN };
    expect(human(findSlots([], q), BERLIN)).toEqual(['Mon 7 Dec 2026, 09:00–10:00 (Europe/Berlin)']);
    const saturday = findSlots([], { ...q, workingHours: { sat: [{ start: '10:00', end: '12:00' }], mon: [{ start: '13:00', end: '18:00' }] } });
    expect(human(saturday, BERLIN)).toEqual(['Sat 5 Dec 2026, 10:00–11:00 (Europe/Berlin)']);
    // Two stretches a day: a slot never spans the lunch gap.
    const split = { mon: [{ start: '09:00', end: '09:45' }, { start: '10:00', end: '12:00' }] };
    expect(human(findSlots([], { ...q, workingHours: split }), BERLIN)).toEqual(['Mon 7 Dec 2026, 10:00–11:00 (Europe/Berlin)']);
  });

  it('joins working hours that run over midnight', () => {
    const allDay = { mon: [{ start: '00:00', end: '24:00' }], tue: [{ start: '00:00', end: '24:00' }] };
    const from = at(BERLIN, 2026, 11, 30, 23, 30);
    const slots = findSlots([], { from, to: from + DAY, timeZone: BERLIN, durationMs: 60 * MIN, workingHours: allDay });
    expect(human(slots, BERLIN)).toEqual(['Mon 30 Nov 2026, 23:30 – Tue 1 Dec 2026, 00:30 (Europe/Berlin)']);
  });

  it('returns up to `limit` slots, earliest first, none overlapping another', () => {
    const busy = [{ start: at(BERLIN, 2026, 11, 30, 9, 45), end: at(BERLIN, 2026, 11, 30, 16, 15) }];
    const slots = findSlots(busy, { ...week(), durationMs: 30 * MIN, limit: 4 });
    expect(human(slots, BERLIN)).toEqual([
      'Mon 30 Nov 2026, 09:00–09:30 (Europe/Berlin)',
      'Mon 30 Nov 2026, 16:15–16:45 (Europe/Berlin)',
      'Tue 1 Dec 2026, 09:00–09:30 (Europe/Berlin)',
      'Tue 1 Dec 2026, 09:30–10:00 (Europe/Berlin)',
    ]);
  });

  it('answers [] when the week is full', () => {
    const q = { ...week(), durationMs: 30 * MIN };
    expect(findSlots([{ start: q.from - DAY, end: q.to + DAY }], q)).toEqual([]);
  });

  it('does not care about the order or overlap of busy intervals', () => {
    const a = { start: at(BERLIN, 2026, 11, 30, 9), end: at(BERLIN, 2026, 11, 30, 11) };
    const b = { start: at(BERLIN, 2026, 11, 30, 10), end: at(BERLIN, 2026, 11, 30, 12) };
    const q = { ...week(), durationMs: 30 * MIN };
    expect(findSlots([b, a, b], q)).toEqual(findSlots([a, b], q));
    expect(human(findSlots([b, a], q), BERLIN)).toEqual(['Mon 30 Nov 2026, 12:00–12:30 (Europe/Berlin)']);
  });

  it.each([
    [{ durationMs: 0 }, 'ERR_SLOT_DURATION'],
    [{ durationMs: Number.NaN }, 'ERR_SLOT_DURATION'],
    [{ to: 0 }, 'ERR_SLOT_WINDOW'],
    [{ to: utc(2030, 0, 1) }, 'ERR_SLOT_WINDOW'],
    [{ timeZone: 'Mars/Olympus' }, 'ERR_SLOT_TIME_ZONE'],
    [{ stepMs: 0 }, 'ERR_SLOT_STEP'],
    [{ stepMs: 90_000 }, 'ERR_SLOT_STEP'],
    [{ bufferBeforeMs: -1 }, 'ERR_SLOT_BUFFER'],
    [{ limit: 0 }, 'ERR_SLOT_LIMIT'],
    [{ workingHours: { mon: [{ start: '17:00', end: '09:00' }] } }, 'ERR_SLOT_WORKING_HOURS'],
    [{ workingHours: { mon: [{ start: '9:00', end: '17:00' }] } }, 'ERR_SLOT_WORKING_HOURS'],
    [{ workingHours: { mon: [{ start: '09:00', end: '24:30' }] } }, 'ERR_SLOT_WORKING_HOURS'],
  ] as Array<[Partial<SlotQuery>, string]>)('refuses %j with %s', (change, code) => {
    const q = { ...week(), durationMs: 30 * MIN, ...change };
    let caught: unknown;
    try {
      findSlots([], q);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SlotQueryError);
    expect((caught as SlotQueryError).code).toBe(code);
  });
});

describe('findSlots across DST changes', () => {
  const allDay = Object.fromEntries(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'].map((d) => [d, [{ start: '00:00', end: '24:00' }]]));

  it('Europe/Berlin, spring forward (Sun 29 Mar 2026): 09:00 is 07:00Z, and no start falls in the gap', () => {
    const from = at(BERLIN, 2026, 3, 27, 12); // Friday noon
    const busy = [{ start: at(BERLIN, 2026, 3, 27, 12), end: at(BERLIN, 2026, 3, 27, 17) }];
    const [slot] = findSlots(busy, { from, to: from + 7 * DAY, timeZone: BERLIN, durationMs: 30 * MIN });
    expect(slot).toEqual({ start: utc(2026, 2, 30, 7), end: utc(2026, 2, 30, 7, 30) }); // Monday 09:00 CEST
    // All hours working, the night of the change: 01:30, then 01:45, then 03:00 CEST (02:xx does not exist).
    const night = findSlots([], { from: at(BERLIN, 2026, 3, 29, 1, 30), to: at(BERLIN, 2026, 3, 29, 4), timeZone: BERLIN, durationMs: 15 * MIN, workingHours: allDay, limit: 4 });
    expect(human(night, BERLIN)).toEqual([
      'Sun 29 Mar 2026, 01:30–01:45 (Europe/Berlin)',
      'Sun 29 Mar 2026, 01:45–03:00 (Europe/Berlin)',
      'Sun 29 Mar 2026, 03:00–03:15 (Europe/Berlin)',
      'Sun 29 Mar 2026, 03:15–03:30 (Europe/Berlin)',
    ]);
    expect(night[1]!.end - night[1]!.start).toBe(15 * MIN);
  });

  it('Europe/Berlin, fall back (Sun 25 Oct 2026): both 02:00s are starts on the step', () => {
    const night = findSlots([], {
      from: at(BERLIN, 2026, 10, 25, 1, 30),
      to: utc(2026, 9, 25, 2),
      timeZone: BERLIN,
      durationMs: 30 * MIN,
      workingHours: allDay,
      limit: 10,
    });
    expect(night.map((s) => s.start)).toEqual([utc(2026, 9, 24, 23, 30), utc(2026, 9, 25, 0), utc(2026, 9, 25, 0, 30), utc(2026, 9, 25, 1), utc(2026, 9, 25, 1, 30)]);
  });

  it('America/New_York: working hours stay 09:00–17:00 local on both sides of 8 Mar 2026', () => {
    const NY = 'America/New_York';
    const from = at(NY, 2026, 3, 6, 17); // Friday after work
    const busy = [{ start: at(NY, 2026, 3, 9, 9), end: at(NY, 2026, 3, 9, 16, 30) }];
    const slots = findSlots(busy, { from, to: from + 7 * DAY, timeZone: NY, durationMs: 30 * MIN, limit: 2 });
    expect(slots).toEqual([
      { start: utc(2026, 2, 9, 20, 30), end: utc(2026, 2, 9, 21) }, // 16:30 EDT
      { start: utc(2026, 2, 10, 13), end: utc(2026, 2, 10, 13, 30) }, // Tue 09:00 EDT
    ]);
    const before = findSlots([], { from: at(NY, 2026, 3, 6, 8), to: at(NY, 2026, 3, 7), timeZone: NY, durationMs: 30 * MIN });
    expect(before).toEqual([{ start: utc(2026, 2, 6, 14), end: utc(2026, 2, 6, 14, 30) }]); // Fri 09:00 EST
  });

  it('Australia/Sydney (southern hemisphere): clocks go back on Sun 5 Apr 2026', () => {
    const SYD = 'Australia/Sydney';
    const from = at(SYD, 2026, 4, 3, 17); // Friday after work
    const slots = findSlots([], { from, to: from + 7 * DAY, timeZone: SYD, durationMs: 30 * MIN });
    expect(slots).toEqual([{ start: utc(2026, 3, 5, 23), end: utc(2026, 3, 5, 23, 30) }]); // Mon 6 Apr 09:00 AEST (+10)
    const friday = findSlots([], { from: at(SYD, 2026, 4, 3, 8), to: from, timeZone: SYD, durationMs: 30 * MIN });
    expect(friday).toEqual([{ start: utc(2026, 3, 2, 22), end: utc(2026, 3, 2, 22, 30) }]); // Fri 09:00 AEDT (+11)
  });

  it('Australia/Lord_Howe: a half-hour change keeps slots on the local step', () => {
    const LH = 'Australia/Lord_Howe';
    const night = findSlots([], { from: at(LH, 2026, 4, 5, 1), to: at(LH, 2026, 4, 5, 3), timeZone: LH, durationMs: 30 * MIN, workingHours: allDay, limit: 10 });
    // 01:00, 01:30 (LHDT +11), then the clock goes from 02:00 back to 01:30 (+10:30): 01:30, 02:00, 02:30.
    expect(night.map((s) => s.start)).toEqual([utc(2026, 3, 4, 14), utc(2026, 3, 4, 14, 30), utc(2026, 3, 4, 15), utc(2026, 3, 4, 15, 30), utc(2026, 3, 4, 16)]);
  });
});
