// Whether a directory that delegate keeps secrets in (the data directory, the config directory) is this user's own
// and cannot be swapped by another user, checked before anything is created or chmod-ed, as OpenSSH's StrictModes and
// gpg's home directory checks do. Found in review (s23local): another user's symbolic link given as DELEGATE_HOME was
// followed, and the directory it named (any of the owner's, their home itself) was chmod-ed 0700 and filled.
import { lstatSync, mkdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { isPrivateGroupOf, readAccountFiles, type AccountFiles } from './private-group.js';

/** A directory (or file) another user controls, refused before it is created in, chmod-ed or read from. */
export class UntrustedPathError extends Error {
  readonly code = 'UNTRUSTED_PATH';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'UntrustedPathError';
  }
}

/** How many symbolic links a path may pass through before the check gives up, as Linux's own limit (ELOOP then). */
const MAX_LINKS = 40;

/**
 * Throws UntrustedPathError when another user (not root) could replace `dir` or what it names, as OpenSSH's
 * secure_path (StrictModes) decides: `dir` itself, or a symbolic link on its way, owned by another user; a directory
 * on its way owned by neither this user nor root (its owner may rename what is in it, whatever its mode); or one
 * that group or others may write to, unless it is sticky (only an entry's owner, the directory's owner and root may
 * rename or remove the entry, and the next entry is checked in turn, as /tmp is) or only this user's private group
 * may write to it (src/private-group.ts). The parts of the path that do not exist yet are left to be created, by
 * this user; a part that cannot be looked at (EACCES) ends the check, and the use that follows fails as it did. A
 * few lstat calls (and /etc/passwd and /etc/group read for a group-writable directory); nothing on Windows, which
 * has no uid.
 */
export function refuseUntrustedDirectory(dir: string, what: string, uid: number | undefined = process.getuid?.()): void {
  if (uid === undefined) return;
  const problem = untrustedPart(resolve(dir), uid, 0, lazily(readAccountFiles));
  if (problem === undefined) return;
  throw new UntrustedPathError(dir, `The ${what} ${dir} ${describe(problem, problem.at === resolve(dir))}: use a directory of your own (DELEGATE_HOME).`);
}

/**
 * Why another user (not root) could change the file at `path` or put another in its place, as a clause ("belongs to
 * another user (uid 1002)"), or undefined: what refuseUntrustedDirectory finds on its way (a directory or link
 * another user controls), then the file itself, its links followed, another user's or one that others may write to
 * (a group's other than this user's private group). For a warning, not a refusal: `calendar add` of a file another
 * user controls (found in review, s27web). The same few lstat calls, and one stat; nothing on Windows.
 */
export function untrustedFileReason(path: string, uid: number | undefined = process.getuid?.()): string | undefined {
  if (uid === undefined) return undefined;
  const absolute = resolve(path);
  const accounts = lazily(readAccountFiles);
  const problem = untrustedPart(absolute, uid, 0, accounts);
  if (problem !== undefined) return describe(problem, problem.at === absolute, 'file');
  let info: Stats;
  try {
    info = statSync(absolute);
  } catch {
    return undefined;
  }
  const mode = `0${(info.mode & 0o7777).toString(8)}`;
  if (info.uid !== uid && info.uid !== 0) return `belongs to another user (uid ${info.uid}), who could change it`;
  if ((info.mode & 0o002) !== 0) return `may be written by everyone (mode ${mode})`;
  if ((info.mode & 0o020) !== 0 && !isPrivateGroupOf(info.gid, uid, accounts())) return `may be written by the users of group ${info.gid} (mode ${mode})`;
  return undefined;
}

/** Why `problem` makes the directory (`itself`: the problem is at the directory, not on its way) unsafe. */
function describe(problem: Problem, itself: boolean, what: 'directory' | 'file' = 'directory'): string {
  const writable = problem.writableBy === undefined ? '' : ` and others may write to (mode ${problem.mode})`;
  switch (problem.kind) {
    case 'link':
      return `${itself ? 'is' : `goes through ${problem.at},`} a symbolic link of another user (uid ${problem.owner}), who could point it at any ${what}`;
    case 'owner':
      return `belongs to another user (uid ${problem.owner})`;
    case 'foreign':
      return `lies in ${problem.at}, which another user (uid ${problem.owner}) owns${writable}, so it could be replaced`;
    case 'open':
      return `lies in ${problem.at}, which ${problem.writableBy} may write to (mode ${problem.mode}, not sticky), so another user could replace it`;
  }
}

