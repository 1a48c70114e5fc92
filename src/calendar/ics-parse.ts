// From iCalendar text to a ParsedCalendar: the events (each recurring series
// with its rules, extra and excluded dates and overridden instances, grouped
// by UID), VFREEBUSY periods, and warnings. Parsing does not depend on the
// window or on the owner's zone, so a parsed calendar can be cached and
// expanded many times. Errors name the calendar and the line. A server parses
// cooperatively (parseCalendarCooperatively), in steps of a few milliseconds:
// one component at most per step, whose size the text layer bounds.
import ICAL from 'ical.js';
import { asCalendarSourceError, CalendarSourceError } from './errors.js';
import { datePartsSatisfiable } from './ics-rules.js';
import { readIcsText, type ComponentSpan, type ContentLine, type IcsText } from './ics-text.js';
import { dateOf, instantOf, zoneRuleOf, type CalendarTime } from './ics-time.js';
import { addZone, ZoneCalendar } from './ics-zones.js';
import { runSteps, runStepsCooperatively, StepCounter, type Steps } from './steps.js';

/** Whether an instance makes its owner busy. */
export type Availability = 'busy' | 'tentative' | 'free';

/** How an instance ends. */
export type EventEnd =
  /** DTEND (or a period's end). */
  | { kind: 'at'; end: CalendarTime }
  /** DURATION (or a period's duration). */
  | { kind: 'after'; duration: ICAL.Duration }
  /** Neither: a day for an all-day event, otherwise no time at all (RFC 5545 §3.6.1). */
  | { kind: 'unspecified' };

/** One VEVENT's own timing and availability. */
export interface EventTiming {
  start: CalendarTime;
  end: EventEnd;
  availability: Availability;
  /** Line of its BEGIN:VEVENT. */
  line: number;
}

/** An extra instance from RDATE: a start, and its own end when the RDATE is a PERIOD. */
export interface RecurrenceDate {
  start: CalendarTime;
  end?: EventEnd;
}

/** A VEVENT with RECURRENCE-ID: it replaces the instance that the master generates at that time. */
export interface InstanceOverride {
  recurrenceId: CalendarTime;
  timing: EventTiming;
}

/** A UID's events: the master with its recurrence, and the instances it overrides. */
export interface EventSeries {
  uid: string | undefined;
  /**
   * The series' own VEVENT; for an overridden instance whose master the file
   * lacks (an invitation to one occurrence), that instance.
   */
  master: EventTiming;
  rules: ICAL.Recur[];
  rdates: RecurrenceDate[];
  exdates: CalendarTime[];
  overrides: InstanceOverride[];
}

/** Busy time a VFREEBUSY component states directly (RFC 5545 §3.6.4). */
export interface FreeBusyPeriod {
  start: CalendarTime;
  end: EventEnd;
  availability: Availability;
}

/** A calendar read and checked, ready to expand into busy time for any window. */
export interface ParsedCalendar {
  readonly name: string;
  readonly series: readonly EventSeries[];
  readonly freeBusy: readonly FreeBusyPeriod[];
  /** What was repaired or read by assumption, with lines; never event details. */
  readonly warnings: readonly string[];
}

/** Work (ComponentSpan#size) handed to ical.js between two steps: a few milliseconds. */
const WORK_PER_STEP = 250;

/** The calendar in `raw`, read in one go (a command that does nothing else meanwhile). */
export function parseCalendar(raw: string, name: string): ParsedCalendar {
  return runSteps(parseSteps(raw, name));
}

// One cooperative parse at a time in the process, the others waiting their turn, as when parsing was synchronous:
// several large feeds read side by side would each hold their lines and partial results at once.
let parseQueue: Promise<unknown> = Promise.resolve();

/**
 * The calendar in `raw`, read in steps of a few milliseconds with the event
 * loop running between them, so that the other servers of the process keep
 * answering while a large feed or file is read.
 */
