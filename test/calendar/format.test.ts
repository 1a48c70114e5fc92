import { describe, expect, it } from 'vitest';
import { formatSlotHuman, parseIsoInstant, toUtcIso, toZonedIso } from '../../src/calendar/format.js';

const utc = Date.UTC;
const MIN = 60_000;

describe('formatSlotHuman', () => {
  it('writes the issue’s example', () => {
    const start = utc(2026, 11, 1, 10, 45);
    expect(formatSlotHuman({ start, end: start + 30 * MIN }, 'Europe/Berlin')).toBe('Tue 1 Dec 2026, 11:45–12:15 (Europe/Berlin)');
  });
  it('names both dates when the slot crosses midnight', () => {
    const start = utc(2026, 11, 1, 22, 45);
    expect(formatSlotHuman({ start, end: start + 30 * MIN }, 'Europe/Berlin')).toBe(
      'Tue 1 Dec 2026, 23:45 – Wed 2 Dec 2026, 00:15 (Europe/Berlin)',
    );
  });
  it('keeps a slot that ends at midnight on its day', () => {
    const start = utc(2026, 11, 1, 22, 30);
    expect(formatSlotHuman({ start, end: start + 30 * MIN }, 'Europe/Berlin')).toBe('Tue 1 Dec 2026, 23:30–00:00 (Europe/Berlin)');
  });
  it('writes a whole day as 00:00–24:00, not 00:00–00:00, on a day of 23 hours too (found in review, s34privacy)', () => {
    expect(formatSlotHuman({ start: utc(2026, 11, 10), end: utc(2026, 11, 11) }, 'UTC')).toBe('Thu 10 Dec 2026, 00:00–24:00 (UTC)');
    // 29 March 2026 in Berlin: 00:00 CET to 00:00 CEST the next day is 23 hours.
    expect(formatSlotHuman({ start: utc(2026, 2, 28, 23), end: utc(2026, 2, 29, 22) }, 'Europe/Berlin')).toBe('Sun 29 Mar 2026, 00:00–24:00 (Europe/Berlin)');
    // Two whole days name both dates, as before.
    expect(formatSlotHuman({ start: utc(2026, 11, 10), end: utc(2026, 11, 12) }, 'UTC')).toBe('Thu 10 Dec 2026, 00:00 – Sat 12 Dec 2026, 00:00 (UTC)');
  });
  it('reads the clock of the zone asked for', () => {
    const start = utc(2026, 11, 1, 10, 45);
    expect(formatSlotHuman({ start, end: start + 30 * MIN }, 'America/New_York')).toBe('Tue 1 Dec 2026, 05:45–06:15 (America/New_York)');
  });
});

describe('toZonedIso and toUtcIso', () => {
  it('writes the zone’s offset at that instant', () => {
    expect(toZonedIso(utc(2026, 11, 1, 10, 45), 'Europe/Berlin')).toBe('2026-12-01T11:45:00+01:00');
    expect(toZonedIso(utc(2026, 6, 1, 10, 45), 'Europe/Berlin')).toBe('2026-07-01T12:45:00+02:00');
    expect(toZonedIso(utc(2026, 6, 1, 10, 45), 'America/New_York')).toBe('2026-07-01T06:45:00-04:00');
    expect(toZonedIso(utc(2026, 6, 1, 10, 45), 'Asia/Kolkata')).toBe('2026-07-01T16:15:00+05:30');
    expect(toZonedIso(utc(2026, 6, 1, 10, 45), 'UTC')).toBe('2026-07-01T10:45:00+00:00');
  });
  it('round-trips through Date.parse and parseIsoInstant', () => {
    const ms = utc(2026, 2, 29, 0, 59, 59, 250);
    for (const zone of ['Europe/Berlin', 'Australia/Sydney', 'America/New_York', 'UTC']) {
      expect(Date.parse(toZonedIso(ms, zone))).toBe(ms);
      expect(parseIsoInstant(toZonedIso(ms, zone))).toBe(ms);
    }
    expect(toUtcIso(utc(2026, 11, 1, 10, 45))).toBe('2026-12-01T10:45:00Z');
    expect(toUtcIso(ms)).toBe('2026-03-29T00:59:59.250Z');
  });
});

describe('parseIsoInstant', () => {
  it.each([
    ['2026-12-01T10:45:00Z', utc(2026, 11, 1, 10, 45)],
    ['2026-12-01T11:45:00+01:00', utc(2026, 11, 1, 10, 45)],
    ['2026-12-01T11:45+01:00', utc(2026, 11, 1, 10, 45)],
    ['2026-12-01T10:45:00.123Z', utc(2026, 11, 1, 10, 45, 0, 123)],
    ['2026-12-01t10:45:00z', utc(2026, 11, 1, 10, 45)],
  ])('reads %s', (text, ms) => {
    expect(parseIsoInstant(text)).toBe(ms);
  });
  it.each(['2026-12-01', '2026-12-01T10:45:00', '2026-02-30T10:00:00Z', '2026-12-01T24:00:00Z', 'tomorrow', '1764585900000', '2026-12-01T10:45:00+25:00'])(
    'refuses %s',
    (text) => {
      expect(parseIsoInstant(text)).toBeUndefined();
    },
  );
});
