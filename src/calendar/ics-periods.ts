// Recurrence rules (RFC 5545 §3.3.10) expanded period by period, every
// frequency: ical.js 2.2.1 gets whole families wrong, and for the rest it can
// spend unbounded time inside one next() call. Found in review (calendar) and
// by running every example of RFC 5545 §3.8.5.3: BYWEEKNO=20;BYDAY=MO gave
// every Monday but week 20's, BYDAY=MO;BYSETPOS=1 and BYDAY=20MO without
// BYMONTH every Monday; compared with python-dateutil, ical.js also skipped a
// MONTHLY rule's first BYMONTH month, ignored INTERVAL with BYMONTH, moved
// BYDAY instances to the 1st with BYHOUR, and ignored BYSETPOS in DAILY and
// WEEKLY rules. A calendar read that trusts those dates offers a slot inside a
// real meeting. Found in review regress21c: ical.js steps INTERVAL days one at
// a time and searches for the next day its BY-parts allow without limit, all
// in one next() (DAILY;INTERVAL=10000000 held the process 1.5 s, WEEKLY 31 s,
// DAILY;INTERVAL=8000;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO 42 s), past any count of
// iterations; here a period is O(1) to reach and its days are few.
//
// Each period (a year, month, week starting on WKST, day, hour, minute or
// second; INTERVAL periods apart from DTSTART's) gives its candidate days:
// BYMONTH, BYWEEKNO (ISO 8601 weeks starting on WKST: week 1 holds four days
// of the year, and the year's weeks are its period), BYYEARDAY, BYMONTHDAY and
// BYDAY each limit them; then the times (BYHOUR, BYMINUTE, BYSECOND, else
// DTSTART's; in a sub-daily rule those of its own unit and above limit the
// period's time instead); then BYSETPOS picks among the period's instances
// (an hour's, a minute's or a second's in a sub-daily rule; an instant given
// twice, as second 60 and the next minute's :00, counted once); then COUNT
// (DTSTART is the first) and UNTIL. The caller (ics-expand.ts) applies the
// window, EXDATE, RDATE, overrides and the iteration limit. Pure.
import ICAL from 'ical.js';
import { DAY_MS } from './zone.js';
import { lookupTable } from '../lookup-table.js';

/**
 * Said in place of an instance when a period passed with none in it: the caller counts it as an iteration (against the
 * expansion's limits) and may let the event loop run. Found in review of this file: a rule whose periods are mostly
 * empty (`FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYSETPOS=1;COUNT=…` from year 1) walked 740,000 days in one call,
 * uncounted, for about 0.85 s per series, holding every server in the process.
 */
export const EMPTY_PERIOD = Symbol('empty period');

/** What ics-expand.ts iterates: the next instance start, EMPTY_PERIOD, or null when the rule has no more. */
export interface RuleIterator {
  next(): ICAL.Time | typeof EMPTY_PERIOD | null;
  /**
   * The days looked at so far (a yearly period looks at up to 371): the work besides instances, which the caller
   * counts towards its steps, so that a run of long empty periods lets the event loop run as often as instances do.
   */
  readonly daysScanned: number;
  /**
   * The instances of periods computed so far, and the places BYSETPOS's search looked at: a few dozen for each
   * instance given, never a period's whole list (tests count it).
   */
  readonly timesLookedAt: number;
}

type Frequency = 'YEARLY' | 'MONTHLY' | 'WEEKLY' | 'DAILY' | 'HOURLY' | 'MINUTELY' | 'SECONDLY';

/** The length of one period of the sub-daily frequencies, on the wall clock. */
const SUB_DAILY_UNIT_MS = lookupTable<number>({ HOURLY: 3_600_000, MINUTELY: 60_000, SECONDLY: 1_000 });

/**
 * How many empty periods in a row are passed over before one is said (EMPTY_PERIOD): one of a day or longer, a
 * day's hours, an hour's minutes or a minute's seconds; each costs a few comparisons, so that a sub-daily rule
 * whose BYHOUR, BYMINUTE or BYSECOND matches once a day, an hour or a minute counts about as ical.js counted it.
 */
const EMPTY_PERIODS_PER_STEP = lookupTable<number>({ HOURLY: 24, MINUTELY: 60, SECONDLY: 60 });

