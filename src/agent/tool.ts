// The find_slot tool: its input and output schemas, and the handler that acts
// for the caller. It trades the caller's token for a calendar token (RFC 8693,
// never forwarding the caller's own), reads busy time from the calendar
// backend, and runs the pure slot search. Bad input and unavailable servers
// are tool errors (isError) with a clear message, never protocol failures.
// An answer is prose for people, then the same result as JSON (structuredText).
import type { ServersGone } from '../client/servers-gone.js';
import type { ReauthorizeAdvice } from './delegation.js';
import { z } from 'zod';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { SlotQueryError } from '../calendar/errors.js';
import { readSlotDuration } from '../calendar/search-options.js';
import { formatSlotHuman, toZonedIso } from '../calendar/format.js';
import { DEFAULT_STEP_MS, DEFAULT_WORKING_HOURS, findSlots, type Interval } from '../calendar/slots.js';
import { formatWorkingHours } from '../calendar/working-hours.js';
import type { FreeBusy } from './calendar-client.js';
import { readBusyTime } from './calendar-read.js';
import type { FreeBusySelection } from '../calendar/freebusy-query.js';
import type { TokenExchanger } from './exchange.js';
import { coveringWindow, parseWindowRequest, searchWindow } from '../calendar/window.js';
import { minutesOrText, readSlotOptions, slotOptionsInputShape, spanText, type SlotOptions } from './find-slot-params.js';
import { boundWindow, calendarsFor, callerDelegation, delegationLimits, isExact, readWindow, withNote } from './delegation.js';

export const FIND_SLOT_TOOL = 'find_slot';

/** How many free slots one answer lists. */
export const MAX_SLOTS = 5;

export const findSlotInputShape = {
  duration: minutesOrText(64).describe('How long the slot must be: 30m, 1h30m, 90m, ISO 8601 (PT45M), or a whole number of minutes (45).'),
  from: z
    .string()
    .max(64)
    .optional()
    .describe('Start of the search window, ISO 8601 (2026-12-01, 2026-12-01T09:00 or with an offset). Default: now.'),
  to: z
    .string()
    .max(64)
    .optional()
    .describe('End of the search window, ISO 8601; a date alone means the end of that day. Default: 7 days after the start.'),
  timeZone: z
    .string()
    .max(64)
    .optional()
    .describe("IANA time zone for working hours, dates without an offset and the answer. Default: the calendar owner's."),
  ...slotOptionsInputShape,
};

const slotShape = z.object({
  start: z.string().describe('ISO 8601 with the offset of timeZone'),
  end: z.string().describe('ISO 8601 with the offset of timeZone'),
  timeZone: z.string(),
});

export const findSlotOutputShape = {
  found: z.boolean().describe('Whether a free slot was found in the window'),
  timeZone: z.string().describe('The IANA time zone of the times given'),
  start: z.string().optional().describe('Start of the first free slot'),
  end: z.string().optional().describe('End of the first free slot'),
  slots: z.array(slotShape).describe(`The first free slots, earliest first (${MAX_SLOTS} unless limit says otherwise)`),
  // issue 4: what the search covered, and what it could not.
  window: z.object({ start: z.string(), end: z.string() }).optional().describe('The window searched, ISO 8601 in timeZone'),
  workingHours: z.string().optional().describe('The working hours searched, e.g. "mon-fri 09:00-17:00"'),
  skipped: z
    .array(z.object({ calendar: z.string(), reason: z.string() }))
    .optional()
    .describe('Calendars left out because they could not be read (onCalendarError: skip)'),
  stale: z
    .array(z.object({ calendar: z.string(), fetchedAt: z.string(), reason: z.string() }))
    .optional()
    .describe('Calendar feeds that could not be refreshed, so their copy from fetchedAt was used'),
};

export type FindSlotInput = z.infer<z.ZodObject<typeof findSlotInputShape>>;
export type FindSlotOutput = z.infer<z.ZodObject<typeof findSlotOutputShape>>;
export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** Where a call's delegation comes from: over HTTP the verified bearer token, over stdio the user's cached token. */
export type CallerToken = (extra: ToolExtra) => string | undefined | Promise<string | undefined>;