export function parseCalendarCooperatively(raw: string, name: string): Promise<ParsedCalendar> {
  const work = () => runStepsCooperatively(parseSteps(raw, name));
  const turn = parseQueue.then(work, work);
  parseQueue = turn.catch(() => undefined);
  return turn;
}

/**
 * The parse as steps. The text layer checks the whole file first; then each
 * component is handed to ical.js on its own, under a VCALENDAR that holds the
 * calendar's own properties and finds its time zones by TZID in a Map
 * (ics-zones.ts), so a component's TZID finds its VTIMEZONE as in the whole
 * file, in one look-up, and only one component's ical.js tree is alive at a
 * time.
 */
function* parseSteps(raw: string, name: string): Steps<ParsedCalendar> {
  const text = yield* readIcsText(raw, name);
  const warnings = [...text.repairs];
  const reader = new EventReader(name, text, warnings);
  const counter = new StepCounter(WORK_PER_STEP);
  const parse = (lines: readonly ContentLine[]) => parseWithIcal(lines, name);

  const masters = new Map<string, EventSeries>();
  const series: EventSeries[] = [];
  const overridesByUid = new Map<string, InstanceOverride[]>();
  /** The component being read, for an error of ical.js that none of the checks saw coming. */
  let reading: ComponentSpan | undefined;
  try {
    for (const spans of text.calendars) {
      reading = undefined;
      // Time zones first: an event may refer to one defined after it.
      const zones = new Map<string, ICAL.Timezone>();
      for (const span of spans.components) {
        if (span.name !== 'VTIMEZONE') continue;
        reading = span;
        const zone = new ICAL.Component(parse(linesOf(text, span)));
        const tzid = zone.getFirstPropertyValue('tzid');
        // A VTIMEZONE without TZID cannot be referred to.
        if (typeof tzid === 'string') addZone(zones, zone, tzid);
        else warnings.push(`line ${span.line}: ignored a VTIMEZONE without TZID`);
        if (counter.spend(span.size)) yield;
      }
      reading = undefined;
      const calendar = new ZoneCalendar(parse(spans.own.map((i) => text.lines[i]!)), zones);
      for (const span of spans.components) {
        if (span.name === 'VTIMEZONE') continue;
        reading = span;
        const component = new ICAL.Component(parse(linesOf(text, span)), calendar);
        if (counter.spend(span.size)) yield;
        if (component.name === 'vfreebusy') for (const period of reader.freeBusyPeriods(component, span)) reader.freeBusy.push(period);
        if (component.name !== 'vevent') continue;
        const uid = reader.text(component, 'uid');
        if (component.hasProperty('recurrence-id')) {
          const override = reader.override(component, span);
          // Without a UID it belongs to no series: an event of its own.
          if (uid === undefined) series.push(standalone(undefined, override));
          else appendTo(overridesByUid, uid, override);
          continue;
        }
        const entry = reader.series(component, span, uid);
        series.push(entry);
        if (uid !== undefined && !masters.has(uid)) masters.set(uid, entry);
      }
    }
  } catch (err) {
    // Whatever ical.js throws outside EventReader#read is this calendar's fault too, not the server's (review
    // s34privacy: an offset it could not read, met when an event's DTEND was compared with its DTSTART, was a 500 for
    // every search, skip or not). As a CalendarSourceError it names the calendar and the component's line, `calendar
    // add` refuses it, a skipped calendar is skipped and a feed's refusal is remembered; ical.js's words, which may
    // quote the file, go to the owner only.
    throw asCalendarSourceError(err, 'ERR_ICS_VALUE', name, `This ${componentWord(reading)} cannot be read.`, reading?.line, plain(err));
  }
  for (const [uid, overrides] of overridesByUid) {
    const master = masters.get(uid);
    if (master) for (const o of overrides) master.overrides.push(o);
    // Only overridden instances and no master: each is an event of its own.
    else for (const o of overrides) series.push(standalone(uid, o));
  }
  return { name, series, freeBusy: reader.freeBusy, warnings };
}