const WEEKDAYS = ['SU', 'MO', 'TU', 'WE', 'TH', 'FR', 'SA'];
const BYDAY_ITEM = /^([+-]?\d{1,2})?(SU|MO|TU|WE|TH|FR|SA)$/;

interface WeekdayPart {
  /** 0 = Sunday, as Date#getUTCDay. */
  weekday: number;
  /** The nth such weekday of the month or year (negative: from its end), or undefined for every one. */
  nth?: number;
}

/** The rule's parts, read once. */
interface RuleParts {
  freq: Frequency;
  months?: number[];
  weekNumbers?: number[];
  yearDays?: number[];
  monthDays?: number[];
  weekdays?: WeekdayPart[];
  /** Each day's times: every BYHOUR × BYMINUTE × BYSECOND (or DTSTART's), each sorted; a date's one midnight. */
  hours: number[];
  minutes: number[];
  seconds: number[];
  /** In a sub-daily rule, BYHOUR, BYMINUTE and BYSECOND as written (the ones at its unit and above limit, not expand). */
  timeLimits?: { hours?: number[]; minutes?: number[]; seconds?: number[] };
  setPositions?: number[];
  /** The first day of the week, 0 = Sunday. */
  weekStart: number;
}

/**
 * The instances of a rule (DTSTART first, as RFC 5545 counts it,
 * then every later instance in time order), with EMPTY_PERIOD said in place of
 * periods with none. Periods wholly before `wallFrom` are skipped when COUNT
 * does not need them counted; iteration ends with the period that starts after
 * `wallTo` (wall-clock milliseconds, as wallOf gives), or past the dates
 * JavaScript can hold (an INTERVAL of millions of months), so that a period
 * longer than the window costs one step.
 */
export function periodRuleIterator(rule: ICAL.Recur, dtstart: ICAL.Time, wallFrom: number, wallTo: number): RuleIterator {
  const scan: Scan = { days: 0, times: 0 };
  const instances = ruleInstances(rule, rule.freq as Frequency, dtstart, wallFrom, wallTo, scan);
  return {
    next() {
      const step = instances.next();
      return step.done ? null : step.value;
    },
    get daysScanned() {
      return scan.days;
    },
    get timesLookedAt() {
      return scan.times;
    },
  };
}

function* ruleInstances(rule: ICAL.Recur, freq: Frequency, dtstart: ICAL.Time, wallFrom: number, wallTo: number, scan: Scan): Generator<ICAL.Time | typeof EMPTY_PERIOD> {
  const parts = readParts(rule, freq, dtstart);
  const interval = rule.interval || 1;
  const start = utc(dtstart.year, dtstart.month - 1, dtstart.day) + ((dtstart.hour * 60 + dtstart.minute) * 60 + dtstart.second) * 1000;
  yield dtstart.clone();
  let counted = 1;
  let last = start;
  if (rule.count && counted >= rule.count) return;

  const periods = new Periods(parts, utc(dtstart.year, dtstart.month - 1, dtstart.day), start);
  // Without COUNT, the periods before the window need not be walked: each one's instances depend on it alone.
  // A year of weeks may begin a few days before the year it is named for (week 1 in December), so start a week early.
  let index = 0;
  if (!rule.count) {
    const skip = periods.indexOf(wallFrom - (freq === 'YEARLY' || freq === 'MONTHLY' ? 7 * DAY_MS : 0));
    if (skip > 0) index = Math.floor(skip / interval) * interval;
  }
  const emptyPerStep = EMPTY_PERIODS_PER_STEP[freq] ?? 1;
  let empty = 0;
  for (; ; index += interval) {
    const period = periods.at(index);
    // Not `>`: a period past the dates JavaScript holds starts at NaN, and ends the rule as surely.
    if (!(period.first <= wallTo)) return;
    let any = false;
    for (const [day, seconds] of instancesOf(period, parts, dtstart.isDate, scan)) {
      // Not after the last instance given: DTSTART, or the same time again (BYSECOND=60 is the next minute's :00;
      // a date's hours are one day), which is one instance and must not count twice against COUNT (review regress21d).
      const wall = day + seconds * 1000;
      if (wall <= last) continue;
      any = true;
      const date = new Date(day);
      const time = ICAL.Time.fromData(
        {
          year: date.getUTCFullYear(),
          month: date.getUTCMonth() + 1,
          day: date.getUTCDate(),
          hour: Math.floor(seconds / 3600),
          minute: Math.floor(seconds / 60) % 60,
          second: seconds % 60,
          isDate: dtstart.isDate,
        },
        dtstart.zone,
      );
      if (rule.until && time.compare(rule.until) > 0) return;
      last = wall;
      yield time;
      if (rule.count && ++counted >= rule.count) return;
    }
    if (any) empty = 0;
    else if (++empty >= emptyPerStep) {
      empty = 0;
      yield EMPTY_PERIOD;
    }
  }
}

