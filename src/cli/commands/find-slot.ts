// `delegate find-slot`: asks CalendarAgent for the first free slot of the
// given length, signing in first if no delegation is cached, and prints it
// as one human line or, with --json, as exactly {"start","end","timeZone"}.
import { findSlot, type FindSlotInput } from '../../client/session.js';
import { CommandFailed, EXIT_NO_SLOT, EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { slotJson, slotLine } from '../output.js';
import { withAgentAccess, type AgentAccessArgs } from './agent-access.js';

export interface FindSlotArgs extends AgentAccessArgs {
  duration: string;
  json: boolean;
  from?: string;
  to?: string;
  timeZone?: string;
}

export async function findSlotCommand(args: FindSlotArgs, io: CliIo): Promise<number> {
  const input: FindSlotInput = { duration: args.duration };
  if (args.from !== undefined) input.from = args.from;
  if (args.to !== undefined) input.to = args.to;
  if (args.timeZone !== undefined) input.timeZone = args.timeZone;

  const result = await withAgentAccess(args, io, (session) => findSlot(session, input));
  const slot = result.found && result.start && result.end ? { start: result.start, end: result.end, timeZone: result.timeZone } : result.slots[0];
  if (!slot) throw new CommandFailed(`No free ${args.duration} slot in the window searched.`, EXIT_NO_SLOT);
  io.stdout.write(`${args.json ? slotJson(slot) : slotLine(slot)}\n`);
  return EXIT_OK;
}
