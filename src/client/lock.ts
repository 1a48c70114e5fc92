// A cross-process lock on a file (tokens.lock): whoever creates the file with
// O_EXCL holds it. Used around token refresh so that many CLI processes
// started at once spend the refresh token once (refresh tokens rotate, and
// replaying a spent one revokes the whole family), and around starting the
// servers of a data directory (servers.lock, src/cli/start-lock.ts). A lock left behind by a
// process that died is broken: its holder's pid is gone from this host, or
// the lock has not been touched for staleAfterMs (40 s). Its holder touches it
// (the file's mtime) every quarter of that (10 s) while it works, so a live
// holder is never broken for age, however long its work takes; a pid reused
// after a crash or a reboot, or a holder on another host (containers sharing
// one data directory) that died, stops touching it, and its lock is broken
// after three missed beats: within one waiter's 60 s wait. A holder on this
// host that is stopped (Ctrl-Z, SIGSTOP: it lives, but cannot beat) is not
// broken for age: it may have sent the refresh token already, and sending it
// again after the server's 5 s grace would end the sign-in (RFC 9700
// §4.14.2); the waiter says which process to resume or end.
// A lock file without a record (its creator could not write one: a full disk,
// or it died between open() and write()) is abandoned once it is a few
// seconds old. A file system error is CACHE_IO, naming the lock file.
// A lock path that holds no regular file (a symbolic link, a FIFO, a directory)
// is CACHE_IO at once, saying what it is: delegate never makes one, so no holder
// will ever remove it. Found in review (s31fault): a dangling symbolic link
// there was "released meanwhile" at every look, retried with no pause and no
// look at the clock, a core spun for ever; a FIFO was read for ever.
import { randomBytes } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { link, lstat, open, rename, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { notARegularFile } from '../regular-file.js';
import { ClientError, fileErrorText, isClientError } from './errors.js';
import { NotARegularFileError, PRIVATE_FILE_MODE, ensurePrivateDir, isErrno, processIsAlive } from './private-files.js';

export interface FileLockOptions {
  /** The lock file, e.g. Paths.tokenLock. */
  path: string;
  /** What the lock is, in a file error's message (default "the token cache's lock"). */
  name?: string;
  now: () => number;
  /** Give up waiting after this long (ms). */
  timeoutMs?: number;
  /**
   * A lock untouched for this long (ms) is abandoned even if its pid seems alive (pids get reused, another host's cannot
   * be asked); its holder touches it every quarter of this. Below timeoutMs, so that a waiter breaks a dead holder's lock.
   */
  staleAfterMs?: number;
  /** Pause between attempts (ms); jittered so waiters do not move in lockstep. */
  retryMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Whether a process with this pid runs on this host. */
  isProcessAlive?: (pid: number) => boolean;
  /** Whether the process with this pid on this host is stopped (suspended); Linux's /proc says. */
  isProcessStopped?: (pid: number) => boolean;
}

export interface HeldLock {
  release(): Promise<void>;
}

interface LockRecord {
  pid: number;
  host: string;
  nonce: string;
  created: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;
/**
 * Three missed beats (a beat every 10 s): a dead holder whose death cannot be
 * shown (its pid reused, or on another host) is broken within one waiter's
 * 60 s. Found in review (s22store): at 120 s, past the wait, the first command
 * failed blaming "another delegate process", and only the next one broke it.
 * Still above the 30 s beat of an older delegate (whose limit was 120 s), so a
 * live holder of either version is never broken.
 */
const DEFAULT_STALE_MS = 40_000;
/** A holder touches its lock this many times per stale limit. */
const BEATS_PER_STALE_LIMIT = 4;
const DEFAULT_RETRY_MS = 20;
/**
 * A lock file with no record in it this long after its last touch is abandoned:
 * its creator writes the record right after creating the file, and removes the
 * file if the write fails, so only a creator that died in between (or a full
 * disk under an older delegate) leaves it empty.
 */
export const UNREADABLE_STALE_MS = 5_000;

/**
 * Waits until the lock is ours, breaking it if its holder is gone; CACHE_IO when the lock file cannot be made or read,
 * or its path holds something else than a regular file (its cause a NotARegularFileError).
 */
export async function acquireFileLock(options: FileLockOptions): Promise<HeldLock> {
  try {
    return await acquire(options);
  } catch (error) {
    throw lockError(options, error);
  }
}

async function acquire(options: FileLockOptions): Promise<HeldLock> {
  const { path, now } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_MS;
  const retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
  const sleep = options.sleep ?? defaultSleep;
  const isAlive = options.isProcessAlive ?? processIsAlive;
  const isStopped = options.isProcessStopped ?? processIsStopped;
  const deadline = now() + timeoutMs;
  const record = (): LockRecord => ({ pid: process.pid, host: hostname(), nonce: randomBytes(16).toString('hex'), created: now() });
  await ensurePrivateDir(dirname(path));

  for (;;) {
    const mine = record();
    if (await tryCreate(path, mine)) return holding(options, mine.nonce, now, staleAfterMs);

    // Throws for a path that holds no regular file: nothing would ever release it.
    const holder = await readRecord(path);
    const touched = holder === 'gone' ? undefined : await lastTouched(path);
    // The holder that keeps the lock from us, if this look found one with a record (not released meanwhile, nor broken).
    let waitingFor: LockRecord | undefined;
    if (holder !== 'gone' && touched !== undefined) {
      const untouchedFor = now() - touched;
      // Asked of /proc only where it decides something (a lock past its age, or the wait over), not at every retry.
      const abandoned =
        holder === 'unreadable'
          ? untouchedFor > Math.min(UNREADABLE_STALE_MS, staleAfterMs)
          : (untouchedFor > staleAfterMs && !stoppedHere(holder, isStopped)) || holderIsGone(holder, isAlive);
      if (abandoned) {
        await breakLock(path, holder === 'unreadable' ? undefined : holder.nonce);
        const next = record();
        if (await tryCreate(path, next)) return holding(options, next.nonce, now, staleAfterMs);
        // Another waiter took it first: waited for as any holder.
      } else if (holder !== 'unreadable') {
        waitingFor = holder;
      }
    }
    // Every way round the loop passes here: a lock released at every look, or broken at every look, cannot keep a
    // waiter past its wait, nor (with the pause below) spin a core.
    if (now() >= deadline) throw lockTimedOut(path, timeoutMs, waitingFor !== undefined && stoppedHere(waitingFor, isStopped) ? waitingFor : undefined);
    await sleep(retryMs + Math.floor(Math.random() * retryMs));
  }
}

/** Past the wait; `stopped`, a holder on this host that is suspended, is named with what to do. */
function lockTimedOut(path: string, timeoutMs: number, stopped: LockRecord | undefined): ClientError {
  const held = `held ${path} for over ${Math.round(timeoutMs / 1000)} s`;
  return new ClientError(
    'LOCK_TIMEOUT',
    stopped
      ? `Process ${stopped.pid}, a suspended delegate (stopped, e.g. with Ctrl-Z), has ${held}: resume it (\`fg\` in its terminal) or end it, then try again.`
      : `Another delegate process has ${held}; if none is running, delete that file.`,
  );
}

/** Whether the holder is a process on this host that is stopped (suspended). */
function stoppedHere(holder: LockRecord, isStopped: (pid: number) => boolean): boolean {
  return holder.host === hostname() && isStopped(holder.pid);
}

/** Runs `work` while holding the lock. */
export async function withFileLock<T>(options: FileLockOptions, work: () => Promise<T>): Promise<T> {
  const lock = await acquireFileLock(options);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}

/** The lock, touched while held so that waiters see its holder at work, until released. */
function holding(options: FileLockOptions, nonce: string, now: () => number, staleAfterMs: number): HeldLock {
  const { path } = options;
  const heartbeat = setInterval(() => void touchIfMine(path, nonce, now), Math.max(10, Math.floor(staleAfterMs / BEATS_PER_STALE_LIMIT)));
  heartbeat.unref();
  return {
    release: async () => {
      clearInterval(heartbeat);
      try {
        await releaseIfMine(path, nonce);
      } catch (error) {
        throw lockError(options, error);
      }
    },
  };
}

async function touchIfMine(path: string, nonce: string, now: () => number): Promise<void> {
  try {
    const holder = await readRecord(path);
    if (holder !== 'gone' && holder !== 'unreadable' && holder.nonce === nonce) {
      const at = new Date(now());
      await utimes(path, at, at);
    }
  } catch {
    // a missed beat: the next one, or the release, follows
  }
}

async function tryCreate(path: string, record: LockRecord): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx', PRIVATE_FILE_MODE);
  } catch (error) {
    if (isErrno(error, 'EEXIST')) return false;
    throw error;
  }
  try {
    try {
      await handle.writeFile(JSON.stringify(record), 'utf8');
      const at = new Date(record.created);
      await handle.utimes(at, at); // touched on the lock's clock, as every beat is
    } finally {
      await handle.close();
    }
  } catch (error) {
    // The file is ours (O_EXCL) and holds no record: left behind, every process would wait for it to go stale.
    await unlink(path).catch(() => undefined);
    throw error;
  }
  return true;
}

