// Working hours as people write them, on the command line, in a find_slot
// call and in the config file: "mon-fri 09:00-17:00", or several groups such
// as "mon-thu 09:00-12:00,13:00-17:00; fri 09:00-13:00; sat off". A later
// group overrides an earlier one for the days it names; days never named have
// no working hours. The config file may also give an object of weekdays.
// Written back in the same short form. Pure.
import { SlotQueryError } from './errors.js';
import { WEEKDAYS, minuteRanges, type DailyHours, type Weekday, type WorkingHours } from './slots.js';
import { lookupTable } from '../lookup-table.js';

/** Day names people write (a lookupTable: "constructor" once made the loop in readDays endless). */
const DAY_NAMES = lookupTable<Weekday>({
  sun: 'sun', sunday: 'sun',
  mon: 'mon', monday: 'mon',
  tue: 'tue', tues: 'tue', tuesday: 'tue',
  wed: 'wed', wednesday: 'wed',
  thu: 'thu', thur: 'thu', thurs: 'thu', thursday: 'thu',
  fri: 'fri', friday: 'fri',
  sat: 'sat', saturday: 'sat',
});

const RANGE = /^(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})$/;

/** Working hours from "mon-fri 09:00-17:00; sat 10:00-12:00"; throws SlotQueryError naming what is wrong. */
export function parseWorkingHours(spec: string): WorkingHours {
  const groups = spec.split(';').map((g) => g.trim()).filter((g) => g !== '');
  if (groups.length === 0) throw invalid(spec, 'no days are given');
  const hours: Partial<Record<Weekday, DailyHours[]>> = {};
  for (const group of groups) {
    const m = /^(\S+)\s+(.+)$/.exec(group);
    if (!m) throw invalid(spec, `"${group}" needs days and hours, such as "mon-fri 09:00-17:00"`);
    const days = readDays(m[1]!, spec);
    const ranges = /^(off|none|-)$/i.test(m[2]!.trim()) ? [] : m[2]!.split(',').map((r) => readRange(r.trim(), spec));
    for (const day of days) hours[day] = ranges;
  }
  return checked(hours);
}

/**
 * Working hours as the config file may hold them: the string form, or an
 * object from weekday to "HH:MM-HH:MM" (or a list of them, or "off").
 */
export function readWorkingHours(value: unknown): WorkingHours {
  if (typeof value === 'string') return parseWorkingHours(value);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(String(value), 'expected a string such as "mon-fri 09:00-17:00" or an object of weekdays');
  }
  const hours: Partial<Record<Weekday, DailyHours[]>> = {};
  for (const [key, raw] of Object.entries(value as Record<string, unknown>)) {
    const shown = JSON.stringify(value);
    const days = readDays(key, shown);
    const list = Array.isArray(raw) ? raw : [raw];
    const ranges = list.flatMap((r): DailyHours[] => {
      if (typeof r !== 'string') throw invalid(shown, `the hours of "${key}" must be strings such as "09:00-17:00"`);
      return /^(off|none|-)$/i.test(r.trim()) ? [] : r.split(',').map((part) => readRange(part.trim(), shown));
    });
    for (const day of days) hours[day] = ranges;
  }
  return checked(hours);
}

/** The short form: consecutive days with the same hours joined, "mon-fri 09:00-17:00"; "none" when there are none. */
export function formatWorkingHours(hours: WorkingHours): string {
  // Monday first, as working weeks are read.
  const order: Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
  const text = (day: Weekday) => (hours[day] ?? []).map((r) => `${r.start}-${r.end}`).join(',');
  const groups: string[] = [];
  for (let i = 0; i < order.length; ) {
    const value = text(order[i]!);
    let j = i;
    while (j + 1 < order.length && text(order[j + 1]!) === value) j++;
    if (value !== '') groups.push(`${j > i ? `${order[i]}-${order[j]}` : order[i]} ${value}`);
    i = j + 1;
  }
  return groups.length === 0 ? 'none' : groups.join('; ');
}

/** "mon-fri", "mon,wed,fri", "fri-mon" (wrapping over the weekend), "weekdays", "daily". */
function readDays(text: string, spec: string): Weekday[] {
  const lower = text.toLowerCase();
  if (lower === 'weekdays') return ['mon', 'tue', 'wed', 'thu', 'fri'];
  if (lower === 'weekends' || lower === 'weekend') return ['sat', 'sun'];
  if (lower === 'daily' || lower === 'everyday' || lower === 'all') return [...WEEKDAYS];
  const out: Weekday[] = [];
  for (const item of lower.split(',')) {
    const [first, last, ...rest] = item.split(/[-–]/);
    const a = DAY_NAMES[first ?? ''];
    const b = last === undefined ? a : DAY_NAMES[last];
    if (!a || !b || rest.length > 0) throw invalid(spec, `"${item}" is not a weekday or a range of weekdays such as mon-fri`);
    for (let i = WEEKDAYS.indexOf(a); ; i = (i + 1) % 7) {
      if (!out.includes(WEEKDAYS[i]!)) out.push(WEEKDAYS[i]!);
      if (WEEKDAYS[i] === b) break;
    }
  }
  return out;
}

function readRange(text: string, spec: string): DailyHours {
  const m = RANGE.exec(text);
  if (!m) throw invalid(spec, `"${text}" is not a range of clock times such as 09:00-17:00`);
  const pad = (t: string) => t.padStart(5, '0');
  return { start: pad(m[1]!), end: pad(m[2]!) };
}

/** Hours whose clock times minuteRanges accepts (it throws naming the day otherwise). */
function checked(hours: Partial<Record<Weekday, DailyHours[]>>): WorkingHours {
  minuteRanges(hours);
  return Object.freeze(hours);
}

function invalid(spec: string, why: string): SlotQueryError {
  return new SlotQueryError('ERR_SLOT_WORKING_HOURS', `Working hours "${spec}": ${why}.`);
}
