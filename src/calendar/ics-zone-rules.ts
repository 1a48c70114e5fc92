// The observances of a VTIMEZONE (STANDARD and DAYLIGHT, RFC 5545 §3.6.5)
// checked and costed as written, before ical.js reads them. ical.js works out a
// zone's changes itself, in one synchronous call: every observance's RRULE
// iterated from its DTSTART up to five years past the year of the time
// converted, with no bound on steps or memory (review s23feeds: FREQ=MINUTELY
// in a STANDARD block took 21 s and 1 GB, FREQ=SECONDLY killed the process).
// Real zones change once a year per observance, so an observance's rule must be
// yearly and of the forms zone writers use, and the years and changes all the
// zones of a calendar can cost ical.js are bounded here; ics-zones.ts keeps the
// years ical.js is asked about inside the range counted. Pure.
import { datePartsSatisfiable } from './ics-rules.js';

/**
 * The last year ical.js is asked to convert in a zone a calendar defines; a
 * later time is read 400 years earlier, or as many times 400 as it takes (the
 * Gregorian calendar repeats its weekdays every 400 years), so that no zone is
 * expanded past ZONE_LAST_YEAR + 5. A zone whose observances start after
 * ZONE_LAST_YEAR - 400 has no offset of its own then (ical.js reads a time
 * before a zone's first change as UTC, as it always has for a time before
 * DTSTART), so such a zone reads a time after ZONE_LAST_YEAR as UTC.
 */
export const ZONE_LAST_YEAR = 2399;

/** ical.js expands a zone five years past the year it converts (Timezone.EXTRA_COVERAGE). */
const EXTRA_YEARS = 5;

/**
 * The most work (years an observance's rule is walked through, or changes it
 * gives, whichever is more, plus each RDATE and each observance without a rule)
 * one zone may cost ical.js, in one synchronous call: 10-25 µs each (measured:
 * 15,914 changes of a weekly zone rule took 0.36-1.2 s), so at most about a
 * tenth of a second. A zone as Outlook writes it (two yearly rules from 1601)
 * costs 1,608, as Google writes it (from 1970) 870.
 */
export const MAX_ZONE_WORK = 5_000;

/**
 * The most work all the zones of one calendar may cost together (about a
 * second): 31 zones as Outlook writes them, or 57 as Google does.
 */
export const MAX_CALENDAR_ZONE_WORK = 50_000;

/** Parts a time zone's yearly rule may carry: the date of the change, and where the rule ends. */
const OBSERVANCE_PARTS = new Set(['FREQ', 'INTERVAL', 'COUNT', 'UNTIL', 'WKST', 'BYMONTH', 'BYMONTHDAY', 'BYDAY']);

/** Parts that give the time of day of the change: one value each (as Lotus Notes writes them) is read. */
const TIME_OF_DAY_PARTS: ReadonlySet<string> = new Set(['BYHOUR', 'BYMINUTE', 'BYSECOND']);

/** One STANDARD or DAYLIGHT block as written. */
export interface Observance {
  /** Its DTSTART value (yyyymmdd…), if any. */
  dtstart: string | undefined;
  /** Its RRULE values, with their lines. */
  rules: Array<{ value: string; line: number }>;
  /** Dates its RDATEs list. */
  rdates: number;
}

/** A problem with an observance's rule, on its line; or the work the observance costs. */
export type ObservanceCost = { problem: string; line: number } | { work: number };

/** What an observance costs ical.js, or why its rule is refused (the rule already passed recurRuleProblem). */
export function observanceCost(observance: Observance): ObservanceCost {
  let work = observance.rdates + (observance.rules.length === 0 ? 1 : 0);
  const startYear = Number(observance.dtstart?.slice(0, 4) ?? 0);
  for (const { value, line } of observance.rules) {
    const parts = partsOf(value);
    const problem = ruleProblem(parts, observance.dtstart ?? '');
    if (problem) return { problem, line };
    work += ruleWork(parts, startYear);
  }
  return { work };
}

function partsOf(value: string): Map<string, string> {
  const parts = new Map<string, string>();
  for (const raw of value.split(';')) {
    const eq = raw.indexOf('=');
    parts.set(raw.slice(0, eq).toUpperCase(), raw.slice(eq + 1).toUpperCase());
  }
  return parts;
}

const list = (value: string | undefined) => (value === undefined ? [] : value.split(','));

/**
 * Why ical.js should not be given this observance rule. Each form refused is
 * one no zone writer uses and one that ical.js could walk for a long time: a
 * rule of another frequency changes the offset more than once a year, and a
 * yearly rule that rarely or never matches is searched year by year (to the
 * year 20000 when it never does).
 */
