// The text layer of an .ics file, read before ical.js sees it: content lines
// unfolded (RFC 5545 §3.1) with the physical line each starts on, the
// component structure checked (every BEGIN has its END), two repairs for what
// real producers write (Exchange's TZID quoted together with the value; dates
// without VALUE=DATE), and the values ical.js would silently misread or fail
// on checked (recurrence rules, dates, durations, a time zone's offsets), and
// the rules of time zones bounded (ics-zone-rules.ts). Errors name the calendar, the property and the line,
// never the file's text (a value, a component name outside RFC 5545's): that
// goes apart, for the owner (CalendarSourceError#quoted).
// Pure. The read is a generator that yields every few thousand lines, so that
// a server reads a large feed in steps (steps.ts).
import { CalendarSourceError, type SourceProblem } from './errors.js';
import { recurRuleProblem } from './ics-rules.js';
import { MAX_CALENDAR_ZONE_WORK, MAX_ZONE_WORK, observanceCost, type Observance } from './ics-zone-rules.js';
import { StepCounter, type Steps } from './steps.js';

/** One unfolded content line. */
export interface ContentLine {
  /** The line as ical.js will read it (after repairs). */
  text: string;
  /** Physical line (1-based) on which it starts in the file. */
  line: number;
  /** Upper-cased property name, or BEGIN / END. */
  name: string;
}

/** A component directly inside a VCALENDAR (VEVENT, VTIMEZONE, VFREEBUSY, …). */
export interface ComponentSpan {
  name: string;
  /** Physical line of its BEGIN. */
  line: number;
  /** Index range [first, last] of its content lines in IcsText#lines. */
  first: number;
  last: number;
  /** What reading it costs: its content lines, and each value past the first of a list of dates or periods. */
  size: number;
}

/** One VCALENDAR: its own content lines (BEGIN, properties, END) and the components directly inside it. */
export interface CalendarSpan {
  /** Indexes in IcsText#lines of the lines that are not inside a component. */
  own: number[];
  /** In document order. */
  components: ComponentSpan[];
}

export interface IcsText {
  /** Unfolded and repaired, as ical.js will read them. */
  lines: ContentLine[];
  /** The VCALENDARs, in document order. */
  calendars: CalendarSpan[];
  /** What was repaired, with lines. */
  repairs: string[];
}

/** Lines read between two steps: a few milliseconds of work. */
const LINES_PER_STEP = 4_000;

/**
 * The most components (events, time zones, …) a calendar may hold. A busy
 * Google Calendar export with years of history holds some thousands of events,
 * a 20 MB one about 30,000; the cap bounds what a calendar costs in time and
 * memory for as long as it is kept, whatever its bytes are spent on.
 */
export const MAX_CALENDAR_COMPONENTS = 100_000;

/**
 * The largest component (ComponentSpan#size). A server reads one component
 * per step at most, so this bounds how long a step can take (10,000 dates of
 * an EXDATE take ical.js about 0.2 s). A real event has tens of lines, one
 * with a thousand guests a thousand, a long-running series some hundreds of
 * excluded dates.
 */
export const MAX_COMPONENT_SIZE = 10_000;

/** Properties whose value may be a list of dates or periods, which ical.js reads into one object each. */
const DATE_LISTS = new Set(['EXDATE', 'RDATE', 'FREEBUSY']);

/** Properties whose values are dates or date-times, which ical.js cannot read as bare yyyymmdd. */
const DATE_PROPERTIES = new Set(['DTSTART', 'DTEND', 'DUE', 'RECURRENCE-ID', 'EXDATE', 'RDATE']);
const DATE = /^\d{8}$/;
const DATE_TIME = /^\d{8}T\d{6}Z?$/i;
const DURATION = /^[+-]?P(?=.*\d)(?:\d+W)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+S)?)?$/i;

