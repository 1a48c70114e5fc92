// What the CLI does when writing to its stdout or stderr fails.
import { afterHolds } from '../client/held-signals.js';

export const EXIT_BROKEN_PIPE = 141;
export const EXIT_OUTPUT_FAILED = 1;

/**
 * A reader that went away (`delegate audit | head -1`): stop quietly, with the status of a process ended by SIGPIPE
 * (128 + 13), which Node ignores; an unhandled EPIPE was a stack trace. Any other write error (a full disk under
 * `audit --json > file`, `/dev/full`, an I/O error) ends the command with exit 1 and, when it was stdout that failed,
 * one line on stderr saying so (found in review, s25faults: it ended as an uncaught error, Node printing the bundle's
 * minified source line and a stack, 5 KB). Either waits while a refresh holds the ending signals
 * (src/client/held-signals.ts): ending there would leave a spent refresh token in the cache, and the next command's
 * refresh would sign the person out.
 */
export function endOnStreamError(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr], stderr: NodeJS.WriteStream = process.stderr): void {
  for (const stream of streams) {
    stream.on('error', (error: NodeJS.ErrnoException) =>
      afterHolds(() => {
        if (error.code === 'EPIPE') process.exit(EXIT_BROKEN_PIPE);
        if (stream === stderr) process.exit(EXIT_OUTPUT_FAILED); // nowhere left to say it
        const name = stream === process.stdout ? 'standard output' : 'its output';
        stderr.write(`delegate: The command could not write to ${name}: ${outputProblem(error)}. Nothing more was written there.\n`, () => process.exit(EXIT_OUTPUT_FAILED));
      }),
    );
  }
}

/** A write error as a person reads it: Node's "ENOSPC: no space left on device, write" as "no space left on device (ENOSPC)". */
function outputProblem(error: NodeJS.ErrnoException): string {
  const words = error.message.replace(/^[A-Z0-9]+: /, '').replace(/, write$/, '');
  return error.code && !words.includes(error.code) ? `${words} (${error.code})` : words;
}
