// Expanding a parsed calendar into the instances that touch a window: each
// series' recurrence set (RFC 5545 §3.8.5: DTSTART, RRULE, RDATE, minus
// EXDATE) with overridden instances (RECURRENCE-ID) swapped in, plus VFREEBUSY
// periods. Rules with no end stop at the window; a series, or a calendar, that
// needs more iterations than its cap is an error, never a silently short
// answer. Pure; the servers use the cooperative form, which lets the event
// loop run between steps, so that a big calendar holds no other request.
import ICAL from 'ical.js';
import { asCalendarSourceError, CalendarSourceError } from './errors.js';
import { EMPTY_PERIOD, periodRuleIterator } from './ics-periods.js';
import type { EventEnd, EventSeries, EventTiming, Availability, ParsedCalendar, InstanceOverride } from './ics-parse.js';
import { dateOf, instantOf, wallOf, wallZoneOf, type CalendarTime } from './ics-time.js';
import type { Interval } from './intervals.js';
import { runSteps, runStepsCooperatively, StepCounter, type Steps } from './steps.js';
import { DAY_MS, fromWall, toWall } from './zone.js';

export interface ExpandOptions {
  /** The owner's IANA zone: floating times and all-day events are read in it. */
  timeZone: string;
  /**
   * The most rule iterations one series may take to get through the window,
   * counted from where iteration starts: DTSTART, or for a rule without COUNT
   * the period that holds the window's start (a week before, for monthly and
   * yearly rules). An iteration is an instance, or a run of periods without
   * one (ics-periods.ts). Default 50,000.
   */
  maxIterationsPerSeries?: number;
  /**
   * The most rule iterations all series of the calendar together may take
   * for one expansion, so that its cost is bounded whatever the file's size
   * (60 series each under the per-series cap held the process 23 s). Default
   * 200,000.
   */
  maxIterations?: number;
}

export const DEFAULT_MAX_ITERATIONS_PER_SERIES = 50_000;
/**
 * Sized from what big ordinary calendars take for the longest window (366
 * days): the 10,000-event benchmark calendar about 19,500 iterations, 1,000
 * weekly series running since 2010 about 55,000 (monthly and yearly rules
 * start at DTSTART: 1,000 monthly series since 2010 would take about 210,000).
 * An iteration costs 10 to 300 µs, depending on the rule.
 */
export const DEFAULT_MAX_ITERATIONS = 200_000;

/**
 * Work done between two chances for the event loop to run in the cooperative
 * form, counted (rule iterations, series, periods), not timed: at most some
 * tens of milliseconds of ical.js.
 */
const WORK_PER_STEP = 100;

/** The days a rule's periods look at (ics-periods.ts) that count as one unit of work towards a step. */
const DAYS_PER_WORK = 20;

/** One instance of an event or a VFREEBUSY period, as it stands in time. */
export interface EventInstance extends Interval {
  availability: Availability;
}

/** Every instance in `calendar` that overlaps `window` (not clipped), free ones included. */
export function expandInstances(calendar: ParsedCalendar, window: Interval, options: ExpandOptions): EventInstance[] {
  return runSteps(instanceSteps(calendar, window, options));
}

/**
 * What expandInstances returns, letting the event loop run every few
 * milliseconds of work (setImmediate: pending I/O first), so that the other
 * servers of the process keep answering while a big calendar is expanded.
 */
export function expandInstancesCooperatively(calendar: ParsedCalendar, window: Interval, options: ExpandOptions): Promise<EventInstance[]> {
  return runStepsCooperatively(instanceSteps(calendar, window, options));
}

/** The work of one expansion, counted: `total` against the calendar's cap, `steps` until the next step. */
interface Work {
  readonly calendar: string;
  readonly cap: number;
  total: number;
  readonly steps: StepCounter;
}

/** Counts one rule iteration against the calendar's cap; throws past it. True when a step is due. */
function iterate(work: Work): boolean {
  if (++work.total > work.cap) {
    throw new CalendarSourceError(
      'ERR_ICS_EXPANSION_LIMIT',
      work.calendar,
      `Its recurring events together need more than ${work.cap} repetitions to reach the window.`,
    );
  }
  return work.steps.spend(1);
}