function readParts(rule: ICAL.Recur, freq: Frequency, dtstart: ICAL.Time): RuleParts {
  const p = rule.parts as Record<string, unknown>;
  const numbers = (name: string): number[] | undefined => {
    const value = p[name];
    return Array.isArray(value) && value.length > 0 ? value.map(Number) : undefined;
  };
  const weekdays = (p.BYDAY as string[] | undefined)?.map((item): WeekdayPart => {
    const m = BYDAY_ITEM.exec(String(item).toUpperCase());
    // ics-rules.ts has checked every BYDAY value as written before ical.js read it.
    // Quoting nothing of the rule, as every error about a calendar's text (errors.ts, CalendarSourceError).
    if (!m) throw new Error('An RRULE BYDAY value is not a weekday.');
    return { weekday: WEEKDAYS.indexOf(m[2]!), ...(m[1] === undefined ? {} : { nth: Number(m[1]) }) };
  });
  let months = numbers('BYMONTH');
  let monthDays = numbers('BYMONTHDAY');
  const weekNumbers = numbers('BYWEEKNO');
  const yearDays = numbers('BYYEARDAY');
  let byDay = weekdays?.length ? weekdays : undefined;
  // RFC 5545 §3.3.10: what the rule does not say comes from DTSTART: a yearly rule's month and day, a monthly
  // rule's day, a weekly rule's weekday.
  if (!weekNumbers && !yearDays && !monthDays && !byDay) {
    if (freq === 'YEARLY' || freq === 'MONTHLY') monthDays = [dtstart.day];
    if (freq === 'YEARLY') months ??= [dtstart.month];
    if (freq === 'WEEKLY') byDay = [{ weekday: (dtstart.dayOfWeek() - 1) % 7 }];
  }
  const sorted = (values: number[] | undefined, fallback: number) => [...new Set(values ?? [fallback])].sort((a, b) => a - b);
  const setPositions = numbers('BYSETPOS');
  const hours = numbers('BYHOUR');
  const minutes = numbers('BYMINUTE');
  const seconds = numbers('BYSECOND');
  const clock = {
    hours: dtstart.isDate ? [0] : sorted(hours, dtstart.hour),
    minutes: dtstart.isDate ? [0] : sorted(minutes, dtstart.minute),
    seconds: dtstart.isDate ? [0] : sorted(seconds, dtstart.second),
  };
  return {
    freq,
    ...(months ? { months } : {}),
    ...(weekNumbers ? { weekNumbers } : {}),
    ...(yearDays ? { yearDays } : {}),
    ...(monthDays ? { monthDays } : {}),
    ...(byDay ? { weekdays: byDay } : {}),
    ...clock,
    ...(setPositions ? { setPositions } : {}),
    ...(SUB_DAILY_UNIT_MS[freq] ? { timeLimits: { ...(hours ? { hours } : {}), ...(minutes ? { minutes } : {}), ...(seconds ? { seconds } : {}) } } : {}),
    // ical.js numbers weekdays from 1 = Sunday; WKST defaults to Monday.
    weekStart: ((rule.wkst || ICAL.Time.MONDAY) - 1) % 7,
  };
}

/** One period's days: [first, end) as wall midnights. */
interface Period {
  first: number;
  end: number;
}

/** The rule's periods, numbered from DTSTART's (0). */
class Periods {
  private readonly year: number;
  private readonly month0: number;
  /** Where period 0 starts, for the frequencies whose periods all have the same length. */
  private readonly day: number;
  /** That length, for sub-daily frequencies. */
  private readonly unit: number | undefined;