/**
 * Opened for reading without following a symbolic link (ELOOP) or waiting for a FIFO's writer: what it is, is then
 * asked of the handle (fstat), so that what is read is what was looked at.
 */
const READ_NOT_FOLLOWING = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/**
 * The holder's record in the lock file at `path`, 'gone' if there is no file, 'unreadable' if it holds none yet;
 * NotARegularFileError if the path holds something else than a regular file.
 */
async function readRecord(path: string): Promise<LockRecord | 'gone' | 'unreadable'> {
  let handle: FileHandle;
  try {
    handle = await open(path, READ_NOT_FOLLOWING);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return 'gone';
    // A symbolic link (ELOOP; EMLINK or EFTYPE on BSDs), a socket (ENXIO): said as what it is, else the error.
    throw (await notALockFile(path)) ?? error;
  }
  let text: string;
  try {
    const kind = notARegularFile(await handle.stat(), 'a lock file');
    if (kind !== undefined) throw new NotARegularFileError(path, kind);
    text = await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
  try {
    const value = JSON.parse(text) as Partial<LockRecord>;
    if (typeof value.pid === 'number' && typeof value.nonce === 'string' && typeof value.created === 'number' && typeof value.host === 'string') {
      return value as LockRecord;
    }
  } catch {
    // Its creator is between open() and write(): treat it as held.
  }
  return 'unreadable';
}

/**
 * Whether the process is stopped (state T, or t when traced: /proc/<pid>/stat, proc(5)); false wherever that cannot be
 * read (another system, a process gone), so that elsewhere only age and liveness judge a lock, as before.
 */
export function processIsStopped(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state follows the command name, which is in parentheses and may itself hold ") ".
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'T' || state === 't';
  } catch {
    return false;
  }
}

