// Durations as people and MCP clients write them (`30m`, `1h30m`, `45`,
// `PT1H30M`), read into milliseconds, and written back in the short form.
// Pure: no I/O.
//
// Accepted, case-insensitive, surrounding spaces ignored:
// - units in descending order, each at most once, optionally space-separated:
//   `w` (7 days), `d` (24 hours), `h`, `m` (minutes), `s`: `30m`, `1h30m`, `1h 30m`, `2d`;
// - a bare whole number, read as minutes: `45` is 45 minutes (a meeting's
//   length is said in minutes; seconds are never what someone means);
// - ISO 8601 durations without years or months (whose length varies):
//   `PT45M`, `PT1H30M`, `P1D`, `P1DT2H`, `P2W`.
// Numbers are whole. A day is 24 hours here: this is an amount of elapsed time,
// not a calendar step.
import { DurationError } from './errors.js';
import { DAY_MS, HOUR_MS, MINUTE_MS } from './zone.js';

/** The longest duration accepted unless the caller says otherwise: 366 days. */
export const MAX_DURATION_MS = 366 * DAY_MS;

export interface ParseDurationOptions {
  /** The longest duration to accept, in ms (default MAX_DURATION_MS). */
  maxMs?: number;
}

const UNIT_MS = { w: 7 * DAY_MS, d: DAY_MS, h: HOUR_MS, m: MINUTE_MS, s: 1000 } as const;

const SHORT = /^(?:(\d+)\s*w)?\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?$/i;
const BARE_MINUTES = /^\d+$/;
const ISO = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/i;

/** Milliseconds in a duration such as `30m`, `1h30m`, `45` or `PT45M`; throws DurationError. */
export function parseDuration(input: string, options: ParseDurationOptions = {}): number {
  const text = input.trim();
  if (text === '') throw new DurationError('ERR_DURATION_EMPTY', input, 'No duration was given.');
  const ms = BARE_MINUTES.test(text) ? Number(text) * MINUTE_MS : unitsOf(text);
  if (ms === undefined) {
    throw new DurationError(
      'ERR_DURATION_SYNTAX',
      input,
      `"${input}" is not a duration; write for example 30m, 1h30m, 45 (minutes) or PT45M.`,
    );
  }
  if (ms === 0) throw new DurationError('ERR_DURATION_ZERO', input, 'The duration must be longer than zero.');
  const max = options.maxMs ?? MAX_DURATION_MS;
  if (ms > max) {
    throw new DurationError('ERR_DURATION_TOO_LONG', input, `"${input}" is longer than ${formatDuration(max)}.`);
  }
  return ms;
}

function unitsOf(text: string): number | undefined {
  const iso = ISO.exec(text);
  // "P" and "PT" alone match the pattern with no components: not a duration.
  const match = iso && /\d/.test(text) && !/T$/i.test(text) ? iso : SHORT.exec(text);
  if (!match || !/\d/.test(text)) return undefined;
  const [, w, d, h, m, s] = match;
  const parts: Array<[string | undefined, number]> = [
    [w, UNIT_MS.w],
    [d, UNIT_MS.d],
    [h, UNIT_MS.h],
    [m, UNIT_MS.m],
    [s, UNIT_MS.s],
  ];
  let total = 0;
  for (const [digits, unit] of parts) if (digits !== undefined) total += Number(digits) * unit;
  return Number.isSafeInteger(total) ? total : undefined;
}

/** The short form of a duration: 90 minutes is `1h30m`, 45 seconds `45s`; round trips through parseDuration. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '0m';
  let rest = Math.round(ms / 1000) * 1000;
  let out = '';
  for (const [unit, size] of [
    ['d', UNIT_MS.d],
    ['h', UNIT_MS.h],
    ['m', UNIT_MS.m],
    ['s', UNIT_MS.s],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out || '0m';
}