/** How a reason names a component: RFC 5545's words for those read, never the file's own name for one. */
function componentWord(span: ComponentSpan | undefined): string {
  switch (span?.name) {
    case undefined:
      return 'calendar';
    case 'VEVENT':
      return 'event';
    case 'VTIMEZONE':
      return 'time zone';
    case 'VFREEBUSY':
      return 'free/busy component';
    default:
      return 'component';
  }
}

/** Adds `item` to the list under `key`, in place (a copy per item would make n items cost n²). */
function appendTo<K, V>(lists: Map<K, V[]>, key: K, item: V): void {
  const list = lists.get(key);
  if (list) list.push(item);
  else lists.set(key, [item]);
}

function linesOf(text: IcsText, span: ComponentSpan): ContentLine[] {
  return text.lines.slice(span.first, span.last + 1);
}

function standalone(uid: string | undefined, override: InstanceOverride): EventSeries {
  return { uid, master: override.timing, rules: [], rdates: [], exdates: [], overrides: [] };
}

/** ical.js's parse of one component, with its errors turned into ours (and the line found from the text it quotes). */
function parseWithIcal(lines: readonly ContentLine[], name: string): unknown[] {
  try {
    return ICAL.parse(lines.map((l) => l.text).join('\r\n') + '\r\n') as unknown[];
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const quoted = lines.filter((l) => message.includes(l.text)).sort((a, b) => b.text.length - a.text.length)[0];
    throw new CalendarSourceError('ERR_ICS_SYNTAX', name, 'This line is not valid iCalendar.', quoted?.line);
  }
}

/** Reads VEVENT and VFREEBUSY components into the model, naming the line of whatever is wrong. */
class EventReader {
  readonly freeBusy: FreeBusyPeriod[] = [];
  /** TZIDs already warned about: one warning each. */
  private readonly unknownTzids = new Set<string>();

  constructor(
    private readonly calendar: string,
    private readonly source: IcsText,
    private readonly warnings: string[],
  ) {}

  series(component: ICAL.Component, span: ComponentSpan, uid: string | undefined): EventSeries {
    const timing = this.timing(component, span);
    const rules = component.getAllProperties('rrule').flatMap((property) => {
      // The rule as written was checked before ical.js read it (recurRuleProblem); ical.js iterates no rule
      // (ics-periods.ts does), so it is not asked to start one either. Found in review regress21d: starting one was
      // how ical.js checked a rule, and for a yearly rule that never matches its set-up walked every year to 20000
      // (20 such events, 3 KB: 2.7 s at parse), and it refused valid rules that ics-periods.ts expands.
      const rule = this.read(span, 'RRULE', 'ERR_ICS_RULE', () => property.getFirstValue() as ICAL.Recur);
      if (!datePartsSatisfiable(rule.parts)) {
        this.warnings.push(`line ${this.lineOf(span, 'RRULE')}: a recurrence rule that matches no date was ignored`);
        return [];
      }
      return [rule];
    });
    const rdates = component.getAllProperties('rdate').flatMap((property) =>
      this.read(span, 'RDATE', 'ERR_ICS_VALUE', () =>
        property.getValues().map((value): RecurrenceDate => {
          if (value instanceof ICAL.Period) {
            const start = this.timeOf(property, value.start, span);
            const end: EventEnd = value.end
              ? { kind: 'at', end: this.timeOf(property, value.end, span) }
              : { kind: 'after', duration: value.duration! };
            return { start, end };
          }
          return { start: this.timeOf(property, value as ICAL.Time, span) };
        }),
      ),
    );
    const exdates = component.getAllProperties('exdate').flatMap((property) =>
      this.read(span, 'EXDATE', 'ERR_ICS_VALUE', () => property.getValues().map((v) => this.timeOf(property, v as ICAL.Time, span))),
    );
    return { uid, master: timing, rules, rdates, exdates, overrides: [] };
  }

