// `delegate find-slot`: asks CalendarAgent for the first free slot of the
// given length, signing in first if no delegation is cached, and prints it
// as one human line or, with --json, as exactly {"start","end","timeZone"}.
// With --limit N it prints up to N slots, earliest first (with --json, an
// array of such objects). No slot in the window is exit code 3; calendars
// left out and feeds whose older copy was used are said on stderr.
import type { FindSlotInput, SlotSearchResult } from '../../client/session.js';
import { findSlot } from '../../client/tools.js';
import { checkWindowOptions } from '../args.js';
import { CommandFailed, EXIT_NO_SLOT, EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { slotJson, slotLine } from '../output.js';
import type { SlotSearchArgs } from '../slot-options.js';
import { printable } from '../../terminal-text.js';
import { withAgentAccess, type AgentAccessArgs } from './agent-access.js';

export interface FindSlotArgs extends AgentAccessArgs {
  duration: string;
  json: boolean;
  from?: string;
  to?: string;
  timeZone?: string;
  /** The search options (issue 4), passed to find_slot as they are. */
  search?: SlotSearchArgs;
}

export async function findSlotCommand(args: FindSlotArgs, io: CliIo): Promise<number> {
  // Before any sign-in or request: a window the agent would refuse is bad usage here.
  checkWindowOptions({ ...args, ...args.search }, io.now());
  const input: FindSlotInput = { duration: args.duration, ...args.search };
  if (args.from !== undefined) input.from = args.from;
  if (args.to !== undefined) input.to = args.to;
  if (args.timeZone !== undefined) input.timeZone = args.timeZone;
  // One slot unless more are asked for: the agent need not search further.
  if (input.limit === undefined) input.limit = 1;

  const result = await withAgentAccess({ ...args, serversFirst: true, command: ['find-slot', '--duration', args.duration] }, io, (session) => findSlot(session, input));
  for (const notice of notices(result)) io.stderr.write(`delegate: ${notice}\n`);
  const first = result.found && result.start && result.end ? { start: result.start, end: result.end, timeZone: result.timeZone } : result.slots[0];
  if (!first) {
    const hours = result.workingHours ? ` in working hours (${result.workingHours})` : '';
    throw new CommandFailed(`No free ${args.duration} slot${hours} in the window searched.`, EXIT_NO_SLOT);
  }
  if (args.search?.limit === undefined) {
    io.stdout.write(`${args.json ? slotJson(first) : slotLine(first)}\n`);
    return EXIT_OK;
  }
  const slots = result.slots.slice(0, args.search.limit);
  io.stdout.write(args.json ? `[${slots.map(slotJson).join(',')}]\n` : slots.map((s) => `${slotLine(s)}\n`).join(''));
  return EXIT_OK;
}

/**
 * What the person should know about the answer: calendars that were not counted, and copies that may be old.
 * Every piece is the agent's or a calendar feed's text: its control characters are shown, never sent to the terminal.
 */
export function notices(result: SlotSearchResult): string[] {
  const shown = (value: unknown) => printable(String(value));
  return [
    ...(result.skipped ?? []).map((s) => `warning: not counted, could not be read: ${shown(s.reason)}`),
    ...(result.stale ?? []).map((s) => `warning: calendar "${shown(s.calendar)}" could not be refreshed (${shown(s.reason)}); its copy from ${shown(s.fetchedAt)} was used.`),
  ];
}