/** Components named by RFC 5545 and its extensions (RFC 7953, RFC 9073): a reason may name these, and no other. */
const KNOWN_COMPONENTS = new Set([
  'VCALENDAR', 'VEVENT', 'VTODO', 'VJOURNAL', 'VFREEBUSY', 'VTIMEZONE', 'VALARM', 'STANDARD', 'DAYLIGHT',
  'VAVAILABILITY', 'AVAILABLE', 'VLOCATION', 'VRESOURCE', 'PARTICIPANT',
]);

export function* readIcsText(raw: string, calendar: string): Steps<IcsText> {
  const fail = (reason: string, line?: number, quoted?: string): never => {
    throw new CalendarSourceError('ERR_ICS_SYNTAX', calendar, reason, line, quoted);
  };
  const counter = new StepCounter(LINES_PER_STEP);
  const lines: ContentLine[] = [];
  const repairs: string[] = [];
  // The physical lines one at a time (a split of the whole text would be one long step, and a second copy of it).
  const source = raw.replace(/^\uFEFF/, '');
  const lineBreak = /\r\n|\n|\r/g;
  for (let start = 0, physical = 1; start <= source.length; physical++) {
    lineBreak.lastIndex = start;
    const found = lineBreak.exec(source);
    const end = found ? found.index : source.length;
    const text = source.slice(start, end);
    start = found ? end + found[0].length : source.length + 1;
    if (counter.spend(1)) yield;
    if (text.trim() === '') continue;
    if (text[0] === ' ' || text[0] === '\t') {
      const previous = lines[lines.length - 1];
      if (!previous) fail('The file starts with a folded continuation line.', physical);
      previous!.text += text.slice(1);
      continue;
    }
    lines.push({ text, line: physical, name: '' });
  }

  for (const cl of lines) {
    if (counter.spend(1)) yield;
    const colon = valueColon(cl.text);
    if (colon === -1) {
      const repaired = repairQuotedValue(cl.text);
      if (!repaired) fail('This is not a content line (NAME:VALUE).', cl.line);
      cl.text = repaired!;
      repairs.push(`line ${cl.line}: moved a value out of a quoted TZID`);
    }
    cl.name = cl.text.slice(0, cl.text.search(/[;:]/)).toUpperCase();
    if (DATE_PROPERTIES.has(cl.name)) {
      const dated = markBareDates(cl.text, cl.name);
      if (dated !== cl.text) {
        cl.text = dated;
        repairs.push(`line ${cl.line}: read ${cl.name} as a date`);
      }
    }
  }

  const calendars = yield* structure(lines, fail, counter);
  checkSize(calendars, calendar);
  for (const cl of lines) {
    if (counter.spend(1)) yield;
    const problem = valueProblem(cl);
    if (problem) throw new CalendarSourceError(cl.name === 'RRULE' ? 'ERR_ICS_RULE' : 'ERR_ICS_VALUE', calendar, problem.reason, cl.line, problem.quoted);
  }
  yield* checkZones(lines, calendars, calendar, counter);
  return { lines, calendars, repairs };
}

/** The index of the colon that starts the value: the first one outside double quotes. */
function valueColon(text: string): number {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (c === ':' && !quoted) return i;
  }
  return -1;
}

/** The parameters and value of a content line. */
function split(text: string): { params: string; value: string } {
  const colon = valueColon(text);
  const head = text.slice(0, colon);
  const semi = head.indexOf(';');
  return { params: semi === -1 ? '' : head.slice(semi + 1), value: text.slice(colon + 1) };
}

/**
 * Exchange 2010 writes `DTSTART;TZID="W. Europe Standard Time:20200609T090000"`:
 * the value inside the quotes. Move it out: `…;TZID="W. Europe Standard Time":20200609T090000`.
 */
