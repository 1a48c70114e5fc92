// Errors of the calendar part: one base class whose `code` is a closed union
// of stable strings that callers switch on (tests assert the code, never the
// prose), with one subclass per concern: durations typed by people, calendar
// sources (ICS files) and slot queries.

export type DurationErrorCode =
  /** Nothing was given. */
  | 'ERR_DURATION_EMPTY'
  /** Not a duration this parser reads (see duration.ts for the accepted forms). */
  | 'ERR_DURATION_SYNTAX'
  /** The duration is zero. */
  | 'ERR_DURATION_ZERO'
  /** Longer than the parser's maximum. */
  | 'ERR_DURATION_TOO_LONG';

export type CalendarSourceErrorCode =
  /** The calendar could not be read at all (missing file, no permission). */
  | 'ERR_CALENDAR_UNREADABLE'
  /** The text is not well-formed iCalendar (RFC 5545 §3.1, §3.4, §3.6). */
  | 'ERR_ICS_SYNTAX'
  /** A property value is not what its type requires (a date, a duration, a period). */
  | 'ERR_ICS_VALUE'
  /** An event lacks what every event needs (DTSTART). */
  | 'ERR_ICS_EVENT'
  /**
   * A recurrence rule (RRULE, RFC 5545 §3.3.10) is malformed, contradicts itself, or could not be expanded; or a time
   * zone's observance rule is not a yearly one of the forms zones are written with (ics-zone-rules.ts).
   */
  | 'ERR_ICS_RULE'
  /** A recurring event produced more instances than the expansion allows. */
  | 'ERR_ICS_EXPANSION_LIMIT'
  /**
   * The calendar holds more components than it may (MAX_CALENDAR_COMPONENTS), a component is larger than one may be
   * (MAX_COMPONENT_SIZE), or its time zones would take longer to expand than they may (MAX_ZONE_WORK, MAX_CALENDAR_ZONE_WORK).
   */
  | 'ERR_ICS_TOO_LARGE';

export type SlotQueryErrorCode =
  | 'ERR_SLOT_DURATION'
  | 'ERR_SLOT_WINDOW'
  | 'ERR_SLOT_TIME_ZONE'
  | 'ERR_SLOT_STEP'
  | 'ERR_SLOT_BUFFER'
  | 'ERR_SLOT_LIMIT'
  | 'ERR_SLOT_WORKING_HOURS';

export type CalendarErrorCode = DurationErrorCode | CalendarSourceErrorCode | SlotQueryErrorCode;

/** Base class of every error this part throws on purpose. */
export class CalendarError extends Error {
  readonly code: CalendarErrorCode;

  constructor(code: CalendarErrorCode, message: string) {
    super(message);
    this.name = 'CalendarError';
    this.code = code;
  }
}

/** A duration such as `30m`, `1h30m` or `PT45M` that could not be read. */
export class DurationError extends CalendarError {
  declare readonly code: DurationErrorCode;
  /** What was given, for the caller's message. */
  readonly input: string;

  constructor(code: DurationErrorCode, input: string, message: string) {
    super(code, message);
    this.name = 'DurationError';
    this.input = input;
  }
}

/**
 * What is wrong with a calendar's text: `reason` quotes none of it and may be sent; `quoted` is the text at fault,
 * for the owner alone (CalendarSourceError#quoted).
 */
export interface SourceProblem {
  reason: string;
  quoted?: string;
}

/** The most characters of the calendar's own text an error keeps for its owner. */
const MAX_QUOTED = 120;

/**
 * A calendar that could not be used. The message names the calendar, the
 * property and, when known, the line (1-based, as an editor counts them); it
 * never quotes the calendar's text (a value, a rule part, a component's name),
 * so it may be shown to the agent acting for the user: the backend promises
 * busy times only, never titles, places or people, and a broken line may hold
 * a title (found in review s23deleg: `DTSTART:Meet with lawyer about divorce`
 * reached a remote token holder as "DTSTART value '…' is not a date-time").
 * What the file says at the fault is kept apart, in `quoted`, for the owner
 * alone: `ownerMessage` (`delegate calendar add`, the server's debug log).
 */
export class CalendarSourceError extends CalendarError {
  declare readonly code: CalendarSourceErrorCode;
  /** The calendar's name as the user configured it. */
  readonly calendar: string;
  /** The physical line the problem is on, when known. */
  readonly line: number | undefined;
  /** The problem without the calendar and line prefix; quotes nothing of the calendar's text. */
  readonly reason: string;
  /**
   * The calendar's own text the problem is about (a value, a rule part, ical.js's words about them), as it is to be
   * shown after the reason, cut at MAX_QUOTED characters: for the calendar's owner only, never sent.
   */
  readonly quoted: string | undefined;
  /**
   * For a feed's failure remembered in place of a fetch (feeds.ts): in how many seconds its server will be asked
   * again, the Retry-After of the 502 that says it (RFC 9110 §10.2.3).
   */
  readonly retryAfterSec: number | undefined = undefined;

  constructor(code: CalendarSourceErrorCode, calendar: string, reason: string, line?: number, quoted?: string) {
    super(code, `Calendar "${calendar}"${line === undefined ? '' : `, line ${line}`}: ${reason}`);
    this.name = 'CalendarSourceError';
    this.calendar = calendar;
    this.line = line;
    this.reason = reason;
    this.quoted = quoted === undefined || quoted.length <= MAX_QUOTED ? quoted : `${quoted.slice(0, MAX_QUOTED).replace(/[\uD800-\uDBFF]$/, '')}…`;
  }

  /** This error, saying that the calendar's source will be asked again in `seconds`. */
  retryingAfter(seconds: number): CalendarSourceError {
    const copy = Object.assign(Object.create(Object.getPrototypeOf(this) as object) as CalendarSourceError, this, { retryAfterSec: seconds });
    // An Error's message and stack are its own, not enumerable: kept so.
    return Object.defineProperties(copy, { message: { value: this.message, writable: true, configurable: true }, stack: { value: this.stack, writable: true, configurable: true } });
  }

  /** The message with the calendar's text at the fault, for its owner: `…: DTSTART value is not a date-time: "Lunch".` */
  get ownerMessage(): string {
    return this.quoted === undefined ? this.message : `${this.message.replace(/\.$/, '')}: ${this.quoted}.`;
  }
}

/**
 * `err` itself when it is already a calendar's error, else the one `code`, `reason`, `line` and `quoted` make: what
 * ical.js throws on a calendar's text is that calendar's fault, not the server's (it names the calendar and the line,
 * `calendar add` refuses it, a skipped calendar is skipped, a feed's refusal is remembered).
 */
export function asCalendarSourceError(err: unknown, code: CalendarSourceErrorCode, calendar: string, reason: string, line?: number, quoted?: string): CalendarSourceError {
  return err instanceof CalendarSourceError ? err : new CalendarSourceError(code, calendar, reason, line, quoted);
}

/** A slot query that cannot be answered as asked (a bug in the caller or bad user input). */
export class SlotQueryError extends CalendarError {
  declare readonly code: SlotQueryErrorCode;

  constructor(code: SlotQueryErrorCode, message: string) {
    super(code, message);
    this.name = 'SlotQueryError';
  }
}
