// find-slot's search options (issue 4), the same as find_slot's parameters:
// registered on the command, checked as the agent will check them (a bad
// value is a usage error, exit 2, before anything leaves the terminal), and
// handed on as the tool's arguments. Light: loads no agent or ICS code.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { MAX_CALENDARS, MAX_LIMIT, readSpan, readWorkingHoursOption, type SpanField } from '../calendar/search-options.js';
import type { SlotSearchArgs } from '../client/session.js';

/** The options as commander hands them over. */
export interface SlotSearchOptions {
  within?: string;
  workingHours?: string;
  step?: string;
  bufferBefore?: string;
  bufferAfter?: string;
  minNotice?: string;
  limit?: number;
  calendar?: string[];
  tentative?: 'busy' | 'free';
  onCalendarError?: 'fail' | 'skip';
}

/** The same, as find_slot's arguments. */
export type { SlotSearchArgs };

const span = (field: SpanField) => (value: string) => {
  const read = readSpan(field, value);
  if (!read.ok) throw new InvalidArgumentError(read.message);
  return value.trim();
};

function workingHours(value: string): string {
  const read = readWorkingHoursOption(value);
  if (!read.ok) throw new InvalidArgumentError(read.message);
  return value.trim();
}

function limit(value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw new InvalidArgumentError(`Expected a whole number from 1 to ${MAX_LIMIT}.`);
  return n;
}

/** A repeatable --calendar (find-slot's and busy's): names collected, none empty, at most MAX_CALENDARS. */
export function calendarOption(value: string, previous: string[] = []): string[] {
  const name = value.trim();
  if (name === '') throw new InvalidArgumentError('A calendar name may not be empty.');
  if (previous.length >= MAX_CALENDARS) throw new InvalidArgumentError(`At most ${MAX_CALENDARS} calendars.`);
  return previous.includes(name) ? previous : [...previous, name];
}

/** Adds the search options to find-slot. */
export function addSlotSearchOptions(command: Command): Command {
  return command
    .addOption(new Option('--within <span>', 'search this long from the start instead of up to --to: 3d, 36h').argParser(span('within')).conflicts('to'))
    .option(
      '--working-hours <hours>',
      'working hours for this search, in the search zone: "mon-fri 09:00-17:00", "mon-thu 08:00-12:00,13:00-17:00; fri 08:00-12:00" (default: config.json, else mon-fri 09:00-17:00)',
      workingHours,
    )
    .option('--step <span>', 'slot starts fall on multiples of this after midnight (default 15m)', span('step'))
    .option('--buffer-before <span>', 'free time to keep before the slot, e.g. 10m', span('bufferBefore'))
    .option('--buffer-after <span>', 'free time to keep after the slot, e.g. 10m', span('bufferAfter'))
    .option('--min-notice <span>', 'no slot starts sooner than this from now, e.g. 2h', span('minNotice'))
    .option('--limit <n>', `print up to N slots, earliest first (1–${MAX_LIMIT}); with --json, a JSON array`, limit)
    .option('--calendar <name>', 'count only this calendar (repeat for several; default all)', calendarOption)
    .addOption(new Option('--tentative <busy|free>', 'whether tentative events count as busy (default busy, or config.json)').choices(['busy', 'free']))
    .addOption(
      new Option('--on-calendar-error <fail|skip>', 'a calendar that cannot be read: fail the search, or skip it with a warning (default fail, or config.json)').choices([
        'fail',
        'skip',
      ]),
    );
}

/** The options given, as find_slot's arguments. */
export function slotSearchArgs(options: SlotSearchOptions): SlotSearchArgs {
  const args: SlotSearchArgs = {};
  if (options.within !== undefined) args.within = options.within;
  if (options.workingHours !== undefined) args.workingHours = options.workingHours;
  if (options.step !== undefined) args.step = options.step;
  if (options.bufferBefore !== undefined) args.bufferBefore = options.bufferBefore;
  if (options.bufferAfter !== undefined) args.bufferAfter = options.bufferAfter;
  if (options.minNotice !== undefined) args.minNotice = options.minNotice;
  if (options.limit !== undefined) args.limit = options.limit;
  if (options.calendar !== undefined && options.calendar.length > 0) args.calendars = options.calendar;
  if (options.tentative !== undefined) args.tentative = options.tentative;
  if (options.onCalendarError !== undefined) args.onCalendarError = options.onCalendarError;
  return args;
}
