// The memo tables that callers' input can fill stay bounded (issue 6, load):
// the generic BoundedMap, the zone-name check and the per-zone formatters,
// fed far more distinct keys than they may hold. A time-zone name is chosen
// by whoever calls find_slot, and Intl accepts any capitalisation of it, so
// without a bound each new spelling would stay in memory for good.
import { describe, expect, it } from 'vitest';
import { BoundedMap } from '../src/bounded-map.js';
import { checkedZoneCount, isIanaZone } from '../src/config.js';
import { utcOffsetAt, zoneFormatterCount } from '../src/calendar/zone.js';

/** The n-th capitalisation of "europe/berlin" (12 letters: 4096 spellings, every one a valid zone to Intl). */
function spelling(n: number): string {
  let bit = 0;
  return [...'europe/berlin'].map((c) => (/[a-z]/.test(c) && (n >> bit++) & 1 ? c.toUpperCase() : c)).join('');
}

describe('BoundedMap', () => {
  it('keeps at most its capacity, forgetting the least recently used first', () => {
    const map = new BoundedMap<string, number>(3);
    map.set('a', 1);
    map.set('b', 2);
    map.set('c', 3);
    expect(map.get('a')).toBe(1); // a is now the most recently used
    map.set('d', 4);
    expect(map.size).toBe(3);
    expect(map.get('b')).toBeUndefined();
    expect([map.get('a'), map.get('c'), map.get('d')]).toEqual([1, 3, 4]);
    for (let i = 0; i < 1000; i++) map.set(`k${i}`, i);
    expect(map.size).toBe(3);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError);
    expect(() => new BoundedMap(1.5)).toThrow(RangeError);
  });
});

describe('time-zone memo tables under many spellings', () => {
  it('isIanaZone answers every spelling and remembers at most 1,000 names', () => {
    for (let n = 0; n < 1_500; n++) expect(isIanaZone(spelling(n))).toBe(true);
    for (let n = 0; n < 300; n++) expect(isIanaZone(`Nowhere/Place${n}`)).toBe(false);
    expect(checkedZoneCount()).toBeLessThanOrEqual(1_000);
    expect(checkedZoneCount()).toBeGreaterThan(900);
  });

  it('utcOffsetAt keeps at most 256 formatters, and evicted zones still give the right offset', () => {
    const summer = Date.UTC(2026, 6, 1, 12);
    for (let n = 0; n < 600; n++) expect(utcOffsetAt(summer, spelling(n))).toBe(2 * 3_600_000);
    expect(zoneFormatterCount()).toBeLessThanOrEqual(256);
    expect(utcOffsetAt(summer, spelling(0))).toBe(2 * 3_600_000);
  });
});
