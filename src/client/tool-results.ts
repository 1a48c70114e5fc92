// CalendarAgent's tools as the CLI calls them: their names, and their
// answers (an MCP CallToolResult) read into what the commands print; a tool's
// error becomes TOOL_FAILED, an answer without the declared structured
// result AGENT_UNAVAILABLE. Free of the SDK, so that the quick path can use it.
import type { BusyList, SlotSearchResult } from './session.js';
import { ClientError } from './errors.js';
import { printableClipped } from '../terminal-text.js';

export const FIND_SLOT_TOOL = 'find_slot';
export const LIST_BUSY_TOOL = 'list_busy';

/** The parts of an MCP CallToolResult the CLI reads. */
export interface ToolResult {
  content?: unknown;
  structuredContent?: unknown;
  isError?: unknown;
  [other: string]: unknown;
}

export function slotSearchResult(result: ToolResult): SlotSearchResult {
  if (result.isError) throw new ClientError('TOOL_FAILED', textOf(result) || 'find_slot failed without saying why.');
  const out = result.structuredContent as Partial<SlotSearchResult> | undefined;
  if (!out || typeof out.found !== 'boolean' || typeof out.timeZone !== 'string') {
    throw new ClientError('AGENT_UNAVAILABLE', 'CalendarAgent answered find_slot without the structured result it declares.');
  }
  return {
    found: out.found,
    timeZone: out.timeZone,
    start: out.start,
    end: out.end,
    slots: Array.isArray(out.slots) ? out.slots : [],
    ...(typeof out.workingHours === 'string' ? { workingHours: out.workingHours } : {}),
    ...(Array.isArray(out.skipped) ? { skipped: out.skipped } : {}),
    ...(Array.isArray(out.stale) ? { stale: out.stale } : {}),
  };
}

export function busyList(result: ToolResult): BusyList {
  if (result.isError) throw new ClientError('TOOL_FAILED', textOf(result) || 'list_busy failed without saying why.');
  const out = result.structuredContent as Partial<BusyList> | undefined;
  if (!out || typeof out.timeZone !== 'string' || !Array.isArray(out.busy) || !out.window) {
    throw new ClientError('AGENT_UNAVAILABLE', 'CalendarAgent answered list_busy without the structured result it declares.');
  }
  return { timeZone: out.timeZone, window: out.window, busy: out.busy };
}

/**
 * The most characters of a tool's error text the CLI shows. An agent's answer may be megabytes; what the person
 * needs is its start, as for an authorization server's error_description.
 */
const MAX_TOOL_TEXT = 300;

/** The text parts of the content, joined, on one line (white space runs as one space), clipped, controls escaped. */
function textOf(result: ToolResult): string {
  if (!Array.isArray(result.content)) return '';
  const text = result.content
    .filter((c): c is { type: 'text'; text: string } => typeof c === 'object' && c !== null && (c as { type?: unknown }).type === 'text')
    .map((c) => c.text)
    .join(' ');
  return printableClipped(text.replace(/\s+/g, ' ').trim(), MAX_TOOL_TEXT);
}