  override(component: ICAL.Component, span: ComponentSpan): InstanceOverride {
    const property = component.getFirstProperty('recurrence-id')!;
    const recurrenceId = this.read(span, 'RECURRENCE-ID', 'ERR_ICS_VALUE', () =>
      this.timeOf(property, property.getFirstValue() as ICAL.Time, span),
    );
    const range = property.getParameter('range');
    if (typeof range === 'string' && range.toUpperCase() === 'THISANDFUTURE') {
      this.warnings.push(`line ${this.lineOf(span, 'RECURRENCE-ID')}: RANGE=THISANDFUTURE read as changing one instance`);
    }
    return { recurrenceId, timing: this.timing(component, span) };
  }

  freeBusyPeriods(component: ICAL.Component, span: ComponentSpan): FreeBusyPeriod[] {
    return component.getAllProperties('freebusy').flatMap((property) => {
      const type = String(property.getParameter('fbtype') ?? 'BUSY').toUpperCase();
      if (type === 'FREE') return [];
      const availability: Availability = type === 'BUSY-TENTATIVE' ? 'tentative' : 'busy';
      return this.read(span, 'FREEBUSY', 'ERR_ICS_VALUE', () =>
        property.getValues().map((value): FreeBusyPeriod => {
          const period = value as ICAL.Period;
          if (!(period instanceof ICAL.Period)) throw new Error('not a period');
          return {
            start: this.timeOf(property, period.start, span),
            end: period.end ? { kind: 'at', end: this.timeOf(property, period.end, span) } : { kind: 'after', duration: period.duration! },
            availability,
          };
        }),
      );
    });
  }

  text(component: ICAL.Component, name: string): string | undefined {
    const value = component.getFirstPropertyValue(name);
    return typeof value === 'string' ? value : undefined;
  }

  private timing(component: ICAL.Component, span: ComponentSpan): EventTiming {
    const dtstart = component.getFirstProperty('dtstart');
    if (!dtstart) throw new CalendarSourceError('ERR_ICS_EVENT', this.calendar, 'This event has no DTSTART.', span.line);
    const start = this.read(span, 'DTSTART', 'ERR_ICS_VALUE', () => this.timeOf(dtstart, dtstart.getFirstValue() as ICAL.Time, span));
    let end: EventEnd = { kind: 'unspecified' };
    const dtend = component.getFirstProperty('dtend');
    const duration = component.getFirstProperty('duration');
    if (dtend) end = { kind: 'at', end: this.read(span, 'DTEND', 'ERR_ICS_VALUE', () => this.timeOf(dtend, dtend.getFirstValue() as ICAL.Time, span)) };
    else if (duration) end = { kind: 'after', duration: this.read(span, 'DURATION', 'ERR_ICS_VALUE', () => duration.getFirstValue() as ICAL.Duration) };
    const backwards = endsBeforeStart(start, end);
    if (backwards) this.warnings.push(`line ${this.lineOf(span, end.kind === 'at' ? 'DTEND' : 'DURATION')}: ${backwards}`);
    return { start, end, availability: availabilityOf(component), line: span.line };
  }

  private timeOf(property: ICAL.Property, time: ICAL.Time, span: ComponentSpan): CalendarTime {
    if (!(time instanceof ICAL.Time)) throw new Error('not a date or date-time');
    const { rule, unknownTzid } = zoneRuleOf(property, time);
    if (unknownTzid !== undefined && !this.unknownTzids.has(unknownTzid)) {
      this.unknownTzids.add(unknownTzid);
      this.warnings.push(`line ${this.lineOf(span, property.name.toUpperCase())}: unknown time zone "${unknownTzid}" read in the owner's zone`);
    }
    return { time, zone: rule };
  }