/** The expansion as a generator that yields between steps of work and returns the instances. */
function* instanceSteps(calendar: ParsedCalendar, window: Interval, options: ExpandOptions): Steps<EventInstance[]> {
  const out: EventInstance[] = [];
  const keep = (i: EventInstance) => {
    if (i.end > i.start && i.end > window.start && i.start < window.end) out.push(i);
  };
  const work: Work = { calendar: calendar.name, cap: options.maxIterations ?? DEFAULT_MAX_ITERATIONS, total: 0, steps: new StepCounter(WORK_PER_STEP) };
  for (const series of calendar.series) {
    let instances: EventInstance[];
    try {
      instances = yield* expandSeries(series, window, options, work);
    } catch (err) {
      // Whatever ical.js throws on a rule it cannot iterate is this calendar's fault, on the event's line.
      throw asCalendarSourceError(err, 'ERR_ICS_RULE', calendar.name, 'This recurring event could not be expanded.', series.master.line);
    }
    instances.forEach(keep);
    if (work.steps.spend(1)) yield;
  }
  for (const period of calendar.freeBusy) {
    let instance: EventInstance;
    try {
      const start = instantOf(period.start, options.timeZone);
      instance = { start, end: endOf(period.end, period.start, start, options.timeZone), availability: period.availability };
    } catch (err) {
      // As for a series: a time ical.js cannot convert (in a zone the file defines) is this calendar's fault.
      throw asCalendarSourceError(err, 'ERR_ICS_VALUE', calendar.name, 'A FREEBUSY period could not be read.');
    }
    keep(instance);
    if (work.steps.spend(1)) yield;
  }
  return out;
}

/** An occurrence of a series' recurrence set, before overrides are applied. */
interface Occurrence {
  start: CalendarTime;
  instant: number;
  /** A PERIOD RDATE's own end. */
  end?: EventEnd;
}

function* expandSeries(series: EventSeries, window: Interval, options: ExpandOptions, work: Work): Steps<EventInstance[]> {
  const master = series.master;
  const zone = options.timeZone;
  const masterStart = instantOf(master.start, zone);
  const masterSpan = endOf(master.end, master.start, masterStart, zone) - masterStart;

  // Wall-clock bounds for the rule iteration: offsets are under a day, and an
  // instance starting before the window may still reach into it.
  const wallFrom = window.start - Math.max(masterSpan, 0) - 2 * DAY_MS;
  const wallTo = window.end + 2 * DAY_MS;

  const occurrences = new Map<number, Occurrence>();
  const add = (o: Occurrence) => {
    if (!occurrences.has(o.instant)) occurrences.set(o.instant, o);
  };
  // RFC 5545 §3.8.5.3: DTSTART is always the first instance of the set.
  add({ start: master.start, instant: masterStart });
  const cap = options.maxIterationsPerSeries ?? DEFAULT_MAX_ITERATIONS_PER_SERIES;
  for (const rule of series.rules) {
    if (endsBefore(rule, master.start.time, wallFrom)) continue;
    // ics-periods.ts expands every rule: ical.js gets whole families wrong (yearly, monthly, BYSETPOS), and may
    // search for the next instance without bound inside one call (found in review regress21c).
    const { iterated, untilInstant } = ruleInWallTime(rule, master.start, zone);
    const iterator = periodRuleIterator(iterated, master.start.time, wallFrom, wallTo);
    let iterations = 0;
    let scanned = 0;
    for (let t = iterator.next(); t; t = iterator.next()) {
      // The days a period looked at are work too (a year's empty periods look at 366 each): towards the next step.
      const stepDue = work.steps.spend(Math.floor(iterator.daysScanned / DAYS_PER_WORK) - Math.floor(scanned / DAYS_PER_WORK));
      scanned = iterator.daysScanned;
      if (++iterations > cap) {
        throw new CalendarSourceError(
          'ERR_ICS_EXPANSION_LIMIT',
          work.calendar,
          `This recurring event needs more than ${cap} repetitions to reach the window.`,
          master.line,
        );
      }
      if (iterate(work) || stepDue) yield;
      if (t === EMPTY_PERIOD) continue; // a run of periods with no instance, counted all the same
      const wall = wallOf(t);
      if (wall >= wallTo) break;
      if (wall < wallFrom) continue;
      const start = { time: t.clone(), zone: master.start.zone };
      const instant = instantOf(start, zone);
      if (instant > untilInstant) break;
      add({ start, instant });
    }
  }
  for (const rdate of series.rdates) {
    add({ start: rdate.start, instant: instantOf(rdate.start, zone), ...(rdate.end ? { end: rdate.end } : {}) });
  }

  const excluded = new RecurrenceMatcher<true>(zone);
  for (const exdate of series.exdates) excluded.add(exdate, true);
  const overrides = new RecurrenceMatcher<InstanceOverride>(zone);
  for (const o of series.overrides) overrides.add(o.recurrenceId, o);

  const instances: EventInstance[] = [];
  const used = new Set<InstanceOverride>();
  for (const occurrence of occurrences.values()) {
    if (excluded.find(occurrence)) continue;
    const override = overrides.find(occurrence);
    if (override) {
      used.add(override);
      instances.push(instanceOf(override.timing, zone, master));
      continue;
    }
    const end = occurrence.end ?? master.end;
    instances.push({
      start: occurrence.instant,
      end: endOf(end, occurrence.start, occurrence.instant, zone, master),
      availability: master.availability,
    });
  }
  // An override whose instance the rules do not produce (here) still happened: keep it.
  for (const o of series.overrides) if (!used.has(o)) instances.push(instanceOf(o.timing, zone, master));
  return instances;
}

