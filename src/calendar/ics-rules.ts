// Recurrence rules (RRULE, RFC 5545 §3.3.10) checked as written, before
// ical.js reads them: ical.js drops parts it does not know, so a malformed
// rule must be caught here, with its line; and a rule that can never match is
// recognised before the expansion (delegate's own period iterator,
// ics-periods.ts) walks its periods. Pure. What is wrong is said without
// the rule's text (a part's value, an unknown part's name), which goes apart
// for the owner (SourceProblem): the reason may reach the agent.
import type { SourceProblem } from './errors.js';

const FREQUENCIES = new Set(['SECONDLY', 'MINUTELY', 'HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY', 'YEARLY']);
const WEEKDAY = '(?:MO|TU|WE|TH|FR|SA|SU)';
const WEEKDAY_ONLY = new RegExp(`^${WEEKDAY}$`);
const BYDAY_ITEM = new RegExp(`^([+-]?\\d{1,2})?${WEEKDAY}$`);

/** BY-parts whose values are integer lists, with the magnitudes RFC 5545 allows. */
const INTEGER_PARTS: Readonly<Record<string, { min: number; max: number; signed: boolean }>> = {
  BYSECOND: { min: 0, max: 60, signed: false },
  BYMINUTE: { min: 0, max: 59, signed: false },
  BYHOUR: { min: 0, max: 23, signed: false },
  BYMONTHDAY: { min: 1, max: 31, signed: true },
  BYYEARDAY: { min: 1, max: 366, signed: true },
  BYWEEKNO: { min: 1, max: 53, signed: true },
  BYMONTH: { min: 1, max: 12, signed: false },
  BYSETPOS: { min: 1, max: 366, signed: true },
};

/** The parts RFC 5545 §3.3.10 defines: their names may be repeated in a reason, anything else's may not. */
const KNOWN_PARTS = new Set(['FREQ', 'UNTIL', 'COUNT', 'INTERVAL', 'WKST', 'BYDAY', ...Object.keys(INTEGER_PARTS)]);

/** Parts that restrict which days match; with them a sub-daily rule can search for years between matches. */
const DAY_LEVEL_PARTS = ['BYMONTH', 'BYMONTHDAY', 'BYYEARDAY', 'BYWEEKNO', 'BYDAY'];

/** Why an RRULE value is malformed, or undefined when it is fine. */
export function recurRuleProblem(value: string): SourceProblem | undefined {
  const problem = ruleProblem(value);
  return typeof problem === 'string' ? { reason: problem } : problem;
}

function ruleProblem(value: string): SourceProblem | string | undefined {
  if (value.trim() === '') return 'RRULE is empty.';
  const parts = new Map<string, string>();
  for (const raw of value.split(';')) {
    const eq = raw.indexOf('=');
    if (eq <= 0 || eq === raw.length - 1) return { reason: 'An RRULE part is not NAME=VALUE.', quoted: `"${raw}"` };
    const name = raw.slice(0, eq).toUpperCase();
    const v = raw.slice(eq + 1);
    if (parts.has(name)) return KNOWN_PARTS.has(name) ? `RRULE repeats ${name}.` : { reason: 'RRULE repeats a part.', quoted: name };
    parts.set(name, v);
    const problem = partProblem(name, v);
    if (problem) return problem;
  }
  const freq = parts.get('FREQ');
  if (!freq) return 'RRULE has no FREQ.';
  if (parts.has('COUNT') && parts.has('UNTIL')) return 'RRULE has both COUNT and UNTIL.';
  // RFC 5545 §3.3.10: which parts each frequency may carry.
  if (parts.has('BYWEEKNO') && freq !== 'YEARLY') return 'BYWEEKNO is only allowed with FREQ=YEARLY.';
  if (parts.has('BYYEARDAY') && ['DAILY', 'WEEKLY', 'MONTHLY'].includes(freq)) {
    return `BYYEARDAY is not allowed with FREQ=${freq}.`;
  }
  if (parts.has('BYMONTHDAY') && freq === 'WEEKLY') return 'BYMONTHDAY is not allowed with FREQ=WEEKLY.';
  const byday = parts.get('BYDAY');
  if (byday && !['MONTHLY', 'YEARLY'].includes(freq) && byday.split(',').some((d) => /\d/.test(d))) {
    return `BYDAY with a number is only allowed with FREQ=MONTHLY or YEARLY.`;
  }
  // RFC 5545 §3.3.10 as corrected (erratum 3779): a numbered BYDAY MUST NOT come with BYWEEKNO; what it would mean is not defined.
  if (byday && parts.has('BYWEEKNO') && byday.split(',').some((d) => /\d/.test(d))) return 'BYDAY with a number is not allowed with BYWEEKNO.';
  if ((freq === 'SECONDLY' || freq === 'MINUTELY') && DAY_LEVEL_PARTS.some((p) => parts.has(p))) {
    // Not an RFC restriction: such rules make an expansion step through months
    // of seconds or minutes between matches, which no calendar program writes.
    return `FREQ=${freq} combined with day-level BY-parts is not supported.`;
  }
  // Likewise hours of seconds, or a day of minutes, between matches: one such
  // rule from 1900 held the server for 47 s.
  if (freq === 'SECONDLY' && (parts.has('BYHOUR') || parts.has('BYMINUTE'))) return 'FREQ=SECONDLY combined with BYHOUR or BYMINUTE is not supported.';
  if (freq === 'MINUTELY' && parts.has('BYHOUR')) return 'FREQ=MINUTELY combined with BYHOUR is not supported.';
  // BYSETPOS is taken with every frequency (RFC 5545 §3.3.10): ics-periods.ts picks among each period's instances,
  // an hour's, a minute's or a second's in a sub-daily rule.
  return undefined;
}