  constructor(
    private readonly parts: RuleParts,
    dtstartDay: number,
    dtstartWall: number,
  ) {
    const date = new Date(dtstartDay);
    // With BYWEEKNO a year is its weeks, so DTSTART's year is the one whose weeks hold it.
    this.year = parts.weekNumbers ? weekYearOf(dtstartDay, date.getUTCFullYear(), parts.weekStart) : date.getUTCFullYear();
    this.month0 = date.getUTCMonth();
    this.unit = SUB_DAILY_UNIT_MS[parts.freq];
    // A weekly period starts on WKST; an hourly one at DTSTART's hour, and so on.
    if (this.unit !== undefined) this.day = Math.floor(dtstartWall / this.unit) * this.unit;
    else this.day = parts.freq === 'WEEKLY' ? dtstartDay - ((date.getUTCDay() - parts.weekStart + 7) % 7) * DAY_MS : dtstartDay;
  }

  at(index: number): Period {
    if (this.unit !== undefined) return { first: this.day + index * this.unit, end: this.day + (index + 1) * this.unit };
    switch (this.parts.freq) {
      case 'YEARLY': {
        const year = this.year + index;
        if (!this.parts.weekNumbers) return { first: utc(year, 0, 1), end: utc(year + 1, 0, 1) };
        return { first: weekOneStart(year, this.parts.weekStart), end: weekOneStart(year + 1, this.parts.weekStart) };
      }
      case 'MONTHLY':
        return { first: utc(this.year, this.month0 + index, 1), end: utc(this.year, this.month0 + index + 1, 1) };
      case 'WEEKLY':
        return { first: this.day + index * 7 * DAY_MS, end: this.day + (index + 1) * 7 * DAY_MS };
      default:
        return { first: this.day + index * DAY_MS, end: this.day + (index + 1) * DAY_MS };
    }
  }

  /** The number of the period that holds `wall` (or, for years of weeks, about it: at most one less). */
  indexOf(wall: number): number {
    if (this.unit !== undefined) return Math.floor((wall - this.day) / this.unit);
    const date = new Date(wall);
    switch (this.parts.freq) {
      case 'YEARLY':
        return date.getUTCFullYear() - 1 - this.year;
      case 'MONTHLY':
        return (date.getUTCFullYear() - this.year) * 12 + date.getUTCMonth() - this.month0;
      case 'WEEKLY':
        return Math.floor((wall - this.day) / (7 * DAY_MS));
      default:
        return Math.floor((wall - this.day) / DAY_MS);
    }
  }
}

/** The days and the times a rule's iteration has looked at, counted as they are. */
interface Scan {
  days: number;
  times: number;
}

/**
 * One period's instances in time order, as [the day's wall midnight, seconds
 * into the day]: every instance, or with BYSETPOS the ones it picks, found by
 * their index without listing the period's (up to some millions of) instances.
 */
function* instancesOf(period: Period, parts: RuleParts, isDate: boolean, scan: Scan): Generator<[number, number]> {
  const grid = parts.timeLimits ? subDailyGrid(period, parts, parts.timeLimits, isDate, scan) : new PeriodGrid(scan, daysOf(period, parts, scan), parts.hours, parts.minutes, parts.seconds);
  if (!grid) return;
  if (!parts.setPositions) {
    for (let i = 0; i < grid.size; i++) yield grid.at(i);
    return;
  }
  yield* grid.picked(parts.setPositions);
}

/**
 * The instances of an hour, minute or second (a sub-daily rule's period): none
 * when a day-level part refuses its day, or BYHOUR, BYMINUTE or BYSECOND at or
 * above its unit its time (RFC 5545 §3.3.10: those limit a rule of that
 * frequency); the parts below its unit expand it.
 */
function subDailyGrid(period: Period, parts: RuleParts, limits: NonNullable<RuleParts['timeLimits']>, isDate: boolean, scan: Scan): PeriodGrid | undefined {
  const day = Math.floor(period.first / DAY_MS) * DAY_MS;
  if (daysOf({ first: day, end: day + DAY_MS }, parts, scan).length === 0) return undefined;
  if (isDate) return new PeriodGrid(scan, [day], [0], [0], [0]);
  const at = Math.round((period.first - day) / 1000);
  const [hour, minute, second] = [Math.floor(at / 3600), Math.floor(at / 60) % 60, at % 60];
  const allows = (limit: number[] | undefined, value: number) => !limit || limit.includes(value);
  if (!allows(limits.hours, hour)) return undefined;
  if (parts.freq === 'HOURLY') return new PeriodGrid(scan, [day], [hour], parts.minutes, parts.seconds);
  if (!allows(limits.minutes, minute)) return undefined;
  if (parts.freq === 'MINUTELY') return new PeriodGrid(scan, [day], [hour], [minute], parts.seconds);
  if (!allows(limits.seconds, second)) return undefined;
  return new PeriodGrid(scan, [day], [hour], [minute], [second]);
}