/**
 * Creates `dir` and its missing parents (0700) once refuseUntrustedDirectory finds nothing wrong with it, and looks
 * again at what mkdir found there (another user may have put a link at a name that was free), before the caller
 * chmods it or writes in it.
 */
export function makeOwnDirectory(dir: string, what: string): void {
  refuseUntrustedDirectory(dir, what);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  refuseUntrustedDirectory(dir, what);
  refuseSharedDirectory(dir, what);
}

/**
 * A directory everyone may write to, or a sticky one, is a shared place (/tmp itself, a team's drop directory), not
 * one to keep private files in: the callers would chmod it 0700 next, and so take it from everyone else. Found at
 * stop 34: as root, `DELEGATE_HOME=/tmp` made the machine's /tmp 0700, and every other user's program then failed
 * in it. Refused, its mode left as it is; a directory of one's own that others may only read is still tightened.
 */
function refuseSharedDirectory(dir: string, what: string): void {
  if (process.getuid?.() === undefined) return;
  const mode = statSync(dir).mode;
  if ((mode & 0o1002) === 0) return;
  const shown = `0${(mode & 0o7777).toString(8)}`;
  throw new UntrustedPathError(
    dir,
    `The ${what} ${dir} is a shared directory (mode ${shown}: ${(mode & 0o002) !== 0 ? 'everyone may write to it' : 'sticky, as /tmp is'}), so it is neither made private nor used: ` +
      `use a directory of your own inside it (DELEGATE_HOME=${resolve(dir, 'delegate')}).`,
  );
}

interface Problem {
  /**
   * A symbolic link of another user; the directory itself another user's; a directory on its way another user's; or
   * one on its way that others may write to.
   */
  kind: 'link' | 'owner' | 'foreign' | 'open';
  at: string;
  owner: number;
  mode: string;
  /** Who besides its owner may write to the directory at `at` ("everyone", "the users of group N"), if anyone. */
  writableBy: string | undefined;
}

/** What makes `path` (absolute) not to be trusted, or undefined. */
function untrustedPart(path: string, uid: number, links: number, accounts: () => AccountFiles | undefined): Problem | undefined {
  const trusted = (owner: number): boolean => owner === uid || owner === 0;
  const problem = (kind: Problem['kind'], at: string, info: Stats): Problem => ({
    kind,
    at,
    owner: info.uid,
    mode: `0${(info.mode & 0o7777).toString(8)}`,
    writableBy: (info.mode & 0o002) !== 0 ? 'everyone' : (info.mode & 0o020) !== 0 ? `the users of group ${info.gid}` : undefined,
  });
  const parts = path.split(sep).filter((part) => part !== '');
  let parent = lookAt(sep);
  let parentPath: string = sep;
  for (const [i, part] of parts.entries()) {
    if (parent === undefined || !parent.isDirectory()) return undefined; // created by this user, or mkdir fails as before
    const here = resolve(parentPath, part);
    const info = lookAt(here);
    if (info?.isSymbolicLink() && !trusted(info.uid)) return problem('link', here, info);
    // OpenSSH's secure_path: each directory on the way is this user's or root's, and not writable by others. A
    // sticky one may be (only the entry's owner, root or this directory's trusted owner can rename the entry, which
    // is checked next); so may one only this user's private group can write to (Debian's OpenSSH allows that too).
    if (!trusted(parent.uid)) return problem('foreign', parentPath, parent);
    const sticky = (parent.mode & 0o1000) !== 0;
    const groupOnly = (parent.mode & 0o022) === 0o020;
    if ((parent.mode & 0o022) !== 0 && !sticky && !(groupOnly && isPrivateGroupOf(parent.gid, uid, accounts()))) return problem('open', parentPath, parent);
    if (info?.isSymbolicLink()) {
      const target = links < MAX_LINKS ? readLink(here) : undefined;
      return target === undefined ? undefined : untrustedPart(resolve(dirname(here), target, ...parts.slice(i + 1)), uid, links + 1, accounts);
    }
    parent = info;
    parentPath = here;
  }
  return parent?.isDirectory() && parent.uid !== uid ? problem('owner', parentPath, parent) : undefined;
}

/** `read`'s value, read on the first call only. */
function lazily<T>(read: () => T): () => T {
  let value: { read: T } | undefined;
  return () => (value ??= { read: read() }).read;
}

function readLink(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** The entry itself (a link not followed), or undefined when it is not there or cannot be looked at. */
function lookAt(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
