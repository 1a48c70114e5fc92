import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/calendar/duration.js';
import { DurationError } from '../../src/calendar/errors.js';

const MIN = 60_000;

describe('parseDuration', () => {
  it.each([
    ['30m', 30 * MIN],
    ['1h30m', 90 * MIN],
    ['1h 30m', 90 * MIN],
    ['2h', 120 * MIN],
    ['90s', 90_000],
    ['1d', 24 * 60 * MIN],
    ['1w', 7 * 24 * 60 * MIN],
    ['1H30M', 90 * MIN],
    ['  45m ', 45 * MIN],
    ['45', 45 * MIN],
    ['PT45M', 45 * MIN],
    ['PT1H30M', 90 * MIN],
    ['pt1h', 60 * MIN],
    ['PT90S', 90_000],
    ['P1D', 24 * 60 * MIN],
    ['P1DT2H', 26 * 60 * MIN],
    ['P2W', 14 * 24 * 60 * MIN],
  ])('reads %j', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([
    ['', 'ERR_DURATION_EMPTY'],
    ['   ', 'ERR_DURATION_EMPTY'],
    ['0', 'ERR_DURATION_ZERO'],
    ['0m', 'ERR_DURATION_ZERO'],
    ['PT0M', 'ERR_DURATION_ZERO'],
    ['-30m', 'ERR_DURATION_SYNTAX'],
    ['1.5h', 'ERR_DURATION_SYNTAX'],
    ['30x', 'ERR_DURATION_SYNTAX'],
    ['m', 'ERR_DURATION_SYNTAX'],
    ['30m1h', 'ERR_DURATION_SYNTAX'],
    ['1h1h', 'ERR_DURATION_SYNTAX'],
    ['P', 'ERR_DURATION_SYNTAX'],
    ['PT', 'ERR_DURATION_SYNTAX'],
    ['P1DT', 'ERR_DURATION_SYNTAX'],
    ['P1M', 'ERR_DURATION_SYNTAX'],
    ['P1Y', 'ERR_DURATION_SYNTAX'],
    ['PT45', 'ERR_DURATION_SYNTAX'],
    ['thirty minutes', 'ERR_DURATION_SYNTAX'],
    ['400d', 'ERR_DURATION_TOO_LONG'],
    ['99999999999999999999h', 'ERR_DURATION_SYNTAX'],
  ])('refuses %j with %s', (input, code) => {
    let caught: unknown;
    try {
      parseDuration(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DurationError);
    expect((caught as DurationError).code).toBe(code);
    expect((caught as DurationError).input).toBe(input);
  });

  it('honours a caller maximum', () => {
    expect(parseDuration('24h', { maxMs: 24 * 60 * MIN })).toBe(24 * 60 * MIN);
    expect(() => parseDuration('25h', { maxMs: 24 * 60 * MIN })).toThrow(DurationError);
  });
});

describe('formatDuration', () => {
  it.each([
    [30 * MIN, '30m'],
    [90 * MIN, '1h30m'],
    [26 * 60 * MIN, '1d2h'],
    [45_000, '45s'],
  ])('writes %d ms as %s and reads it back', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
    expect(parseDuration(text)).toBe(ms);
  });
});