/**
 * A period's instances: every day × hour × minute × second (each sorted), in
 * time order, found by index and never listed. Found in review regress21d:
 * listing a day's BYHOUR × BYMINUTE × BYSECOND (86,400 times from a 461-byte
 * rule) for every period cost about 25 ms a period, a period with no day
 * included.
 */
class PeriodGrid {
  /** The number of instances, an instant given twice counted twice. */
  readonly size: number;

  constructor(
    private readonly scan: Scan,
    private readonly days: number[],
    private readonly hours: number[],
    private readonly minutes: number[],
    private readonly seconds: number[],
  ) {
    this.size = days.length * hours.length * minutes.length * seconds.length;
  }

  /** The instance at `index`, as [the day's wall midnight, seconds into the day] (second 60 is 60 s past the minute). */
  at(index: number): [number, number] {
    this.scan.times++;
    const s = this.seconds.length;
    const minute = Math.floor(index / s);
    const hour = Math.floor(minute / this.minutes.length);
    const day = Math.floor(hour / this.hours.length);
    return [this.days[day]!, this.hours[hour % this.hours.length]! * 3600 + this.minutes[minute % this.minutes.length]! * 60 + this.seconds[index % s]!];
  }

  /**
   * The instances BYSETPOS picks, in time order: its nth (from the start, 1, or the end, -1) of the period's set of
   * instances (RFC 5545 §3.3.10), in which an instant the grid gives twice is one.
   */
  *picked(positions: number[]): Generator<[number, number]> {
    const distinct = this.distinct();
    const picked = new Set<number>();
    for (const pos of positions) {
      const nth = pos > 0 ? pos - 1 : distinct.count + pos;
      if (nth >= 0 && nth < distinct.count) picked.add(distinct.indexOf(nth));
    }
    for (const index of [...picked].sort((a, b) => a - b)) yield this.at(index);
  }

  /**
   * The period's distinct instants: how many, and the index of the nth. With BYSECOND both 0 and 60 (RFC 5545 allows
   * 60), a minute's second 60 is the next minute's :00, which the grid holds too when that minute is in it: the two are
   * next to each other in the grid, the only instant it gives twice. Counted as one, or `FREQ=DAILY;BYMINUTE=0,1;
   * BYSECOND=0,60;BYSETPOS=3` from midnight gives 00:01:00, the set's second, for its third, 00:02:00. Counted from
   * the parts, not by listing.
   */
  private distinct(): { count: number; indexOf(nth: number): number } {
    const seconds = this.seconds.length;
    if (!(this.seconds[0] === 0 && this.seconds[seconds - 1] === 60)) return { count: this.size, indexOf: (nth) => nth };
    const followed = followedMinutes(this.days, this.hours, this.minutes);
    // The distinct instants among the first i instances: i, less the :00s of minutes that follow a minute of the grid.
    const distinctBefore = (i: number) => {
      this.scan.times++;
      return i - (i <= 0 ? 0 : followed(Math.floor((i - 1) / seconds)));
    };
    return {
      count: distinctBefore(this.size),
      indexOf: (nth) => {
        // The first index whose instant is the (nth + 1)th distinct one: distinctBefore grows by 0 or 1 an index.
        let [low, high] = [nth, this.size - 1];
        while (low < high) {
          const mid = Math.floor((low + high) / 2);
          if (distinctBefore(mid + 1) > nth) high = mid;
          else low = mid + 1;
        }
        return low;
      },
    };
  }
}

/**
 * For the minutes of a grid (day × hour × minute, in order), how many of the first n have the next minute in the grid
 * too (14:59 then 15:00, 23:59 then the next day's 00:00), from counts over the days, hours and minutes.
 */
