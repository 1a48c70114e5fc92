// What a command may touch of the outside world, passed in rather than
// reached for, so that tests run commands in-process with fakes: the
// environment, the clock, the terminal's streams and the browser.
import type { Env } from '../config.js';

export interface OutputStream {
  write(text: string): unknown;
  /** Node's stream's: after a write returned false (its buffer full), `drain` says when to write on. */
  once?(event: 'drain', listener: () => void): unknown;
  /** Whether a person is likely watching (a terminal). */
  readonly isTTY?: boolean;
}

export interface InputStream {
  /** Whether a person can type here (a terminal). */
  readonly isTTY?: boolean;
}

export interface CliIo {
  readonly env: Env;
  now(): number;
  /** Only asked whether it is a terminal, and read by readLine; never read when it is not a terminal. */
  readonly stdin?: InputStream;
  /**
   * Reads one line the person types on stdin, or undefined at end of input
   * or when `signal` aborts. Called only when stdin is a terminal.
   */
  readLine?(signal: AbortSignal): Promise<string | undefined>;
  /** Reads everything piped to stdin (for secrets given to a command, such as a new password). */
  readAll?(): Promise<string>;
  /**
   * Shows `prompt` once echo is off, then reads one line typed at the terminal
   * without showing it (a password), until Enter; undefined when the person
   * cancels with Ctrl-C. Called only when stdin is a terminal.
   */
  readHiddenLine?(prompt: string): Promise<string | undefined>;
  /** The program's output: results only (e.g. the --json object). */
  readonly stdout: OutputStream;
  /** Messages for the person: progress, links, errors. */
  readonly stderr: OutputStream;
  /** Opens a URL in the user's browser; resolves even when none could be opened. */
  openBrowser(url: string): Promise<void>;
  /**
   * Resolves when the user asks the program to stop (Ctrl-C, SIGTERM); for
   * commands that run until then, such as the servers.
   */
  untilInterrupted(): Promise<string>;
}