function instanceOf(timing: EventTiming, zone: string, master: EventTiming): EventInstance {
  const start = instantOf(timing.start, zone);
  return { start, end: endOf(timing.end, timing.start, start, zone, master), availability: timing.availability };
}

/**
 * The end of an instance that starts at `start` (written as `startTime`).
 * `master`, for instances of a series, gives the series' length:
 * RFC 5545 §3.8.5.3 gives every instance the master's exact duration when it
 * has DTEND, and DURATION's days are nominal (§3.3.6: a day across a DST
 * change keeps the clock time). An override with neither DTEND nor DURATION
 * keeps the master's length rather than lasting no time: a moved meeting still
 * takes its hour.
 */
function endOf(end: EventEnd, startTime: CalendarTime, start: number, zone: string, master?: EventTiming): number {
  switch (end.kind) {
    case 'after':
      return addDuration(startTime, start, end.duration, zone);
    case 'at':
      if (!master || master.end !== end) return instantOf(end.end, zone);
      if (startTime.time.isDate && end.end.time.isDate) {
        const days = Math.round((wallOf(end.end.time) - wallOf(master.start.time)) / DAY_MS);
        return fromWall(wallOf(startTime.time) + days * DAY_MS, zone);
      }
      return start + (instantOf(end.end, zone) - instantOf(master.start, zone));
    case 'unspecified':
      if (startTime.time.isDate) return fromWall(wallOf(startTime.time) + DAY_MS, zone);
      if (master && master.end.kind !== 'unspecified' && master.start !== startTime) {
        return endOf(master.end, startTime, start, zone, master);
      }
      return start;
  }
}

/** Adds an RFC 5545 duration: weeks and days on the clock of the start's zone, hours to seconds as elapsed time. */
function addDuration(startTime: CalendarTime, start: number, duration: ICAL.Duration, zone: string): number {
  if (duration.isNegative) return start;
  const days = duration.weeks * 7 + duration.days;
  const exact = ((duration.hours * 60 + duration.minutes) * 60 + duration.seconds) * 1000;
  if (days === 0) return start + exact;
  const wallZone = wallZoneOf(startTime, zone);
  if (wallZone !== undefined) return fromWall(toWall(start, wallZone) + days * DAY_MS, wallZone) + exact;
  if (startTime.zone.kind === 'utc') return start + days * DAY_MS + exact;
  const later = startTime.time.clone();
  later.adjust(days, 0, 0, 0);
  return instantOf({ time: later, zone: startTime.zone }, zone) + exact;
}