/** NotARegularFileError if `path` itself (not what a link names) is no regular file, else undefined. */
async function notALockFile(path: string): Promise<NotARegularFileError | undefined> {
  try {
    const kind = notARegularFile(await lstat(path), 'a lock file');
    return kind === undefined ? undefined : new NotARegularFileError(path, kind);
  } catch {
    return undefined; // the open's own error says it
  }
}

/** Whether the holder's process is known to be gone: only a pid on this host can be asked. */
function holderIsGone(holder: LockRecord, isAlive: (pid: number) => boolean): boolean {
  return holder.host === hostname() && !isAlive(holder.pid);
}

/**
 * Removes an abandoned lock without removing a fresh one that another waiter
 * created in the meantime: move it aside under a unique name, check it is the
 * record we judged abandoned, and put it back (link fails if a newer lock
 * exists) when it is not.
 */
async function breakLock(path: string, abandonedNonce: string | undefined): Promise<void> {
  const aside = `${path}.${randomBytes(6).toString('hex')}.stale`;
  try {
    await rename(path, aside);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return;
    throw error;
  }
  const moved = await readRecord(aside);
  const same = moved === 'unreadable' ? abandonedNonce === undefined : moved !== 'gone' && moved.nonce === abandonedNonce;
  if (moved !== 'gone' && !same) {
    await link(aside, path).catch(() => undefined);
  }
  await unlink(aside).catch(() => undefined);
}

/** When the lock was last touched (its creation or its holder's last beat), or undefined if it is gone. */
async function lastTouched(path: string): Promise<number | undefined> {
  try {
    return (await lstat(path)).mtimeMs;
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return undefined;
    throw error;
  }
}

async function releaseIfMine(path: string, nonce: string): Promise<void> {
  const holder = await readRecord(path);
  if (holder !== 'gone' && holder !== 'unreadable' && holder.nonce === nonce) {
    await unlink(path).catch((error: unknown) => {
      if (!isErrno(error, 'ENOENT')) throw error;
    });
  }
}

/** A file system error on the lock as the person should read it: which file, and what went wrong. */
function lockError(options: Pick<FileLockOptions, 'path' | 'name'>, error: unknown): unknown {
  if (isClientError(error)) return error;
  const name = options.name ?? "the token cache's lock";
  if (error instanceof NotARegularFileError) {
    return new ClientError('CACHE_IO', `${name.charAt(0).toUpperCase()}${name.slice(1)} ${error.path} is ${error.kind}; move it away.`, { cause: error });
  }
  return new ClientError('CACHE_IO', `Cannot use ${name} ${options.path}: ${fileErrorText(error)}.`, { cause: error });
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
