// The list_busy tool: the user's busy times in a window, merged, without any
// detail of what the events are. It needs its own scope (busy:read), so a
// client that was only allowed to find slots must step up to use it. Like
// find_slot it acts under the caller's delegation, within the user's calendar
// limits: a window past the lookahead is refused with the limit named, and
// only allowed calendars are read.
import { z } from 'zod';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { formatSlotHuman, toZonedIso } from '../calendar/format.js';
import { clipIntervals, mergeIntervals } from '../calendar/intervals.js';
import { MAX_CALENDARS } from '../calendar/search-options.js';
import { readBusyTime } from './calendar-read.js';
import { boundWindow, calendarsFor, callerDelegation, delegationLimits, isExact } from './delegation.js';
import { structuredText, type FindSlotDeps, type ToolExtra } from './tool.js';
import { coveringWindow, parseWindowRequest, searchWindow } from '../calendar/window.js';

export const listBusyInputShape = {
  from: z
    .string()
    .max(64)
    .optional()
    .describe('Start of the window, ISO 8601 (2026-12-01, 2026-12-01T09:00 or with an offset). Default: now.'),
  to: z.string().max(64).optional().describe('End of the window, ISO 8601; a date alone means the end of that day. Default: 7 days after the start.'),
  timeZone: z.string().max(64).optional().describe("IANA time zone for dates without an offset and for the answer. Default: the calendar owner's."),
  calendars: z
    .array(z.string().min(1).max(200))
    .max(MAX_CALENDARS)
    .optional()
    .describe("Only these of the user's calendars, by name (default: every calendar the delegation allows)."),
};

const intervalShape = z.object({ start: z.string(), end: z.string() });

export const listBusyOutputShape = {
  timeZone: z.string().describe('The IANA time zone of the times given'),
  window: intervalShape.describe('The window listed, ISO 8601 in timeZone'),
  busy: z.array(intervalShape).describe('The busy times, merged and earliest first, ISO 8601 in timeZone; nothing about what they are'),
};

export type ListBusyInput = z.infer<z.ZodObject<typeof listBusyInputShape>>;
export type ListBusyOutput = z.infer<z.ZodObject<typeof listBusyOutputShape>>;

export type ListBusyDeps = Pick<FindSlotDeps, 'calendarUrl' | 'exchanger' | 'callerToken' | 'now' | 'fetchFn' | 'calendarTimeoutMs' | 'logger' | 'serversGone' | 'reauthorize' | 'requestId'>;

export function createListBusyHandler(deps: ListBusyDeps): (input: ListBusyInput, extra: ToolExtra) => Promise<CallToolResult> {
  return async (input, extra) => {
    const parsed = parseWindowRequest(input);
    if (!parsed.ok) return toolError(parsed.message);
    const request = parsed.value;
    const now = deps.now();
    const covering = coveringWindow(request, now);
    if (!covering.ok) return toolError(covering.message);

    const called = await callerDelegation(extra, deps.callerToken, deps.reauthorize);
    if (!called.ok) return toolError(called.message);
    const delegation = called.value;
    const limits = delegationLimits(delegation.claims, deps.calendarUrl);
    if (!limits.ok) return toolError(limits.message);
    const calendars = calendarsFor(limits.value, input.calendars);
    if (!calendars.ok) return toolError(calendars.message);
    const choseEnd = request.to !== undefined;
    // Refused before any token leaves the agent when the window is known exactly; otherwise the fetch stays inside the limit.
    const fetchWindow = boundWindow(limits.value, covering.value, choseEnd && isExact(request), now);
    if (!fetchWindow.ok) return toolError(fetchWindow.message);

    const read = await readBusyTime(deps, delegation.token, fetchWindow.value.window, calendars.value ? { calendars: calendars.value } : {});
    if (!read.ok) return toolError(read.message);

    const timeZone = request.timeZone ?? read.value.timeZone;
    const exact = searchWindow(request, timeZone, now);
    if (!exact.ok) return toolError(exact.message);
    const bounded = boundWindow(limits.value, exact.value, choseEnd, now);
    if (!bounded.ok) return toolError(bounded.message);
    const window = bounded.value.window;
    const busy = clipIntervals(mergeIntervals(read.value.busy), window);

    const structured: ListBusyOutput = {
      timeZone,
      window: { start: toZonedIso(window.start, timeZone), end: toZonedIso(window.end, timeZone) },
      busy: busy.map((b) => ({ start: toZonedIso(b.start, timeZone), end: toZonedIso(b.end, timeZone) })),
    };
    const text = [
      busy.length === 0
        ? `Not busy at any time during ${formatSlotHuman(window, timeZone)}.`
        : [`Busy during ${formatSlotHuman(window, timeZone)}:`, ...busy.map((b) => `- ${formatSlotHuman(b, timeZone)}`)].join('\n'),
      ...(bounded.value.note ? [bounded.value.note] : []),
    ].join('\n');
    return { content: [{ type: 'text', text }, structuredText(structured)], structuredContent: structured };
  };
}

function toolError(message: string): CallToolResult {
  return { content: [{ type: 'text', text: message }], isError: true };
}