/** BY-parts that never leave a DAILY or WEEKLY period without an instance. */
const EVERY_PERIOD_PARTS = new Set(['BYDAY', 'BYHOUR', 'BYMINUTE', 'BYSECOND']);

/**
 * Whether every instance a rule makes starts (on its wall clock) before
 * `wallFrom`, known without iterating, so that a series that ended years ago
 * costs nothing: an UNTIL more than a day before (offsets are under a day), or
 * a COUNT of a DAILY or WEEKLY rule whose BY-parts match in every stretch of
 * 7 × INTERVAL days (with DAILY and BYDAY the candidate days reach every
 * weekday within 7 steps), so that its last instance is at most
 * COUNT × INTERVAL weeks after DTSTART.
 */
function endsBefore(rule: ICAL.Recur, dtstart: ICAL.Time, wallFrom: number): boolean {
  if (rule.until) return wallOf(rule.until) + DAY_MS < wallFrom;
  if (!rule.count || (rule.freq !== 'DAILY' && rule.freq !== 'WEEKLY')) return false;
  if (!Object.keys(rule.parts).every((part) => EVERY_PERIOD_PARTS.has(part))) return false;
  return wallOf(dtstart) + (rule.count + 1) * (rule.interval || 1) * 7 * DAY_MS < wallFrom;
}

/**
 * The rule to iterate for a series, and the instant past which its instances
 * end (Infinity: where the rule says). ical.js compares UNTIL with instances by
 * reading both as instants, but an instance of a series whose zone ical.js does
 * not know (an IANA TZID without VTIMEZONE, a floating time, an all-day date)
 * reads as if it were UTC; so a UTC UNTIL is moved onto the series' own clock.
 * In a zone the file defines (VTIMEZONE) ical.js reads the repeated hour of a
 * fall-back night with the offset after the change, so an instance at UNTIL in
 * that hour was dropped (found in review regress21d): there the rule is
 * iterated without UNTIL, and its instances end after UNTIL's instant as
 * instantOf reads them (RFC 5545 §3.3.5: the first of the two).
 */
function ruleInWallTime(rule: ICAL.Recur, start: CalendarTime, zone: string): { iterated: ICAL.Recur; untilInstant: number } {
  const unchanged = { iterated: rule, untilInstant: Infinity };
  if (!rule.until || rule.until.zone !== ICAL.Timezone.utcTimezone) return unchanged;
  if (start.zone.kind === 'defined' && !start.time.isDate) {
    const copy = rule.clone();
    copy.until = null;
    return { iterated: copy, untilInstant: wallOf(rule.until) };
  }
  const wallZone = wallZoneOf(start, zone);
  if (wallZone === undefined) return unchanged;
  const wall = new Date(toWall(wallOf(rule.until), wallZone));
  const copy = rule.clone();
  copy.until = ICAL.Time.fromData({
    year: wall.getUTCFullYear(),
    month: wall.getUTCMonth() + 1,
    day: wall.getUTCDate(),
    hour: wall.getUTCHours(),
    minute: wall.getUTCMinutes(),
    second: wall.getUTCSeconds(),
    isDate: false,
  });
  return { iterated: copy, untilInstant: Infinity };
}

/**
 * Finds what a recurrence instance is referred to by (EXDATE, RECURRENCE-ID):
 * the same instant, or the same date as written when either side is a date
 * (Exchange writes RECURRENCE-ID of an all-day instance as local midnight).
 */
class RecurrenceMatcher<T> {
  private readonly byInstant = new Map<number, T>();
  private readonly byDate = new Map<number, T>();
  private readonly byDateOnly = new Map<number, T>();

  constructor(private readonly zone: string) {}

  add(ref: CalendarTime, value: T): void {
    if (!ref.time.isDate) this.byInstant.set(instantOf(ref, this.zone), value);
    else this.byDateOnly.set(dateOf(ref.time), value);
    this.byDate.set(dateOf(ref.time), value);
  }

  find(o: Occurrence): T | undefined {
    if (o.start.time.isDate) return this.byDate.get(dateOf(o.start.time));
    return this.byInstant.get(o.instant) ?? this.byDateOnly.get(dateOf(o.start.time));
  }
}
