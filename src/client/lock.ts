// A cross-process lock on a file (tokens.lock): whoever creates the file with
// O_EXCL holds it. Used around token refresh so that many CLI processes
// started at once spend the refresh token once (refresh tokens rotate, and
// replaying a spent one revokes the whole family). A lock left behind by a
// process that died is broken: its holder's pid is gone, or it is too old.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ClientError } from './errors.js';
import { PRIVATE_FILE_MODE, ensurePrivateDir, isErrno } from './private-files.js';

export interface FileLockOptions {
  /** The lock file, e.g. Paths.tokenLock. */
  path: string;
  now: () => number;
  /** Give up waiting after this long (ms). */
  timeoutMs?: number;
  /** A lock older than this (ms) is considered abandoned even if its pid seems alive (pids get reused). */
  staleAfterMs?: number;
  /** Pause between attempts (ms); jittered so waiters do not move in lockstep. */
  retryMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Whether a process with this pid runs on this host. */
  isProcessAlive?: (pid: number) => boolean;
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
const DEFAULT_STALE_MS = 120_000;
const DEFAULT_RETRY_MS = 20;

/** Waits until the lock is ours, breaking it if its holder is gone. */
export async function acquireFileLock(options: FileLockOptions): Promise<HeldLock> {
  const { path, now } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_MS;
  const retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
  const sleep = options.sleep ?? defaultSleep;
  const isAlive = options.isProcessAlive ?? processIsAlive;
  const deadline = now() + timeoutMs;
  await ensurePrivateDir(dirname(path));

  for (;;) {
    const mine: LockRecord = { pid: process.pid, host: hostname(), nonce: randomBytes(16).toString('hex'), created: now() };
    if (await tryCreate(path, mine)) return { release: () => releaseIfMine(path, mine.nonce) };

    const holder = await readRecord(path);
    if (holder === 'gone') continue; // released between our attempt and the read
    if (holder === 'unreadable' ? await isOlderThan(path, now() - staleAfterMs) : isAbandoned(holder, now(), staleAfterMs, isAlive)) {
      await breakLock(path, holder === 'unreadable' ? undefined : holder.nonce);
      continue;
    }
    if (now() >= deadline) {
      throw new ClientError(
        'LOCK_TIMEOUT',
        `Another delegate process has held ${path} for over ${Math.round(timeoutMs / 1000)} s; if none is running, delete that file.`,
      );
    }
    await sleep(retryMs + Math.floor(Math.random() * retryMs));
  }
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

async function tryCreate(path: string, record: LockRecord): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx', PRIVATE_FILE_MODE);
  } catch (error) {
    if (isErrno(error, 'EEXIST')) return false;
    throw error;
  }
  try {
    await handle.writeFile(JSON.stringify(record), 'utf8');
  } finally {
    await handle.close();
  }
  return true;
}

async function readRecord(path: string): Promise<LockRecord | 'gone' | 'unreadable'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return 'gone';
    throw error;
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

function isAbandoned(holder: LockRecord, at: number, staleAfterMs: number, isAlive: (pid: number) => boolean): boolean {
  if (at - holder.created > staleAfterMs) return true;
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

/** Whether the file was last written before `instant` (a lock whose creator died before writing its record). */
async function isOlderThan(path: string, instant: number): Promise<boolean> {
  try {
    return (await stat(path)).mtimeMs < instant;
  } catch {
    return false;
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

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return !isErrno(error, 'ESRCH'); // EPERM: alive, someone else's
  }
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
