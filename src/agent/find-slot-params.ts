// find_slot's search options besides the duration and the window bounds (issue 4),
// the same as find-slot's command-line options: `within`, `workingHours`,
// `step`, `bufferBefore`/`bufferAfter`, `minNotice`, `limit`, `calendars`,
// `tentative` and `onCalendarError`. Their schema for MCP clients, and their
// reading into milliseconds and checked values with the readers the CLI uses
// too (src/calendar/search-options.ts), so a value the agent would refuse
// never leaves the terminal. Pure.
import { z } from 'zod';
import type { CalendarErrorMode, TentativeMode } from '../calendar/freebusy-query.js';
import { MAX_CALENDARS, MAX_LIMIT, readSpan, readWorkingHoursOption, type SpanField } from '../calendar/search-options.js';
import type { WorkingHours } from '../calendar/slots.js';
import type { Parsed } from '../calendar/window.js';

/**
 * A span as MCP clients send it: text in the duration syntax (src/calendar/duration.ts), or a whole number of
 * minutes, as the text `45` is read. Found in review (s31mcp): `{"duration": 30}` was refused by the input schema
 * ("expected string, received number") while `"45"` was taken and the tool's own message invited `45 (minutes)`.
 */
export const minutesOrText = (maxLength: number) => z.union([z.string().min(1).max(maxLength), z.number().int().positive()]);

/**
 * A span given as a number of minutes, as the text the duration readers take (`30` is `"30m"`, 30 minutes): with its
 * unit, so that a message quoting it back reads as what was meant (found in review, s31fix: `{"duration": 1441}` was
 * told `"1441" is longer than 1d.`).
 */
export const spanText = (value: string | number): string => {
  if (typeof value !== 'number') return value;
  // Past what milliseconds hold exactly, the bare number: its reader says "longer than", where `…m`'s says "not a
  // duration" (found in review, s31fix2: {"duration": 200000000000} was told to write a number of minutes).
  return Number.isSafeInteger(value * 60_000) ? `${value}m` : String(value);
};

const span = (what: string) =>
  minutesOrText(32)
    .optional()
    .describe(`${what} Written like the duration: 15m, 1h30m, 2d, ISO 8601 (PT15M), or a whole number of minutes (15).`);

export const slotOptionsInputShape = {
  within: span('Search from the start of the window (from, default now) for this long, instead of giving `to`, e.g. 3d.'),
  workingHours: z
    .string()
    .min(1)
    .max(300)
    .optional()
    .describe(
      'Working hours in the search time zone for this call, e.g. "mon-fri 09:00-17:00" or "mon-thu 08:00-12:00,13:00-17:00; fri 08:00-12:00". ' +
        "Default: the user's configured hours, else Monday to Friday 09:00-17:00.",
    ),
  step: span('Slot starts fall on multiples of this after midnight (default 15m).'),
  bufferBefore: span('Free time to keep before the slot (default none).'),
  bufferAfter: span('Free time to keep after the slot (default none).'),
  minNotice: span('No slot starts sooner than this after now (default none).'),
  limit: z.number().int().min(1).max(MAX_LIMIT).optional().describe('How many slots to return, earliest first (default 5).'),
  calendars: z
    .array(z.string().min(1).max(200))
    .max(MAX_CALENDARS)
    .optional()
    .describe("Count only these of the user's calendars, by name (default: all of them)."),
  tentative: z.enum(['busy', 'free']).optional().describe('Whether tentative events count as busy (default busy).'),
  onCalendarError: z
    .enum(['fail', 'skip'])
    .optional()
    .describe('A calendar that cannot be read: fail the search (default) or leave it out and say so.'),
};

export type SlotOptionsInput = z.infer<z.ZodObject<typeof slotOptionsInputShape>>;

/** The options read and checked: spans in ms. */
export interface SlotOptions {
  withinMs?: number;
  workingHours?: WorkingHours;
  stepMs?: number;
  bufferBeforeMs: number;
  bufferAfterMs: number;
  minNoticeMs: number;
  limit?: number;
  calendars?: string[];
  tentative?: TentativeMode;
  onCalendarError?: CalendarErrorMode;
}

export function readSlotOptions(input: SlotOptionsInput & { to?: string | undefined }): Parsed<SlotOptions> {
  if (input.within !== undefined && input.to !== undefined) return { ok: false, message: 'Give either "to" or "within", not both.' };
  const options: SlotOptions = { bufferBeforeMs: 0, bufferAfterMs: 0, minNoticeMs: 0 };
  const spans: Array<[SpanField, 'withinMs' | 'stepMs' | 'bufferBeforeMs' | 'bufferAfterMs' | 'minNoticeMs']> = [
    ['within', 'withinMs'],
    ['step', 'stepMs'],
    ['bufferBefore', 'bufferBeforeMs'],
    ['bufferAfter', 'bufferAfterMs'],
    ['minNotice', 'minNoticeMs'],
  ];
  for (const [field, key] of spans) {
    const text = input[field];
    if (text === undefined) continue;
    const read = readSpan(field, spanText(text));
    if (!read.ok) return read;
    options[key] = read.value;
  }
  if (input.workingHours !== undefined) {
    const hours = readWorkingHoursOption(input.workingHours);
    if (!hours.ok) return hours;
    options.workingHours = hours.value;
  }
  if (input.limit !== undefined) options.limit = input.limit;
  if (input.calendars !== undefined) {
    const names = [...new Set(input.calendars.map((c) => c.trim()))];
    if (names.some((n) => n === '')) return { ok: false, message: 'A calendar name is empty.' };
    options.calendars = names;
  }
  if (input.tentative !== undefined) options.tentative = input.tentative;
  if (input.onCalendarError !== undefined) options.onCalendarError = input.onCalendarError;
  return { ok: true, value: options };
}
