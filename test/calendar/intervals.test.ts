import { describe, expect, it } from 'vitest';
import { clipIntervals, mergeIntervals, overlaps, subtractIntervals } from '../../src/calendar/intervals.js';

const iv = (start: number, end: number) => ({ start, end });

describe('mergeIntervals', () => {
  it('sorts, joins overlapping and touching intervals, drops empty ones', () => {
    expect(mergeIntervals([iv(10, 12), iv(1, 3), iv(2, 5), iv(5, 6), iv(8, 8), iv(9, 7)])).toEqual([iv(1, 6), iv(10, 12)]);
  });
  it('keeps a contained interval inside its container and does not mutate its input', () => {
    const input = [iv(1, 10), iv(2, 3)];
    expect(mergeIntervals(input)).toEqual([iv(1, 10)]);
    expect(input).toEqual([iv(1, 10), iv(2, 3)]);
  });
});

describe('subtractIntervals', () => {
  it('cuts holes and keeps what is left', () => {
    expect(subtractIntervals([iv(0, 10), iv(20, 30)], [iv(2, 4), iv(8, 22), iv(29, 40)])).toEqual([iv(0, 2), iv(4, 8), iv(22, 29)]);
  });
  it('leaves nothing when a hole covers everything', () => {
    expect(subtractIntervals([iv(5, 6)], [iv(0, 10)])).toEqual([]);
  });
});

describe('clipIntervals and overlaps', () => {
  it('clips to a half-open window', () => {
    expect(clipIntervals([iv(0, 5), iv(8, 12), iv(12, 20)], iv(3, 15))).toEqual([iv(3, 5), iv(8, 15)]);
  });
  it('treats touching intervals as not overlapping', () => {
    expect(overlaps(iv(0, 5), iv(5, 6))).toBe(false);
    expect(overlaps(iv(0, 5), iv(4, 6))).toBe(true);
  });
});
