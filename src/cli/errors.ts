// Exit codes and the one-line error message: how any failure reaches the
// person at the terminal. 0 success, 1 error, 2 bad usage, 3 no slot found,
// 4 authorization required, 130 cancelled at a prompt; a single line on stderr, with the stack only
// under --debug.
import { CommanderError } from 'commander';
import { isClientError } from '../client/errors.js';
import { printable } from '../terminal-text.js';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
/** find-slot searched and no free slot of that length fits the window. */
export const EXIT_NO_SLOT = 3;
/** No usable delegation, and this run may not (or could not) ask the person for one. */
export const EXIT_AUTH_REQUIRED = 4;
/** The person pressed Ctrl-C at a prompt read in raw mode (where it sends no SIGINT): 128 + 2, as a shell reports a process ended by SIGINT. */
export const EXIT_INTERRUPTED = 130;

/** The command line itself is wrong (an option's value, a missing option). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A failure that is not a bug and has a message written for the user, with its own exit code. */
export class CommandFailed extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT_ERROR) {
    super(message);
    this.name = 'CommandFailed';
    this.exitCode = exitCode;
  }
}

export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return EXIT_USAGE;
  if (error instanceof CommandFailed) return error.exitCode;
  if (isClientError(error, 'AUTHORIZATION_REQUIRED')) return EXIT_AUTH_REQUIRED;
  if (error instanceof CommanderError) {
    // --help and --version end "with an error" that is not one; help shown for a missing command is bad usage.
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT_OK;
    return EXIT_USAGE;
  }
  return EXIT_ERROR;
}

/**
 * The message for stderr: one line, prefixed with the program's name; plus the stack under --debug.
 * A message may carry another program's words (a tool error, a server's error_description): any control
 * character left after the newlines are joined (ESC, a bare CR, BEL) is shown as an escape, never acted on.
 */
export function errorText(error: unknown, debug: boolean): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = `delegate: ${printable(joinedLines(message))}`;
  if (debug && error instanceof Error && error.stack) return `${line}\n${error.stack}\n`;
  return `${line}\n`;
}

/**
 * `text` on one line: its lines trimmed, blank ones left out, the rest joined by a space. Linear in the text; found
 * in review (regress21c): the regular expression this was (white space, a newline, white space) read a run of white
 * space again from each of its characters, so an agent's tool error of 80,000 spaces and a newline took 10 s to print.
 */
export function joinedLines(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' ');
}

/**
 * A server of the stack as a sentence names it: "the authorization server", "the calendar backend", but CalendarAgent
 * bare, a name (noticed at stop 30: "so the CalendarAgent cannot start"). `start` for the head of a sentence.
 */
export function serverNamed(name: string, start = false): string {
  if (/^[A-Z]/.test(name)) return name;
  return `${start ? 'The' : 'the'} ${name}`;
}
