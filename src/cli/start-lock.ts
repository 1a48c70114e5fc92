// The data directory's start lock (servers.lock): held by the one process that
// sets the directory up (bootstrap: the owner, the resources, CalendarAgent
// bound to its address) and starts its servers, from the check of what runs
// until they listen. `serve` and a command starting the embedded stack take
// it, so of several started at the same moment one starts the servers and the
// others find them running (or, on other ports, are refused: src/cli/servers.ts
// refuseSecondAddress). It is src/client/lock.ts's lock: a holder that died is
// broken at once (its pid is gone), one whose death cannot be shown (its pid
// reused, another host) once it stops touching it, after 40 s untouched.
// Light: the embedded stack waits on it before loading any server code.
import type { Paths } from '../config.js';
import { acquireFileLock, type HeldLock } from '../client/lock.js';
import { isClientError } from '../client/errors.js';
import { NotARegularFileError } from '../client/private-files.js';
import { CommandFailed } from './errors.js';

/** How long a process waits for another to finish starting the servers before it gives up. */
export const START_WAIT_MS = 60_000;
const NAME = "the servers' start lock";

/**
 * The start lock, waited for up to `waitMs`; between looks, `ready()` may say
 * the servers another process started now answer, and then the lock is not
 * needed (undefined). Past the wait, a message naming the lock file; a lock
 * file that cannot be made, or a path that holds no regular file (a symbolic
 * link, a FIFO), is CACHE_IO naming it, at once.
 */
export async function holdStartLock(paths: Pick<Paths, 'home' | 'serversLock'>, now: () => number, options: { waitMs?: number; ready?: () => Promise<boolean>; lookEveryMs?: number } = {}): Promise<HeldLock | undefined> {
  const waitMs = options.waitMs ?? START_WAIT_MS;
  const deadline = now() + waitMs;
  for (;;) {
    const slice = options.ready ? Math.min(options.lookEveryMs ?? 1000, Math.max(0, deadline - now())) : Math.max(0, deadline - now());
    try {
      return await acquireFileLock({ path: paths.serversLock, name: NAME, now, timeoutMs: slice, retryMs: 25 });
    } catch (error) {
      if (!isClientError(error, 'LOCK_TIMEOUT')) throw error;
    }
    if (options.ready && (await options.ready())) return undefined;
    if (now() >= deadline) {
      throw new CommandFailed(
        `Another delegate process has been starting the servers of the data directory ${paths.home} for over ${Math.round(waitMs / 1000)} s, and they do not answer yet. ` +
          `If no delegate process is running, delete ${paths.serversLock}.`,
      );
    }
  }
}

/**
 * Runs `work` holding the start lock (waiting for another process's start to
 * end first). With `ready`, asked between looks, the answer of `started` is
 * taken instead once another process's servers answer. Where no lock file can
 * be made (a full or read-only disk) no other process can hold one either,
 * and `work` runs without it: the store says what it cannot do there. A lock
 * path holding something else than a regular file (a symbolic link, a FIFO)
 * is said, not worked around: someone put it there, and is to move it away.
 */
export async function whileStarting<T>(
  paths: Pick<Paths, 'home' | 'serversLock'>,
  now: () => number,
  work: () => Promise<T>,
  options: { ready?: () => Promise<boolean>; started?: () => T } = {},
): Promise<T> {
  let lock: HeldLock | undefined;
  try {
    lock = await holdStartLock(paths, now, options.ready ? { ready: options.ready } : {});
    if (lock === undefined && options.started) return options.started(); // another process started them meanwhile
  } catch (error) {
    if (!isClientError(error, 'CACHE_IO') || error.cause instanceof NotARegularFileError) throw error;
  }
  try {
    return await work();
  } finally {
    await lock?.release().catch(() => undefined);
  }
}