function repairQuotedValue(text: string): string | undefined {
  const m = /^([^:"]*;TZID=)"([^":]+):(\d{8}(?:T\d{6}Z?)?)"$/i.exec(text);
  return m ? `${m[1]}"${m[2]}":${m[3]}` : undefined;
}

/** `EXDATE:20400116` (a date without VALUE=DATE, which ical.js misreads) becomes `EXDATE;VALUE=DATE:20400116`. */
function markBareDates(text: string, name: string): string {
  const { params, value } = split(text);
  if (/(^|;)VALUE=/i.test(params)) return text;
  const items = value.split(',');
  if (!items.every((v) => DATE.test(v))) return text;
  return `${text.slice(0, name.length)};VALUE=DATE${text.slice(name.length)}`;
}

/** Checks that BEGIN and END pair up and collects each VCALENDAR's own lines and the components directly inside it. */
function* structure(lines: readonly ContentLine[], fail: (reason: string, line?: number, quoted?: string) => never, counter: StepCounter): Steps<CalendarSpan[]> {
  const stack: Array<{ name: string; line: number; index: number }> = [];
  const calendars: CalendarSpan[] = [];
  // Values past the first in the date lists of the component being read.
  let extraValues = 0;
  for (let index = 0; index < lines.length; index++) {
    if (counter.spend(1)) yield;
    const cl = lines[index]!;
    if (DATE_LISTS.has(cl.name)) extraValues += commas(split(cl.text).value);
    if (cl.name === 'BEGIN' || cl.name === 'END') {
      const component = split(cl.text).value.trim().toUpperCase();
      if (cl.name === 'BEGIN') {
        if (stack.length === 0 && component !== 'VCALENDAR') fail(`BEGIN:${named(component)} outside a VCALENDAR.`, cl.line, unnamed(component));
        if (stack.length === 0) calendars.push({ own: [index], components: [] });
        if (stack.length === 1) extraValues = 0;
        stack.push({ name: component, line: cl.line, index });
        continue;
      }
      const open = stack.pop();
      if (!open) fail(`END:${named(component)} without a BEGIN.`, cl.line, unnamed(component));
      if (open!.name !== component) {
        fail(`END:${named(component)} closes BEGIN:${named(open!.name)} of line ${open!.line}.`, cl.line, unnamed(component, open!.name));
      }
      if (stack.length === 0) calendars[calendars.length - 1]!.own.push(index);
      if (stack.length === 1 && stack[0]!.name === 'VCALENDAR') {
        const size = index - open!.index + 1 + extraValues;
        calendars[calendars.length - 1]!.components.push({ name: component, line: open!.line, first: open!.index, last: index, size });
      }
      continue;
    }
    if (stack.length === 0) fail('A property outside BEGIN:VCALENDAR … END:VCALENDAR.', cl.line);
    if (stack.length === 1) calendars[calendars.length - 1]!.own.push(index);
  }
  const unclosed = stack[stack.length - 1];
  if (unclosed) fail(`BEGIN:${named(unclosed.name)} is never closed.`, unclosed.line, unnamed(unclosed.name));
  if (calendars.length === 0) fail('There is no BEGIN:VCALENDAR: this is not an iCalendar file.');
  return calendars;
}

/** A component's name as a reason may give it: RFC 5545's names as they are, any other (the file's own text) as `…`. */
function named(component: string): string {
  return KNOWN_COMPONENTS.has(component) ? component : '…';
}

/** The names `named` hid, for the owner: undefined when it hid none. */
function unnamed(...components: string[]): string | undefined {
  const hidden = components.filter((c) => !KNOWN_COMPONENTS.has(c));
  return hidden.length > 0 ? hidden.map((c) => `"${c}"`).join(', ') : undefined;
}

function commas(value: string): number {
  let n = 0;
  for (let at = value.indexOf(','); at !== -1; at = value.indexOf(',', at + 1)) n++;
  return n;
}

/** Refuses a calendar too large to keep (MAX_CALENDAR_COMPONENTS) or with a component too large to read in one step. */
function checkSize(calendars: readonly CalendarSpan[], calendar: string): void {
  const count = calendars.reduce((n, c) => n + c.components.length, 0);
  if (count > MAX_CALENDAR_COMPONENTS) {
    const reason = `It holds ${count} events and other components; at most ${MAX_CALENDAR_COMPONENTS} are read. Publish less of it (less history).`;
    throw new CalendarSourceError('ERR_ICS_TOO_LARGE', calendar, reason);
  }
  for (const span of calendars.flatMap((c) => c.components)) {
    if (span.size > MAX_COMPONENT_SIZE) {
      const reason = `This ${KNOWN_COMPONENTS.has(span.name) ? span.name : 'component'} has ${span.size} lines and listed dates; at most ${MAX_COMPONENT_SIZE} are read in one component.`;
      throw new CalendarSourceError('ERR_ICS_TOO_LARGE', calendar, reason, span.line, unnamed(span.name));
    }
  }
}

/**
 * Refuses a VTIMEZONE whose observance rule ical.js should not be given (on
 * the rule's line) or whose observance has a value ical.js cannot read (an
 * offset, a VALUE= type: observancePropertyProblem), and zones that would cost ical.js more than a zone or a
 * calendar may (ics-zone-rules.ts). ical.js expands every component directly
 * inside a VTIMEZONE that has DTSTART and offsets, whatever its name.
 */
function* checkZones(lines: readonly ContentLine[], calendars: readonly CalendarSpan[], calendar: string, counter: StepCounter): Steps<void> {
  let total = 0;
  for (const span of calendars.flatMap((c) => c.components)) {
    if (span.name !== 'VTIMEZONE') continue;
    let work = 0;
    let depth = 0;
    let observance: Observance = { dtstart: undefined, rules: [], rdates: 0 };
    for (let i = span.first + 1; i < span.last; i++) {
      if (counter.spend(1)) yield;
      const cl = lines[i]!;
      if (cl.name === 'BEGIN' && depth++ === 0) observance = { dtstart: undefined, rules: [], rdates: 0 };
      else if (cl.name === 'END' && --depth === 0) {
        const cost = observanceCost(observance);
        if ('problem' in cost) throw new CalendarSourceError('ERR_ICS_RULE', calendar, cost.problem, cost.line);
        work += cost.work;
      } else if (depth === 1) {
        const problem = observancePropertyProblem(cl);
        if (problem) throw new CalendarSourceError('ERR_ICS_VALUE', calendar, problem.reason, cl.line, problem.quoted);
        const { value } = split(cl.text);
        if (cl.name === 'DTSTART') observance.dtstart ??= value;
        else if (cl.name === 'RRULE') observance.rules.push({ value, line: cl.line });
        else if (cl.name === 'RDATE') observance.rdates += commas(value) + 1;
      }
    }
    total += work;
    if (work > MAX_ZONE_WORK || total > MAX_CALENDAR_ZONE_WORK) {
      const [what, limit] = work > MAX_ZONE_WORK ? ['This time zone', MAX_ZONE_WORK] : ["The calendar's time zones up to this one", MAX_CALENDAR_ZONE_WORK];
      const reason = `${what} would take ${work > MAX_ZONE_WORK ? work : total} steps to expand; at most ${limit} are taken (a real zone takes some hundreds).`;
      throw new CalendarSourceError('ERR_ICS_TOO_LARGE', calendar, reason, span.line);
    }
  }
}

/**
 * The value types ical.js is given for the properties of a time zone's
 * observance that it reads itself, when it works out the zone's changes. It
 * reads no value of another type there without failing (DTSTART or RRULE of
 * VALUE=TEXT: a TypeError) or reading a wrong offset without a word
 * (TZOFFSETTO;VALUE=TEXT: no offset at all, the zone's events gone).
 */
const OBSERVANCE_VALUE_TYPES: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['DTSTART', new Set(['DATE-TIME', 'DATE'])],
  ['RDATE', new Set(['DATE-TIME', 'DATE', 'PERIOD'])],
  ['RRULE', new Set(['RECUR'])],
  ['TZOFFSETFROM', new Set(['UTC-OFFSET'])],
  ['TZOFFSETTO', new Set(['UTC-OFFSET'])],
]);

/**
 * RFC 5545 §3.3.14 UTC-OFFSET: a sign, hours and minutes, and seconds if any
 * (`-0500`, `+013045`). RFC 5545 does not allow "-0000" or "-000000", but its
 * meaning is plain and ical.js reads it as zero: a calendar that writes it is
 * read, not refused whole for it.
 */
const UTC_OFFSET = /^[+-]([01]\d|2[0-3])[0-5]\d(?:[0-5]\d|60)?$/;

/**
 * What is wrong with a property of a STANDARD or DAYLIGHT block that ical.js
 * reads when a time in the zone is converted, outside any step that could name
 * the line (found in review s34privacy: `TZOFFSETFROM:LEAKTZOFF` threw ical.js's
 * "Could not extract integer" from the first event in the zone, a 500 for every
 * search, whatever on_calendar_error said). A value ical.js cannot read, and a
 * VALUE= of a type it does not expect, are refused here, on their line.
 */
function observancePropertyProblem(cl: ContentLine): SourceProblem | undefined {
  const types = OBSERVANCE_VALUE_TYPES.get(cl.name);
  if (!types) return undefined;
  const { params, value } = split(cl.text);
  const written = /(?:^|;)VALUE=([^;:]*)/i.exec(params)?.[1];
  if (written !== undefined && !types.has(written.toUpperCase())) {
    return { reason: `${cl.name} in a time zone's STANDARD or DAYLIGHT block is not of a type it may have.`, quoted: `VALUE=${written}` };
  }
  if (cl.name !== 'TZOFFSETFROM' && cl.name !== 'TZOFFSETTO') return undefined;
  if (UTC_OFFSET.test(value)) return undefined;
  return { reason: `${cl.name} is not a UTC offset (+hhmm or -hhmm).`, quoted: `"${value}"` };
}

/** What is wrong with a value ical.js would misread without a word, if anything. */
function valueProblem(cl: ContentLine): SourceProblem | undefined {
  const { params, value } = split(cl.text);
  switch (cl.name) {
    case 'RRULE':
      return recurRuleProblem(value);
    case 'DURATION':
      return DURATION.test(value) ? undefined : { reason: 'DURATION is not a duration.', quoted: `"${value}"` };
    default:
      if (!DATE_PROPERTIES.has(cl.name)) return undefined;
  }
  // Any VALUE= but DATE and PERIOD is checked as a DATE-TIME, and named so (another is the file's text).
  const written = /(?:^|;)VALUE=([A-Z-]+)/i.exec(params)?.[1]?.toUpperCase();
  const type = written === 'DATE' || written === 'PERIOD' ? written : 'DATE-TIME';
  for (const item of value.split(',')) {
    const ok =
      type === 'DATE'
        ? DATE.test(item) && validDate(item)
        : type === 'PERIOD'
          ? periodOk(item)
          : DATE_TIME.test(item) && validDate(item) && validTime(item);
    if (!ok) return { reason: `${cl.name} value is not a ${type.toLowerCase()}.`, quoted: `"${item}"` };
  }
  return undefined;
}

function validDate(v: string): boolean {
  const y = Number(v.slice(0, 4));
  const m = Number(v.slice(4, 6));
  const d = Number(v.slice(6, 8));
  return m >= 1 && m <= 12 && d >= 1 && d <= new Date(Date.UTC(y, m, 0)).getUTCDate();
}

function validTime(v: string): boolean {
  return Number(v.slice(9, 11)) <= 23 && Number(v.slice(11, 13)) <= 59 && Number(v.slice(13, 15)) <= 60;
}

function periodOk(item: string): boolean {
  const [start, end, extra] = item.split('/');
  if (extra !== undefined || !start || !end) return false;
  if (!(DATE_TIME.test(start) && validDate(start) && validTime(start))) return false;
  return DURATION.test(end) || (DATE_TIME.test(end) && validDate(end) && validTime(end));
}
