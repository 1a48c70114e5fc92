// `delegate busy`: the times you are busy in a window, through CalendarAgent's
// list_busy tool, without any detail of what the events are. That tool needs
// busy:read, which a delegation made for find-slot does not include: the
// first run steps up — the consent page asks only for the new permission —
// and retries once; with nothing stored, it signs in for busy:read alone.
// `delegate login` keeps that permission; `login --scope busy:read` gives it
// ahead of time (with --device, from anywhere).
import { SCOPE_BUSY_READ } from '../../delegation/scopes.js';
import type { BusyListInput } from '../../client/session.js';
import { listBusy } from '../../client/tools.js';
import { checkWindowOptions } from '../args.js';
import { EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { withAgentAccess, type AgentAccessArgs, type CommandLine } from './agent-access.js';
import { formatSlotHuman } from '../../calendar/format.js';

export interface BusyArgs extends AgentAccessArgs {
  json: boolean;
  from?: string;
  to?: string;
  timeZone?: string;
  calendars?: string[];
}

/**
 * What to do when busy needs a permission and nobody is here to give it: each names a command that asks for
 * busy:read (found in review: the advice was `delegate login`, which asked for slots:find only).
 */
export const BUSY_NO_TERMINAL_ADVICE = (command: CommandLine) =>
  `Run \`${command('busy')}\` in a terminal, or \`${command('login', '--device', '--scope', 'busy:read')}\` anywhere (a code to approve on any device), or pass --no-browser to print a sign-in link and wait for it; or set DELEGATE_TOKEN to a token that allows busy:read.`;

export async function busyCommand(args: BusyArgs, io: CliIo): Promise<number> {
  // Before any sign-in or request: a window the agent would refuse is bad usage here, not a reason to ask for more permission.
  checkWindowOptions(args, io.now());
  const input: BusyListInput = {};
  if (args.from !== undefined) input.from = args.from;
  if (args.to !== undefined) input.to = args.to;
  if (args.timeZone !== undefined) input.timeZone = args.timeZone;
  if (args.calendars && args.calendars.length > 0) input.calendars = args.calendars;
  // A first sign-in asks for what this command needs (least privilege): one consent, not a sign-in for find-slot and a step-up after it.
  const result = await withAgentAccess({ ...args, serversFirst: true, noTerminalAdvice: BUSY_NO_TERMINAL_ADVICE, command: ['busy'] }, io, (session) =>
    listBusy({ ...session, scope: SCOPE_BUSY_READ }, input),
  );
  if (args.json) {
    io.stdout.write(`${JSON.stringify(result)}\n`);
    return EXIT_OK;
  }
  if (result.busy.length === 0) io.stderr.write('You are free the whole window.\n');
  for (const b of result.busy) io.stdout.write(`${formatSlotHuman({ start: Date.parse(b.start), end: Date.parse(b.end) }, result.timeZone)}\n`);
  return EXIT_OK;
}