/** The caller's token as the HTTP endpoint verified it (`req.raw.auth` → `extra.authInfo`). */
export const bearerCallerToken: CallerToken = (extra) => extra.authInfo?.token;

/** Minimal logger surface (pino and fastify's logger both fit). */
export interface ToolLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface FindSlotDeps {
  /** The calendar backend's canonical URL: the exchange's `resource` and where /freebusy lives. */
  calendarUrl: string;
  exchanger: TokenExchanger;
  callerToken: CallerToken;
  now: () => number;
  /** A fetch to read the calendar with (tests); node:http otherwise (calendar-client.ts). */
  fetchFn?: typeof fetch;
  calendarTimeoutMs: number;
  logger?: ToolLogger;
  /**
   * The id of the request this call came in (over HTTP: its X-Request-Id when safe, else the one given it; over
   * stdio, with no request: one made for the call, see perCall in mcp.ts), sent as X-Request-Id on the exchange at
   * the AS and the read at the calendar backend: one id across their logs.
   */
  requestId?: string;
  /**
   * Told when the calendar backend refuses the connection (over stdio: the
   * servers another process started have gone with it): brings them back, and
   * the read is sent again (src/client/servers-gone.ts).
   */
  serversGone?: ServersGone;
  /** What to tell the person to authorize again (over stdio: the `delegate login` to run); "Sign in again" otherwise. */
  reauthorize?: ReauthorizeAdvice;
}

export type FindSlotHandler = (input: FindSlotInput, extra: ToolExtra) => Promise<CallToolResult>;

export function createFindSlotHandler(deps: FindSlotDeps): FindSlotHandler {
  return async (input, extra) => {
    // Everything the caller can get wrong is checked before any token leaves the agent.
    const duration = readSlotDuration(spanText(input.duration));
    if (!duration.ok) return toolError(duration.message);
    const durationMs = duration.value;
    const parsed = parseWindowRequest(input);
    if (!parsed.ok) return toolError(parsed.message);
    const slotOptions = readSlotOptions(input);
    if (!slotOptions.ok) return toolError(slotOptions.message);
    const options = slotOptions.value;
    const request = { ...parsed.value, ...windowOptions(options) };
    const covering = coveringWindow(request, deps.now());
    if (!covering.ok) return toolError(covering.message);

    const called = await callerDelegation(extra, deps.callerToken, deps.reauthorize);
    if (!called.ok) return toolError(called.message);
    const delegation = called.value;
    const subjectToken = delegation.token;
    // issue 3: the user's limits in the token, applied before any token leaves the agent; never a silent truncation.
    const limits = delegationLimits(delegation.claims, deps.calendarUrl);
    if (!limits.ok) return toolError(limits.message);
    const calendars = calendarsFor(limits.value, options.calendars);
    if (!calendars.ok) return toolError(calendars.message);
    const choseEnd = request.to !== undefined || request.withinMs !== undefined;
    const fetchWindow = boundWindow(limits.value, covering.value, choseEnd && isExact(request), deps.now());
    if (!fetchWindow.ok) return toolError(fetchWindow.message);
    // The backend clips busy time to the window asked for: read the buffers around the window's edges too.
    const toRead = readWindow(limits.value, fetchWindow.value.window, options.bufferBeforeMs, options.bufferAfterMs, deps.now());

    const read = await readBusyTime(deps, subjectToken, toRead.window, {
      ...selectionOf(options),
      ...(calendars.value ? { calendars: calendars.value } : {}),
    });
    if (!read.ok) return toolError(read.message);
    const freeBusy = read.value;

    const timeZone = request.timeZone ?? freeBusy.timeZone;
    const searched = searchWindow(request, timeZone, deps.now());
    if (!searched.ok) return toolError(searched.message);
    const window = boundWindow(limits.value, searched.value, choseEnd, deps.now());
    if (!window.ok) return toolError(window.message);
    const workingHours = options.workingHours ?? freeBusy.workingHours ?? DEFAULT_WORKING_HOURS;
    let slots: Interval[];
    try {
      slots = findSlots([...freeBusy.busy, ...toRead.unreadable], {
        durationMs,
        from: window.value.window.start,
        to: window.value.window.end,
        timeZone,
        workingHours,
        stepMs: options.stepMs ?? DEFAULT_STEP_MS,
        bufferBeforeMs: options.bufferBeforeMs,
        bufferAfterMs: options.bufferAfterMs,
        limit: options.limit ?? MAX_SLOTS,
      });
    } catch (err) {
      if (err instanceof SlotQueryError) return toolError(err.message);
      throw err;
    }
    return withNote(answer(slots, timeZone, durationMs, window.value.window, { workingHours: formatWorkingHours(workingHours), freeBusy }), window.value.note);
  };
}