function ruleProblem(parts: Map<string, string>, dtstart: string): string | undefined {
  const freq = parts.get('FREQ');
  if (freq !== 'YEARLY') return `A time zone's STANDARD or DAYLIGHT rule repeats yearly (RFC 5545 §3.6.5); FREQ=${freq} is not read.`;
  const other = [...parts.keys()].find((p) => !OBSERVANCE_PARTS.has(p) && !TIME_OF_DAY_PARTS.has(p) && !p.startsWith('X-'));
  if (other) return `${other} is not read in a time zone's rule (only BYMONTH, BYMONTHDAY and BYDAY, and one BYHOUR, BYMINUTE and BYSECOND).`;
  // Lotus Notes / HCL Domino restate the change's time of day (BYHOUR=2;BYMINUTE=0; found in review, s23new2: such
  // calendars were refused whole). One value each gives one change per matching day, as without them; a list would
  // give several a day, which no zone has.
  const listed = [...TIME_OF_DAY_PARTS].find((p) => list(parts.get(p)).length > 1);
  if (listed) return `${listed} is not read in a time zone's rule with more than one value (the offset changes once on its day).`;
  if (Number(parts.get('INTERVAL') ?? 1) !== 1) return `A time zone's rule changes the offset every year; INTERVAL=${parts.get('INTERVAL')} is not read.`;
  const numbers = bydayNumbers(parts);
  if (numbers.length > 0 && parts.has('BYMONTHDAY')) return 'A numbered BYDAY together with BYMONTHDAY is not read in a time zone\'s rule.';
  if (parts.has('BYMONTH') && numbers.some((n) => n > 5)) return 'A BYDAY numbered past 5 within a month matches no date.';
  const until = parts.get('UNTIL');
  if (until !== undefined && until.slice(0, 8) < dtstart.slice(0, 8)) return 'UNTIL is before the observance\'s DTSTART.';
  const dateParts = { BYMONTH: list(parts.get('BYMONTH')).map(Number), BYMONTHDAY: list(parts.get('BYMONTHDAY')).map(Number) };
  if (!datePartsSatisfiable(dateParts)) return 'This rule matches no date.';
  return undefined;
}

/** The magnitudes of BYDAY's numbered weekdays (2 for 2SU, 1 for -1SU). */
function bydayNumbers(parts: Map<string, string>): number[] {
  return list(parts.get('BYDAY')).flatMap((d) => {
    const n = /^[+-]?\d+/.exec(d)?.[0];
    return n === undefined ? [] : [Math.abs(Number(n))];
  });
}

/** Years a yearly rule is walked through by ical.js at most, times the changes it may give in a year. */
function ruleWork(parts: Map<string, string>, startYear: number): number {
  const untilYear = parts.has('UNTIL') ? Number(parts.get('UNTIL')!.slice(0, 4)) : Infinity;
  const years = Math.max(1, Math.min(untilYear, ZONE_LAST_YEAR + EXTRA_YEARS) - startYear + 1);
  const byday = list(parts.get('BYDAY'));
  const monthdays = list(parts.get('BYMONTHDAY')).map(Number);
  const months = list(parts.get('BYMONTH')).length || (monthdays.length || byday.length ? 12 : 1);
  // A numbered weekday within BYMONTH is one day a month (ical.js reads it so: every zone relies on it); any other is
  // at most 5 a month, whatever its number says (ical.js has read a numbered yearly BYDAY without BYMONTH as every one).
  const numbered = (d: string) => /\d/.test(d) && parts.has('BYMONTH');
  const weekdays = byday.reduce((n, d) => n + (numbered(d) ? 1 : 5), 0);
  // With both, a weekday falls on at most as many of the month days as share a remainder by 7 (one of 8-14, "the
  // second Sunday" as some zones write it); a day from the end may fall on any weekday.
  const fromEnd = monthdays.filter((d) => d < 0).length;
  const byRemainder = new Map<number, number>();
  for (const d of monthdays) if (d > 0) byRemainder.set(d % 7, (byRemainder.get(d % 7) ?? 0) + 1);
  const sameWeekday = Math.max(0, ...byRemainder.values()) + fromEnd;
  const perMonth = monthdays.length && weekdays ? Math.min(monthdays.length, byday.length * sameWeekday) : monthdays.length || weekdays || 1;
  // A rule that matches only some years (the 5th Sunday, a weekday on one of fewer than 7 dates) is searched for
  // up to a 400-year cycle.
  const rare = monthdays.length && weekdays && byRemainder.size + fromEnd < 7;
  const search = rare || bydayNumbers(parts).some((n) => n === 5 || n === 53) ? 400 : 0;
  const changes = Math.min(Number(parts.get('COUNT') ?? Infinity), years * months * perMonth);
  return Math.max(years, changes) + search;
}