function partProblem(name: string, value: string): SourceProblem | undefined {
  const part = (what: string): SourceProblem => ({ reason: `RRULE ${name} is not ${what}.`, quoted: `${name}=${value}` });
  switch (name) {
    case 'FREQ':
      return FREQUENCIES.has(value.toUpperCase()) ? undefined : part('a frequency');
    case 'COUNT':
    case 'INTERVAL':
      return /^\d+$/.test(value) && Number(value) >= 1 ? undefined : part('a positive whole number');
    case 'UNTIL':
      return /^\d{8}(T\d{6}Z?)?$/i.test(value) ? undefined : part('a date or date-time');
    case 'WKST':
      return WEEKDAY_ONLY.test(value.toUpperCase()) ? undefined : part('a weekday');
    case 'BYDAY':
      for (const item of value.toUpperCase().split(',')) {
        const m = BYDAY_ITEM.exec(item);
        const n = m?.[1] === undefined ? undefined : Number(m[1]);
        if (!m || n === 0 || (n !== undefined && Math.abs(n) > 53)) return { reason: 'An RRULE BYDAY value is not a weekday.', quoted: `"${item}"` };
      }
      return undefined;
    default: {
      const range = INTEGER_PARTS[name];
      if (range) {
        for (const item of value.split(',')) {
          const ok = (range.signed ? /^[+-]?\d+$/ : /^\+?\d+$/).test(item);
          const n = Math.abs(Number(item));
          if (!ok || n < range.min || n > range.max || (range.signed && n === 0)) {
            return { reason: `An RRULE ${name} value is out of range.`, quoted: `"${item}"` };
          }
        }
        return undefined;
      }
      // RFC 5545 allows x-name parts; ical.js ignores them, and so do we.
      return /^X-/i.test(name) ? undefined : { reason: 'An RRULE part is unknown.', quoted: name };
    }
  }
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** BYMONTH and BYMONTHDAY as ical.js keeps them in Recur#parts. */
export interface DateParts {
  BYMONTH?: number[];
  BYMONTHDAY?: number[];
}

/**
 * Whether any date satisfies both BYMONTH and BYMONTHDAY (30 February never
 * does). Such a rule yields DTSTART alone (§3.8.5.3): it is recognised here
 * rather than searched for, period after period.
 */
export function datePartsSatisfiable(parts: DateParts): boolean {
  const months = parts.BYMONTH;
  const days = parts.BYMONTHDAY;
  if (!months?.length || !days?.length) return true;
  return months.some((m) => days.some((d) => Math.abs(d) <= (DAYS_IN_MONTH[m - 1] ?? 0)));
}
