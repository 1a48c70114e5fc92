// How the CLI talks to a person at a terminal, and how it keeps quiet for
// scripts: whether it may ask anything (stdin and stderr are terminals),
// colour only on a terminal and never under NO_COLOR, and a spinner on
// stderr while it waits, which on a non-terminal (or a dumb one) is one plain
// line instead.
import { noColor } from '../config.js';
import type { CliIo } from './io.js';

/** Whether a person is there to answer a prompt: stdin and stderr are both terminals. */
export function isInteractive(io: CliIo): boolean {
  return io.stdin?.isTTY === true && io.stderr.isTTY === true;
}

/**
 * Whether stderr is a terminal that obeys ANSI control codes: not one whose TERM is "dumb" (Emacs' shell, some CI
 * logs), which prints them as they are.
 */
function ansiTerminal(io: CliIo): boolean {
  return io.stderr.isTTY === true && io.env.TERM !== 'dumb';
}

/** Whether stderr may carry ANSI colour: a terminal that obeys it, and NO_COLOR unset (https://no-color.org). */
export function colourOn(io: CliIo): boolean {
  return ansiTerminal(io) && !noColor(io.env);
}

export interface Styles {
  bold(text: string): string;
  dim(text: string): string;
  green(text: string): string;
  red(text: string): string;
}

const plain: Styles = { bold: (t) => t, dim: (t) => t, green: (t) => t, red: (t) => t };
const ansi: Styles = {
  bold: (t) => `\u001b[1m${t}\u001b[22m`,
  dim: (t) => `\u001b[2m${t}\u001b[22m`,
  green: (t) => `\u001b[32m${t}\u001b[39m`,
  red: (t) => `\u001b[31m${t}\u001b[39m`,
};

/** Styles for text on stderr: ANSI on a colour terminal, the identity otherwise. */
export function stylesFor(io: CliIo): Styles {
  return colourOn(io) ? ansi : plain;
}

export interface Spinner {
  /** Stops the spinner, leaving `finalLine` in its place, else its text: an ended line either way, as on a non-terminal. */
  stop(finalLine?: string): void;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FRAME_MS = 100;

/**
 * Shows `text` while something is awaited. On a terminal, a spinner redrawn
 * on one line of stderr; elsewhere `text` printed once, as a plain line: also
 * on a dumb terminal, which would show every redraw's control codes (found in
 * review, regress21a: ten `\r\x1b[2K⠋ …` a second under TERM=dumb).
 */
export function startSpinner(io: CliIo, text: string): Spinner {
  if (!ansiTerminal(io)) {
    io.stderr.write(`${text}\n`);
    return { stop: (finalLine) => void (finalLine !== undefined && io.stderr.write(`${finalLine}\n`)) };
  }
  const styles = stylesFor(io);
  let frame = 0;
  const draw = () => io.stderr.write(`\r\u001b[2K${styles.dim(FRAMES[frame++ % FRAMES.length]!)} ${text}`);
  draw();
  const timer = setInterval(draw, FRAME_MS);
  timer.unref();
  let stopped = false;
  return {
    stop(finalLine) {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      // The line is ended, so that what comes next (the answer, an error) starts on its own, also where the clearing code is not obeyed.
      io.stderr.write(`\r\u001b[2K${finalLine ?? text}\n`);
    },
  };
}
