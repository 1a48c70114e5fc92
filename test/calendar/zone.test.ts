import { describe, expect, it } from 'vitest';
import { fromWall, instantsAtWall, offsetSegments, toWall, utcOffsetAt } from '../../src/calendar/zone.js';
import { ianaZoneForTzid, WINDOWS_ZONE_IDS } from '../../src/calendar/zone-names.js';
import { isIanaZone } from '../../src/config.js';

const H = 3_600_000;
const utc = Date.UTC;

describe('utcOffsetAt and toWall', () => {
  it('knows summer and winter offsets in both hemispheres', () => {
    expect(utcOffsetAt(utc(2026, 0, 15), 'Europe/Berlin')).toBe(1 * H);
    expect(utcOffsetAt(utc(2026, 6, 15), 'Europe/Berlin')).toBe(2 * H);
    expect(utcOffsetAt(utc(2026, 0, 15), 'Australia/Sydney')).toBe(11 * H);
    expect(utcOffsetAt(utc(2026, 6, 15), 'Australia/Sydney')).toBe(10 * H);
    expect(utcOffsetAt(utc(2026, 6, 15), 'Asia/Kolkata')).toBe(5.5 * H);
    expect(toWall(utc(2026, 11, 1, 10, 45), 'Europe/Berlin')).toBe(utc(2026, 11, 1, 11, 45));
  });
});

describe('fromWall (RFC 5545 §3.3.5)', () => {
  it('reads an ordinary wall time', () => {
    expect(fromWall(utc(2026, 11, 1, 11, 45), 'Europe/Berlin')).toBe(utc(2026, 11, 1, 10, 45));
  });
  it('reads a time in a spring-forward gap with the offset before the gap', () => {
    // Berlin, 29 March 2026: 02:00 CET jumps to 03:00 CEST. 02:30 is read as 02:30+01:00 = 03:30 CEST.
    expect(instantsAtWall(utc(2026, 2, 29, 2, 30), 'Europe/Berlin')).toEqual([]);
    expect(fromWall(utc(2026, 2, 29, 2, 30), 'Europe/Berlin')).toBe(utc(2026, 2, 29, 1, 30));
    // New York, 8 March 2026, 02:30 does not exist: 02:30-05:00 = 07:30Z (03:30 EDT).
    expect(fromWall(utc(2026, 2, 8, 2, 30), 'America/New_York')).toBe(utc(2026, 2, 8, 7, 30));
  });
  it('reads a time in a fall-back overlap as the first of the two', () => {
    // Berlin, 25 October 2026: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice.
    expect(instantsAtWall(utc(2026, 9, 25, 2, 30), 'Europe/Berlin')).toEqual([utc(2026, 9, 25, 0, 30), utc(2026, 9, 25, 1, 30)]);
    expect(fromWall(utc(2026, 9, 25, 2, 30), 'Europe/Berlin')).toBe(utc(2026, 9, 25, 0, 30));
    // Sydney, 5 April 2026: 03:00 AEDT falls back to 02:00 AEST.
    expect(fromWall(utc(2026, 3, 5, 2, 30), 'Australia/Sydney')).toBe(utc(2026, 3, 4, 15, 30));
  });
});

describe('offsetSegments', () => {
  it('splits a span at each DST change, to the millisecond', () => {
    const segments = offsetSegments('Europe/Berlin', utc(2026, 2, 28), utc(2026, 9, 30));
    expect(segments).toEqual([
      { start: utc(2026, 2, 28), end: utc(2026, 2, 29, 1), offset: 1 * H },
      { start: utc(2026, 2, 29, 1), end: utc(2026, 9, 25, 1), offset: 2 * H },
      { start: utc(2026, 9, 25, 1), end: utc(2026, 9, 30), offset: 1 * H },
    ]);
  });
  it('finds Lord Howe’s half-hour change', () => {
    const segments = offsetSegments('Australia/Lord_Howe', utc(2026, 3, 1), utc(2026, 3, 10));
    expect(segments.map((s) => s.offset)).toEqual([11 * H, 10.5 * H]);
    expect(segments[0]!.end).toBe(utc(2026, 3, 4, 15)); // 02:00 LHDT
  });
  it('is one segment for UTC', () => {
    expect(offsetSegments('UTC', 0, 1e10)).toEqual([{ start: 0, end: 1e10, offset: 0 }]);
  });
});

describe('ianaZoneForTzid', () => {
  it('takes IANA names, Windows names and prefixed names', () => {
    expect(ianaZoneForTzid('America/New_York')).toBe('America/New_York');
    expect(ianaZoneForTzid('W. Europe Standard Time')).toBe('Europe/Berlin');
    expect(ianaZoneForTzid('AUS Eastern Standard Time')).toBe('Australia/Sydney');
    expect(ianaZoneForTzid('/mozilla.org/20050126_1/Europe/Berlin')).toBe('Europe/Berlin');
    expect(ianaZoneForTzid('Canberra, Melbourne, Sydney')).toBeUndefined();
    expect(ianaZoneForTzid('Mars/Olympus_Mons')).toBeUndefined();
  });
  it.each(['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf'])('knows no zone named %s (the Windows table has no prototype)', (tzid) => {
    expect(ianaZoneForTzid(tzid)).toBeUndefined();
  });
  it('maps every Windows zone it knows to a zone this runtime has', () => {
    expect(WINDOWS_ZONE_IDS.length).toBeGreaterThan(100);
    for (const id of WINDOWS_ZONE_IDS) expect([id, isIanaZone(ianaZoneForTzid(id) ?? '')]).toEqual([id, true]);
  });
});
