// The text layer of an .ics file, read before ical.js sees it: content lines
// unfolded (RFC 5545 §3.1) with the physical line each starts on, the
// component structure checked (every BEGIN has its END), two repairs for what
// real producers write (Exchange's TZID quoted together with the value; dates
// without VALUE=DATE), and the values ical.js would silently misread checked
// (recurrence rules, dates, durations). Errors name the calendar and the line.
// Pure.
import { CalendarSourceError } from './errors.js';
import { recurRuleProblem } from './ics-rules.js';

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
}

export interface IcsText {
  /** Unfolded, repaired text for ical.js. */
  text: string;
  lines: ContentLine[];
  /** Components directly inside the VCALENDARs, in document order. */
  components: ComponentSpan[];
  /** What was repaired, with lines. */
  repairs: string[];
}

/** Properties whose values are dates or date-times, which ical.js cannot read as bare yyyymmdd. */
const DATE_PROPERTIES = new Set(['DTSTART', 'DTEND', 'DUE', 'RECURRENCE-ID', 'EXDATE', 'RDATE']);
const DATE = /^\d{8}$/;
const DATE_TIME = /^\d{8}T\d{6}Z?$/i;
const DURATION = /^[+-]?P(?=.*\d)(?:\d+W)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+S)?)?$/i;

export function readIcsText(raw: string, calendar: string): IcsText {
  const fail = (reason: string, line?: number): never => {
    throw new CalendarSourceError('ERR_ICS_SYNTAX', calendar, reason, line);
  };
  const lines: ContentLine[] = [];
  const repairs: string[] = [];
  const physical = raw.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  for (let i = 0; i < physical.length; i++) {
    const text = physical[i]!;
    if (text.trim() === '') continue;
    if (text[0] === ' ' || text[0] === '\t') {
      const previous = lines[lines.length - 1];
      if (!previous) fail('The file starts with a folded continuation line.', i + 1);
      previous!.text += text.slice(1);
      continue;
    }
    lines.push({ text, line: i + 1, name: '' });
  }

  for (const cl of lines) {
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

  const components = structure(lines, fail);
  for (const cl of lines) {
    const problem = valueProblem(cl);
    if (problem) throw new CalendarSourceError(cl.name === 'RRULE' ? 'ERR_ICS_RULE' : 'ERR_ICS_VALUE', calendar, problem, cl.line);
  }
  return { text: lines.map((l) => l.text).join('\r\n') + '\r\n', lines, components, repairs };
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

/** Checks that BEGIN and END pair up and collects the components directly inside each VCALENDAR. */
function structure(lines: readonly ContentLine[], fail: (reason: string, line?: number) => never): ComponentSpan[] {
  const stack: Array<{ name: string; line: number; index: number }> = [];
  const components: ComponentSpan[] = [];
  let calendars = 0;
  lines.forEach((cl, index) => {
    if (cl.name === 'BEGIN' || cl.name === 'END') {
      const component = split(cl.text).value.trim().toUpperCase();
      if (cl.name === 'BEGIN') {
        if (stack.length === 0 && component !== 'VCALENDAR') fail(`BEGIN:${component} outside a VCALENDAR.`, cl.line);
        if (stack.length === 0) calendars++;
        stack.push({ name: component, line: cl.line, index });
        return;
      }
      const open = stack.pop();
      if (!open) fail(`END:${component} without a BEGIN.`, cl.line);
      if (open!.name !== component) fail(`END:${component} closes BEGIN:${open!.name} of line ${open!.line}.`, cl.line);
      if (stack.length === 1 && stack[0]!.name === 'VCALENDAR') {
        components.push({ name: component, line: open!.line, first: open!.index, last: index });
      }
      return;
    }
    if (stack.length === 0) fail('A property outside BEGIN:VCALENDAR … END:VCALENDAR.', cl.line);
  });
  const unclosed = stack[stack.length - 1];
  if (unclosed) fail(`BEGIN:${unclosed.name} is never closed.`, unclosed.line);
  if (calendars === 0) fail('There is no BEGIN:VCALENDAR: this is not an iCalendar file.');
  return components;
}

/** What is wrong with a value ical.js would misread without a word, if anything. */
function valueProblem(cl: ContentLine): string | undefined {
  const { params, value } = split(cl.text);
  switch (cl.name) {
    case 'RRULE':
      return recurRuleProblem(value);
    case 'DURATION':
      return DURATION.test(value) ? undefined : `DURATION "${value}" is not a duration.`;
    default:
      if (!DATE_PROPERTIES.has(cl.name)) return undefined;
  }
  const type = /(?:^|;)VALUE=([A-Z-]+)/i.exec(params)?.[1]?.toUpperCase() ?? 'DATE-TIME';
  for (const item of value.split(',')) {
    const ok =
      type === 'DATE'
        ? DATE.test(item) && validDate(item)
        : type === 'PERIOD'
          ? periodOk(item)
          : DATE_TIME.test(item) && validDate(item) && validTime(item);
    if (!ok) return `${cl.name} value "${item}" is not a ${type.toLowerCase()}.`;
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
