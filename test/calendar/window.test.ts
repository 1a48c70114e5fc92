// The find_slot window: ISO 8601 bounds with and without offsets, defaults,
// and the refusals that keep bad input from ever reaching the network.
import { describe, expect, it } from 'vitest';
import { coveringWindow, parseWindowRequest, searchWindow, DEFAULT_WINDOW_MS, type WindowRequest } from '../../src/calendar/window.js';

const NOW = Date.parse('2026-11-30T08:00:00Z'); // a Monday
const HOUR = 3_600_000;

function parsed(input: { from?: string; to?: string; timeZone?: string }): WindowRequest {
  const result = parseWindowRequest(input);
  if (!result.ok) throw new Error(result.message);
  return result.value;
}

describe('parseWindowRequest', () => {
  it('reads instants with an offset or Z', () => {
    expect(parsed({ from: '2026-12-01T09:00:00+01:00' }).from).toEqual({ kind: 'instant', ms: Date.parse('2026-12-01T08:00:00Z') });
    expect(parsed({ from: '2026-12-01T09:00Z' }).from).toEqual({ kind: 'instant', ms: Date.parse('2026-12-01T09:00:00Z') });
    expect(parsed({ from: '2026-12-01T09:00:00.250-05:00' }).from).toEqual({ kind: 'instant', ms: Date.parse('2026-12-01T14:00:00.250Z') });
  });

  it('reads dates and date-times without an offset as wall-clock times', () => {
    expect(parsed({ from: '2026-12-01' }).from).toMatchObject({ kind: 'wallClock', year: 2026, month: 12, day: 1, dateOnly: true });
    expect(parsed({ to: '2026-12-01T13:30' }).to).toMatchObject({ kind: 'wallClock', hour: 13, minute: 30, dateOnly: false });
  });

  it.each([
    ['tomorrow'],
    ['2026-13-01'],
    ['2026-02-30'],
    ['2026-12-01T25:00'],
    ['12/01/2026'],
    ['2026-12-01T09:00+0100x'],
    ['2026-12-01 09:00'],
  ])('refuses %s with a message naming the field', (from) => {
    const result = parseWindowRequest({ from });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.message).toMatch(/"from" must be an ISO 8601/);
  });

  it('refuses an unknown time zone and an inverted window', () => {
    const zone = parseWindowRequest({ timeZone: 'Mars/Olympus_Mons' });
    expect(!zone.ok && zone.message).toMatch(/not an IANA time zone/);
    const inverted = parseWindowRequest({ from: '2026-12-02T00:00Z', to: '2026-12-01T00:00Z' });
    expect(!inverted.ok && inverted.message).toMatch(/"to" must be later than "from"/);
  });

  // Found in review: two wall-clock bounds were compared only once the calendar had answered.
  it.each([
    ['2026-12-07T10:00', '2026-12-07T09:00'],
    ['2026-12-07T10:00', '2026-12-07T10:00'],
    ['2026-12-08', '2026-12-07'],
    ['2026-12-08T00:00', '2026-12-07'], // a date-only `to` is the end of its day: 8 Dec 00:00, not later
  ])('refuses wall-clock bounds from %s to %s, which no zone could make valid', (from, to) => {
    const inverted = parseWindowRequest({ from, to });
    expect(!inverted.ok && inverted.message).toBe('"to" must be later than "from".');
  });

  it('takes wall-clock bounds in order, a date-only `to` as the end of its day', () => {
    expect(parseWindowRequest({ from: '2026-12-07T23:00', to: '2026-12-07' }).ok).toBe(true);
    expect(parseWindowRequest({ from: '2026-12-07', to: '2026-12-07' }).ok).toBe(true);
  });

  // Found in review: Intl takes any capitalisation, and answers named the zone as typed (`europe/berlin`).
  it('keeps the time zone as the database spells it', () => {
    expect(parsed({ timeZone: 'europe/berlin' }).timeZone).toBe('Europe/Berlin');
    expect(parsed({ timeZone: 'utc' }).timeZone).toBe('UTC');
    expect(parsed({ timeZone: 'America/New_York' }).timeZone).toBe('America/New_York');
    expect(parsed({ timeZone: 'asia/calcutta' }).timeZone).toBe('Asia/Calcutta');
  });

  // Found in review of the first version: Intl resolves some current names to their older links, and the answer
  // turned the user's Asia/Kolkata into Asia/Calcutta.
  it('never turns a zone into another name for it', () => {
    for (const zone of ['Asia/Kolkata', 'Europe/Kyiv', 'America/Nuuk', 'Etc/UTC', 'US/Eastern', 'GMT']) expect(parsed({ timeZone: zone }).timeZone, zone).toBe(zone);
  });
});

describe('searchWindow', () => {
  it('defaults to now and the next 7 days', () => {
    expect(searchWindow(parsed({}), 'Europe/Berlin', NOW)).toEqual({ ok: true, value: { start: NOW, end: NOW + DEFAULT_WINDOW_MS } });
  });

  it('reads wall-clock bounds in the zone, a date-only end as the end of that day', () => {
    const window = searchWindow(parsed({ from: '2026-12-01', to: '2026-12-01' }), 'Europe/Berlin', NOW);
    expect(window).toEqual({ ok: true, value: { start: Date.parse('2026-11-30T23:00:00Z'), end: Date.parse('2026-12-01T23:00:00Z') } });
  });

  it('starts a window that began in the past now, and refuses one that has ended', () => {
    expect(searchWindow(parsed({ from: '2026-11-01T00:00Z', to: '2026-12-01T00:00Z' }), 'UTC', NOW)).toEqual({
      ok: true,
      value: { start: NOW, end: Date.parse('2026-12-01T00:00:00Z') },
    });
    const passed = searchWindow(parsed({ from: '2026-11-01T00:00Z', to: '2026-11-02T00:00Z' }), 'UTC', NOW);
    expect(!passed.ok && passed.message).toMatch(/already passed/);
  });

  it('refuses a window longer than the maximum', () => {
    const long = searchWindow(parsed({ from: '2026-12-01', to: '2027-12-01' }), 'UTC', NOW);
    expect(!long.ok && long.message).toMatch(/longer than 62 days/);
  });
});

describe('coveringWindow', () => {
  it('is exact when the zone is given or the bounds are instants', () => {
    expect(coveringWindow(parsed({ timeZone: 'Asia/Tokyo', from: '2026-12-01' }), NOW)).toEqual({
      ok: true,
      value: { start: Date.parse('2026-11-30T15:00:00Z'), end: Date.parse('2026-11-30T15:00:00Z') + DEFAULT_WINDOW_MS },
    });
    expect(coveringWindow(parsed({}), NOW)).toEqual({ ok: true, value: { start: NOW, end: NOW + DEFAULT_WINDOW_MS } });
  });

  it('covers wall-clock bounds in every zone when the zone is not known yet', () => {
    const request = parsed({ from: '2026-12-01T09:00', to: '2026-12-01T17:00' });
    const covering = coveringWindow(request, NOW);
    expect(covering.ok).toBe(true);
    for (const zone of ['Pacific/Kiritimati', 'Etc/GMT+12', 'Europe/Berlin', 'America/Los_Angeles']) {
      const exact = searchWindow(request, zone, NOW);
      expect(exact.ok).toBe(true);
      if (covering.ok && exact.ok) {
        expect(covering.value.start).toBeLessThanOrEqual(exact.value.start);
        expect(covering.value.end).toBeGreaterThanOrEqual(exact.value.end);
        expect(covering.value.end - covering.value.start).toBeLessThanOrEqual(8 * HOUR + 28 * HOUR);
      }
    }
  });
});
