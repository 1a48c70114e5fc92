// Where the embedded servers log (the ones find-slot and login start in their own process when none runs): with
// DELEGATE_LOG_LEVEL set, to `delegate.log` in the data directory, appended, readable by its owner only (0600), so
// that the command's stdout and stderr stay its own. Found in review (s35logs): DELEGATE_LOG_LEVEL=trace find-slot
// printed no line at all, and a 500 in the embedded stack left no trace. The logger (pino) is loaded only then: the
// find-slot path without the variable loads nothing more.
import { closeSync, constants, fchmodSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { LogLevelName } from '../config.js';

export const SERVER_LOG_FILE = 'delegate.log';

/**
 * Which server a line is from (`server: "auth" | "calendar" | "agent"`) on every line it writes, under `serve` and
 * the embedded stack alike: the three share one stream (found in review, s35logs: their lines could not be told
 * apart but by path).
 */
export function serverLog(log: Logger, server: 'auth' | 'calendar' | 'agent'): Logger {
  return log.child({ server });
}

export interface ServerLog {
  logger: Logger;
  close(): void;
}

/** The embedded servers' log in `home` at `level` (not a link: O_NOFOLLOW), its mode made 0600 whoever created it. */
export async function openServerLog(home: string, level: LogLevelName): Promise<ServerLog> {
  const { createLogger } = await import('../http/logging.js');
  const fd = openSync(join(home, SERVER_LOG_FILE), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  let open = true;
  try {
    fchmodSync(fd, 0o600);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  // Written synchronously, a line at a time: the command exits soon after its servers close, with nothing left in a buffer.
  const logger = createLogger(level, {
    write: (line: string) => {
      if (open) writeSync(fd, line);
    },
  });
  return {
    logger,
    close: () => {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}