/** issue 4: the window options that shape the search window. */
function windowOptions(options: SlotOptions): { withinMs?: number; minNoticeMs?: number } {
  return { ...(options.withinMs !== undefined ? { withinMs: options.withinMs } : {}), ...(options.minNoticeMs ? { minNoticeMs: options.minNoticeMs } : {}) };
}

/** issue 4: what the calendar backend is asked to read, and how. */
function selectionOf(options: SlotOptions): FreeBusySelection {
  return {
    ...(options.calendars ? { calendars: options.calendars } : {}),
    ...(options.tentative ? { tentative: options.tentative } : {}),
    ...(options.onCalendarError ? { onCalendarError: options.onCalendarError } : {}),
  };
}

interface SearchNotes {
  /** The working hours searched, in short form. */
  workingHours: string;
  freeBusy: FreeBusy;
}

function answer(slots: Interval[], timeZone: string, durationMs: number, window: Interval, notes: SearchNotes): CallToolResult {
  const zoned = slots.map((s) => ({ start: toZonedIso(s.start, timeZone), end: toZonedIso(s.end, timeZone), timeZone }));
  const first = zoned[0];
  const { skipped, stale } = notes.freeBusy;
  const structured: FindSlotOutput = {
    ...(first ? { found: true, timeZone, start: first.start, end: first.end, slots: zoned } : { found: false, timeZone, slots: [] }),
    window: { start: toZonedIso(window.start, timeZone), end: toZonedIso(window.end, timeZone) },
    workingHours: notes.workingHours,
    ...(skipped ? { skipped } : {}),
    ...(stale ? { stale } : {}),
  };
  const text = [
    slots[0]
      ? [
          `First free ${minutes(durationMs)} slot: ${formatSlotHuman(slots[0], timeZone)}`,
          ...(slots.length > 1 ? ['Also free:', ...slots.slice(1).map((s) => `- ${formatSlotHuman(s, timeZone)}`)] : []),
        ].join('\n')
      : `No free ${minutes(durationMs)} slot fits: none in working hours (${notes.workingHours}) during ${formatSlotHuman(window, timeZone)}.`,
    ...(skipped ?? []).map((s) => `Not counted, could not be read: ${s.reason}`),
    ...(stale ?? []).map((s) => `Calendar "${s.calendar}" could not be refreshed (${s.reason}); its copy from ${s.fetchedAt} was used.`),
  ].join('\n');
  return { content: [{ type: 'text', text }, structuredText(structured)], structuredContent: structured };
}

/**
 * The structured result as JSON in a text block, after the prose (MCP
 * 2025-06-18 and 2025-11-25, Tools, Structured Content: "For backwards
 * compatibility, a tool that returns structured content SHOULD also return
 * the serialized JSON in a TextContent block"), for clients that read content only.
 */
export function structuredText(structured: object): { type: 'text'; text: string } {
  return { type: 'text', text: JSON.stringify(structured) };
}

function minutes(ms: number): string {
  const total = Math.round(ms / 60_000);
  const h = Math.floor(total / 60);
  const m = total % 60;
  return h === 0 ? `${m}-minute` : m === 0 ? `${h}-hour` : `${h} h ${m} min`;
}

/** A message for the person behind the MCP client: what failed and what to do; never a token. */
function toolError(message: string): CallToolResult {
  return { content: [{ type: 'text', text: message }], isError: true };
}
