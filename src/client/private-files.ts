// Files only the owner may read, in a directory only the owner may enter:
// creating the data directory 0700 (refusing one another user could swap:
// src/trusted-directory.ts), tightening modes that are looser than
// 0600/0700, atomic replacement (temp file, fsync, rename, fsync of the
// directory) and exclusive creation (a file appears whole or not at all). A
// file that a rename cannot replace faithfully (a symbolic link, a mount point)
// is refused before anything is written (refuseUnreplaceable).
import { randomBytes } from 'node:crypto';
import { chmod, link, lstat, open, readFile, readdir, realpath, rename, stat, unlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { notARegularFile } from '../regular-file.js';
import { makeOwnDirectory, UntrustedPathError } from '../trusted-directory.js';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` (and its parents) if missing, and takes group/other access away from it; throws UntrustedPathError,
 * having created and chmod-ed nothing, for a directory another user could swap (makeOwnDirectory).
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  makeOwnDirectory(dir, 'directory');
  await tightenMode(dir, PRIVATE_DIR_MODE);
}

/**
 * Takes group and other permissions away from `path` when it has any, and
 * only from this user's own: root may chmod anyone's, and another user's
 * file or directory is theirs to swap or read (found in review, s23local:
 * what another user's link named was chmod-ed and filled). Without root,
 * chmod would fail with EPERM there anyway.
 */
export async function tightenMode(path: string, mode: number, info?: Stats): Promise<void> {
  info ??= await stat(path); // a caller that has just looked passes what it saw
  if ((info.mode & 0o077) === 0) return;
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) throw new UntrustedPathError(path, `${path} belongs to another user (uid ${info.uid}): it is not made private, nor used.`);
  await chmod(path, mode);
}

/** `path` holds no regular file (a directory, a FIFO): `kind` says what it is, to follow "<the file> is". */
export class NotARegularFileError extends Error {
  constructor(
    readonly path: string,
    readonly kind: string,
  ) {
    super(`${path} is ${kind}.`);
    this.name = 'NotARegularFileError';
  }
}

/**
 * The file's text, or undefined when it does not exist; a looser mode is tightened to 0600 first. One that is no
 * regular file is NotARegularFileError (`what` names what it should be), its mode untouched: a directory chmod-ed 0600
 * loses its x bits.
 */
export async function readPrivateFile(path: string, what: string): Promise<string | undefined> {
  try {
    const info = await stat(path);
    const kind = notARegularFile(info, what);
    if (kind !== undefined) throw new NotARegularFileError(path, kind);
    await tightenMode(path, PRIVATE_FILE_MODE, info);
    return await readFile(path, 'utf8');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return undefined;
    throw error;
  }
}

/**
 * Replaces `path` with `text` so that a reader sees either the old or the new
 * content, never a mix, even across a crash: write a private temp file beside
 * it, fsync, rename over, fsync the directory.
 */
export async function writePrivateFileAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  await ensurePrivateDir(dir);
  await refuseUnreplaceable(path);
  const temp = tempPathFor(path);
  const handle = await open(temp, 'wx', PRIVATE_FILE_MODE);
  try {
    try {
      await handle.chmod(PRIVATE_FILE_MODE); // whatever the umask did
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDir(dir);
}

/** A replacement for a file, its room on disk taken already (reservePrivateFileReplacement). */
export interface ReservedReplacement {
  /** Writes `text` over the reserved bytes, in place, and renames the result over the file: as writePrivateFileAtomic, with no new room needed while `text` fits. */
  commit(text: string): Promise<void>;
  /** Gives the room back (removes the temp file) if nothing was committed; safe to call more than once. */
  release(): Promise<void>;
}

/**
 * Takes `bytes` of room beside `path` now, for a replacement written later
 * (writePrivateFileAtomic's temp file, written through and fsynced, so that
 * its blocks are allocated), for when the write that follows must not fail for
 * want of space: what is written then goes over those blocks in place.
 * Throws (ENOSPC…) when the room is not there, having left nothing behind,
 * and NotReplaceableError when the rename that commits it could not replace
 * `path` faithfully (refuseUnreplaceable): found before, not after the step
 * that cannot be undone.
 */
export async function reservePrivateFileReplacement(path: string, bytes: number): Promise<ReservedReplacement> {
  const dir = dirname(path);
  await ensurePrivateDir(dir);
  await refuseUnreplaceable(path);
  await removeAbandonedTemps(path);
  const temp = tempPathFor(path);
  const handle = await open(temp, 'wx', PRIVATE_FILE_MODE);
  let held = true;
  const giveUp = async (): Promise<void> => {
    if (held) {
      held = false;
      await handle.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
    }
  };
  try {
    await handle.chmod(PRIVATE_FILE_MODE);
    await handle.writeFile(Buffer.alloc(bytes, 0x20));
    await handle.sync();
  } catch (error) {
    await giveUp();
    throw error;
  }
  return {
    commit: async (text) => {
      if (!held) throw new Error(`the room reserved for ${path} was given up`);
      try {
        const content = Buffer.from(text, 'utf8');
        await handle.write(content, 0, content.length, 0);
        await handle.truncate(content.length);
        await handle.sync();
        held = false;
        await handle.close();
        await rename(temp, path);
      } catch (error) {
        held = true; // closed or not, the temp file goes
        await giveUp();
        throw error;
      }
      await syncDir(dir);
    },
    release: giveUp,
  };
}

/**
 * `path` cannot be replaced by renaming a file over it, as writePrivateFileAtomic and a reserved replacement do:
 * `kind` says why.
 */
export class NotReplaceableError extends Error {
  constructor(
    readonly path: string,
    readonly kind: 'symbolic link' | 'mount point',
  ) {
    super(kind === 'symbolic link' ? `${path} is a symbolic link.` : `${path} is a mount point.`);
    this.name = 'NotReplaceableError';
  }
}

/**
 * Throws NotReplaceableError when a rename over `path` would not replace what is there as it is meant to: a symbolic
 * link (lstat: the rename would put a regular file in the link's place, and the file it names would never change), or
 * a mount point (a single file mounted there, as `docker run -v ./tokens.json:…` does: the rename fails with EBUSY).
 * Found in review (s31fault): the rename failed after the refresh token was spent, and a symbolic link was silently
 * replaced by a file. A mount point is one that /proc/self/mountinfo lists (a bind mount from the same file system keeps
 * st_dev, so that alone would not see it); where that cannot be read (not Linux), one whose file system is not its
 * directory's (st_dev). Nothing there (ENOENT) is replaceable. Read only on the way to a write, never on a read.
 */
export async function refuseUnreplaceable(path: string): Promise<void> {
  let info: Stats;
  try {
    info = await lstat(path);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return;
    throw error;
  }
  if (info.isSymbolicLink()) throw new NotReplaceableError(path, 'symbolic link');
  const points = await mountPoints();
  if (points !== undefined) {
    if (await listedAsMounted(await realpath(path), points)) throw new NotReplaceableError(path, 'mount point');
    return;
  }
  // Only where the mount table cannot be read: a file whose device is not its directory's. Not where it can: on an
  // overlayfs whose layers are on different file systems (a tmpfs over a read-only root), a file's st_dev is not its
  // directory's though nothing is mounted on it (found in review, s31fix: every sign-in there was refused).
  if (info.dev !== (await stat(dirname(path))).dev) throw new NotReplaceableError(path, 'mount point');
}

/**
 * Whether `real` (a resolved path) is a mount point the table lists: as itself, or under another path to its directory.
 * A bind mount of the directory (`mount --bind H A`) shows the file mounted on H/tokens.json at A/tokens.json too, where
 * a rename fails alike (EBUSY), but the table lists only H/tokens.json (found in review, s31fix2): a listed point of the
 * same name whose directory is this one (device and inode) is this file.
 */
async function listedAsMounted(real: string, points: Set<string>): Promise<boolean> {
  if (points.has(real)) return true;
  const name = basename(real);
  const namesakes = [...points].filter((point) => basename(point) === name);
  if (namesakes.length === 0) return false;
  const dir = await stat(dirname(real));
  for (const point of namesakes) {
    const other = await stat(dirname(point)).catch(() => undefined);
    if (other !== undefined && other.dev === dir.dev && other.ino === dir.ino) return true;
  }
  return false;
}

/** The mount points this process sees (/proc/self/mountinfo); undefined where that cannot be read (not Linux, no /proc). */
async function mountPoints(): Promise<Set<string> | undefined> {
  let text: string;
  try {
    text = await readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  return mountPointsIn(text);
}

/**
 * The mount points a mountinfo text lists (proc(5): the fifth field of each line), with the kernel's octal escapes of
 * space, tab, newline and backslash (`\040`, `\011`, `\012`, `\134`) undone.
 */
export function mountPointsIn(mountinfo: string): Set<string> {
  const points = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (field !== undefined) points.add(field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
  }
  return points;
}

/**
 * Creates `path` holding `text` only if it does not exist yet; returns false
 * when it already did. The content is written to a temp file and hard-linked
 * into place (link fails with EEXIST atomically), so a concurrent reader never
 * sees a half-written file, and two racing creators cannot both win.
 */
export async function createPrivateFileExclusive(path: string, text: string): Promise<boolean> {
  const dir = dirname(path);
  await ensurePrivateDir(dir);
  const temp = tempPathFor(path);
  const handle = await open(temp, 'wx', PRIVATE_FILE_MODE);
  try {
    try {
      await handle.chmod(PRIVATE_FILE_MODE);
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temp, path);
    } catch (error) {
      if (isErrno(error, 'EEXIST')) return false;
      throw error;
    }
    await syncDir(dir);
    return true;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

export function isErrno(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as NodeJS.ErrnoException).code === code;
}

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** A temp file older than this whose process is gone was left by a command that was killed (a reservation lives for one refresh, at most 30 s). */
const ABANDONED_TEMP_MS = 5 * 60_000;

/**
 * Removes the temp files of `path` (tempPathFor's names) that a killed
 * command left: its process is gone and the file is older than
 * ABANDONED_TEMP_MS. Found in review: Ctrl-C during a refresh left the
 * room reserved for the token cache behind for good, one more each time.
 */
export async function removeAbandonedTemps(path: string, now = Date.now(), isAlive: (pid: number) => boolean = processIsAlive): Promise<void> {
  const prefix = `.${basename(path)}.`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = name.startsWith(prefix) ? /^(\d+)\.[0-9a-f]{12}\.tmp$/.exec(name.slice(prefix.length))?.[1] : undefined;
    if (pid === undefined || Number(pid) === process.pid || isAlive(Number(pid))) continue;
    const file = join(dirname(path), name);
    const info = await stat(file).catch(() => undefined);
    if (info && now - info.mtimeMs > ABANDONED_TEMP_MS) await unlink(file).catch(() => undefined);
  }
}

/** Whether a process of this machine with this pid is running (EPERM: yes, another user's). */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return !isErrno(error, 'ESRCH'); // EPERM: alive, someone else's
  }
}

/** Makes a rename or link durable. Some file systems refuse fsync on a directory; that is not an error here. */
async function syncDir(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // EISDIR/EINVAL/EPERM on platforms without directory fsync.
  } finally {
    await handle?.close();
  }
}
