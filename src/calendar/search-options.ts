// The limits and readers of a slot search's options as people type them, in
// find-slot's options and in find_slot's parameters alike: spans (`within`,
// `step`, the buffers, `minNotice`) in the duration syntax, working hours in
// their short form, how many slots and calendars one search may ask for. The
// CLI checks its options with these before anything leaves the terminal, and
// the agent checks the tool's input with the same. Pure, and light: no ICS code.
import { parseDuration } from './duration.js';
import { CalendarError } from './errors.js';
import type { WorkingHours } from './slots.js';
import { parseWorkingHours } from './working-hours.js';
import { DAY_MS, MINUTE_MS } from './zone.js';

/** The longest slot: a slot lies inside one working day, so a longer duration is a mistake, not a search. */
export const MAX_SLOT_DURATION_MS = DAY_MS;

/** How many slots one search may ask for. */
export const MAX_LIMIT = 100;
/** How many calendars one search may name. */
export const MAX_CALENDARS = 20;

/** The spans a search may give, with the longest each may be. */
export const SPAN_LIMITS = {
  within: 62 * DAY_MS,
  step: DAY_MS,
  bufferBefore: DAY_MS,
  bufferAfter: DAY_MS,
  minNotice: 62 * DAY_MS,
} as const;
export type SpanField = keyof typeof SPAN_LIMITS;

export type Checked<T> = { ok: true; value: T } | { ok: false; message: string };

/** A slot's length in ms (`duration`), or the duration parser's own message (it says what was wrong and what to write). */
export function readSlotDuration(text: string): Checked<number> {
  try {
    return { ok: true, value: parseDuration(text, { maxMs: MAX_SLOT_DURATION_MS }) };
  } catch (err) {
    if (err instanceof CalendarError) return { ok: false, message: err.message };
    throw err;
  }
}

/** A span in ms, or a message naming the option and what to write. */
export function readSpan(field: SpanField, text: string): Checked<number> {
  try {
    const ms = parseDuration(text, { maxMs: SPAN_LIMITS[field] });
    if (field === 'step' && ms % MINUTE_MS !== 0) return { ok: false, message: `"${field}" must be whole minutes, such as 15m.` };
    return { ok: true, value: ms };
  } catch (err) {
    if (err instanceof CalendarError) return { ok: false, message: `"${field}": ${err.message}` };
    throw err;
  }
}

/** Working hours as written for one search, or a message saying how to write them. */
export function readWorkingHoursOption(text: string): Checked<WorkingHours> {
  try {
    return { ok: true, value: parseWorkingHours(text) };
  } catch (err) {
    if (err instanceof CalendarError) return { ok: false, message: err.message };
    throw err;
  }
}