  /** Runs an ical.js read; its failure becomes our error on the property's line. */
  private read<T>(span: ComponentSpan, property: string, code: 'ERR_ICS_VALUE' | 'ERR_ICS_RULE', fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      // ical.js's words may quote the rule's text (`invalid WKST value "…"`): for the owner only.
      const reason = code === 'ERR_ICS_RULE' ? 'This recurrence rule cannot be used.' : `${property} cannot be read.`;
      throw asCalendarSourceError(err, code, this.calendar, reason, this.lineOf(span, property), code === 'ERR_ICS_RULE' ? plain(err) : undefined);
    }
  }

  /** The line of the first `property` inside a component, else the component's BEGIN line. */
  private lineOf(span: ComponentSpan, property: string): number {
    for (let i = span.first; i <= span.last; i++) if (this.source.lines[i]!.name === property) return this.source.lines[i]!.line;
    return span.line;
  }
}

/**
 * Why an event's end gives it no time at all, for a warning (the expansion
 * gives it no busy time, silently): DTEND before DTSTART (RFC 5545 §3.8.2.2:
 * it MUST be later), an all-day DTEND not after DTSTART (§3.6.1: the day is
 * not included), a negative DURATION (§3.6.1). Times read in the owner's zone
 * are compared with times in a zone only when both are.
 */
function endsBeforeStart(start: CalendarTime, end: EventEnd): string | undefined {
  if (end.kind === 'after') return end.duration.isNegative ? 'a negative DURATION gives this event no busy time' : undefined;
  if (end.kind !== 'at' || start.time.isDate !== end.end.time.isDate) return undefined;
  if (start.time.isDate) return dateOf(end.end.time) <= dateOf(start.time) ? 'an all-day DTEND not after DTSTART gives this event no busy time' : undefined;
  const floating = [start, end.end].filter((t) => t.zone.kind === 'floating').length;
  if (floating === 1) return undefined;
  // With no zone in either, both are on the owner's clock, whatever zone that is: UTC reads the same order.
  return instantOf(end.end, 'UTC') < instantOf(start, 'UTC') ? 'DTEND before DTSTART gives this event no busy time' : undefined;
}

/**
 * Outlook's and Exchange's busy status of an event, as they export it
 * (MS-OXCICAL: X-MICROSOFT-CDO-BUSYSTATUS, mapped to PidLidBusyStatus,
 * MS-OXOCAL §2.2.1.2). They write TRANSP:OPAQUE for a tentative event and for
 * some free ones, so TRANSP alone says busy for both.
 */
const MICROSOFT_BUSY_STATUS: ReadonlyMap<string, Availability> = new Map([
  ['FREE', 'free'],
  ['TENTATIVE', 'tentative'],
  ['BUSY', 'busy'],
  ['OOF', 'busy'],
  ['WORKINGELSEWHERE', 'busy'],
]);

/**
 * RFC 5545 §3.8.2.7 TRANSP and §3.8.1.11 STATUS: what an event does to its
 * owner's time. An event neither cancelled nor tentative whose
 * X-MICROSOFT-CDO-BUSYSTATUS is known is what that says, whatever TRANSP says.
 */
function availabilityOf(component: ICAL.Component): Availability {
  const status = String(component.getFirstPropertyValue('status') ?? '').toUpperCase();
  const transp = String(component.getFirstPropertyValue('transp') ?? '').toUpperCase();
  const microsoft = MICROSOFT_BUSY_STATUS.get(String(component.getFirstPropertyValue('x-microsoft-cdo-busystatus') ?? '').trim().toUpperCase());
  if (status === 'CANCELLED') return 'free';
  if (status === 'TENTATIVE') return transp === 'TRANSPARENT' ? 'free' : 'tentative';
  if (microsoft) return microsoft;
  if (transp === 'TRANSPARENT') return 'free';
  return 'busy';
}

/** An ical.js error's message on one line: it may quote a rule's values, so it goes to the owner only. */
function plain(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s+/g, ' ').slice(0, 120);
}
