// What the CLI does when writing to its stdout or stderr fails.
import { afterHolds } from '../client/held-signals.js';

export const EXIT_BROKEN_PIPE = 141;

/**
 * A reader that went away (`delegate audit | head -1`): stop quietly, with the status of a process ended by SIGPIPE
 * (128 + 13), which Node ignores; an unhandled EPIPE was a stack trace. Any other write error ends the process as an
 * uncaught error. Either waits while a refresh holds the ending signals (src/client/held-signals.ts): ending there
 * would leave a spent refresh token in the cache, and the next command's refresh would sign the person out.
 */
export function endOnStreamError(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  for (const stream of streams) {
    stream.on('error', (error: NodeJS.ErrnoException) =>
      afterHolds(() => {
        if (error.code === 'EPIPE') process.exit(EXIT_BROKEN_PIPE);
        throw error;
      }),
    );
  }
}