function followedMinutes(days: number[], hours: number[], minutes: number[]): (n: number) => number {
  // runs[i]: how many of the first i values have the next value, one step on, after them.
  const runs = (values: number[], step: number) => {
    const out = [0];
    for (let i = 0; i < values.length; i++) out.push(out[i]! + (values[i + 1] === values[i]! + step ? 1 : 0));
    return out;
  };
  const [dayRuns, hourRuns, minuteRuns] = [runs(days, DAY_MS), runs(hours, 1), runs(minutes, 1)];
  // An hour's :59 is followed by the next hour's :00, a day's 23:xx by the next day's 00:xx, when the grid holds both.
  const hourTurns = minutes[0] === 0 && minutes[minutes.length - 1] === 59 ? 1 : 0;
  const dayTurns = hourTurns && hours[0] === 0 && hours[hours.length - 1] === 23 ? 1 : 0;
  const inHour = minuteRuns[minutes.length]!;
  const inDay = hours.length * inHour + hourTurns * hourRuns[hours.length]!;
  return (n) => {
    const day = Math.floor(n / (hours.length * minutes.length));
    const hour = Math.floor(n / minutes.length) % hours.length;
    return day * inDay + dayTurns * dayRuns[day]! + hour * inHour + hourTurns * hourRuns[hour]! + minuteRuns[n % minutes.length]!;
  };
}

/** The days (wall midnights, sorted) of a period that every day-level part allows. */
function daysOf(period: Period, parts: RuleParts, scan: Scan): number[] {
  scan.days += Math.round((period.end - period.first) / DAY_MS);
  const weeks = parts.weekNumbers?.map((n) => (n > 0 ? n : (period.end - period.first) / (7 * DAY_MS) + 1 + n));
  // A numbered BYDAY counts within the month in a monthly rule or a yearly one with BYMONTH, else within the year.
  const nthInMonth = parts.freq === 'MONTHLY' || parts.months !== undefined;
  const out: number[] = [];
  for (let day = period.first; day < period.end; day += DAY_MS) {
    const date = new Date(day);
    const y = date.getUTCFullYear();
    const month = date.getUTCMonth() + 1;
    const dayOfMonth = date.getUTCDate();
    if (parts.months && !parts.months.includes(month)) continue;
    if (weeks && !weeks.includes(Math.floor((day - period.first) / (7 * DAY_MS)) + 1)) continue;
    if (parts.yearDays) {
      const dayOfYear = (day - utc(y, 0, 1)) / DAY_MS + 1;
      const length = (utc(y + 1, 0, 1) - utc(y, 0, 1)) / DAY_MS;
      if (!parts.yearDays.some((n) => (n > 0 ? n : length + 1 + n) === dayOfYear)) continue;
    }
    if (parts.monthDays) {
      const length = new Date(utc(y, month, 0)).getUTCDate();
      if (!parts.monthDays.some((n) => (n > 0 ? n : length + 1 + n) === dayOfMonth)) continue;
    }
    if (parts.weekdays && !parts.weekdays.some((w) => weekdayMatches(date, w, nthInMonth))) continue;
    out.push(day);
  }
  return out;
}

/** Whether a day is the weekday asked for and, when numbered, the nth of it within its month or its year. */
function weekdayMatches(date: Date, part: WeekdayPart, inMonth: boolean): boolean {
  if (date.getUTCDay() !== part.weekday) return false;
  if (part.nth === undefined) return true;
  const y = date.getUTCFullYear();
  const periodStart = inMonth ? utc(y, date.getUTCMonth(), 1) : utc(y, 0, 1);
  const periodEnd = inMonth ? utc(y, date.getUTCMonth() + 1, 1) : utc(y + 1, 0, 1);
  const day = date.getTime();
  const nth = part.nth > 0 ? Math.floor((day - periodStart) / (7 * DAY_MS)) + 1 : -(Math.floor((periodEnd - DAY_MS - day) / (7 * DAY_MS)) + 1);
  return nth === part.nth;
}

/** The first day of week 1 of `year`: the week (starting on `weekStart`) that holds at least four days of the year. */
function weekOneStart(year: number, weekStart: number): number {
  const jan4 = utc(year, 0, 4);
  const back = (new Date(jan4).getUTCDay() - weekStart + 7) % 7;
  return jan4 - back * DAY_MS;
}

/** The year whose weeks (BYWEEKNO) hold `day`: week 1 of the next year may start in late December, and this one's in early January. */
function weekYearOf(day: number, year: number, weekStart: number): number {
  if (day >= weekOneStart(year + 1, weekStart)) return year + 1;
  return day < weekOneStart(year, weekStart) ? year - 1 : year;
}

/** Date.UTC for a day (months may run over into other years), without its reading of years 0-99 as 1900-1999. */
function utc(year: number, month0: number, day: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month0, day);
  return date.getTime();
}
