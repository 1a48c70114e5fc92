// Secrets a command is given on stdin, never on its command line, where every
// user of this computer can read them (/proc/<pid>/cmdline, `ps`) while it
// runs, and where they stay in the shell's history: typed at a terminal
// without being shown (Ctrl-C cancels), or piped. `users add` reads a
// password so, `calendar add` a feed's secret address.
import { CommandFailed, EXIT_INTERRUPTED } from './errors.js';
import type { CliIo } from './io.js';

/** Whether a person is at stdin to type the secret (it is then asked for, hidden), rather than a pipe or a file. */
export function secretTypedAtTerminal(io: CliIo): boolean {
  return io.stdin?.isTTY === true && io.readHiddenLine !== undefined;
}

/**
 * One line typed at the terminal, not shown: `prompt` is written once echo is off, so that keys typed as soon as it
 * shows are not echoed. Ctrl-C ends the command with exit code 130 and "Cancelled: `cancelled`.".
 */
export async function typedSecret(io: CliIo, prompt: string, cancelled: string): Promise<string> {
  const typed = await io.readHiddenLine!(prompt);
  // The person's Enter was not echoed either.
  io.stderr.write('\n');
  if (typed === undefined) throw new CommandFailed(`Cancelled: ${cancelled}.`, EXIT_INTERRUPTED);
  return typed;
}

/** Everything piped to stdin; `what` names the secret for the message when there is no stdin at all. */
export async function pipedSecret(io: CliIo, what: string): Promise<string> {
  if (!io.readAll) throw new CommandFailed(`No standard input to read ${what} from.`);
  return io.readAll();
}
