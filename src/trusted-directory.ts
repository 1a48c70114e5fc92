// Whether a directory that delegate keeps secrets in (the data directory, the config directory) is this user's own
// and cannot be swapped by another user, checked before anything is created or chmod-ed, as OpenSSH's StrictModes and
// gpg's home directory checks do. Found in review (s23local): another user's symbolic link given as DELEGATE_HOME was
// followed, and the directory it named (any of the owner's, their home itself) was chmod-ed 0700 and filled.
import { lstatSync, mkdirSync, readlinkSync, type Stats } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';

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
 * Throws UntrustedPathError when another user (not root) could replace `dir` or what it names: `dir` itself, or
 * a symbolic link on its way, owned by another user; or a directory on its way that is writable by group or others
 * and owned by neither this user nor root, unless it is sticky and the next entry is this user's or root's (as
 * /tmp is: only the entry's owner, the directory's owner and root may rename or remove it). The parts of the path that do not exist yet are left to be
 * created, by this user; a part that cannot be looked at (EACCES) ends the check, and the use that follows fails
 * as it did. A few lstat calls; nothing on Windows, which has no uid.
 */
export function refuseUntrustedDirectory(dir: string, what: string, uid: number | undefined = process.getuid?.()): void {
  if (uid === undefined) return;
  const problem = untrustedPart(resolve(dir), uid, 0);
  if (problem === undefined) return;
  const where = problem.at === resolve(dir) ? 'is' : `goes through ${problem.at},`;
  const why =
    problem.kind === 'link'
      ? `${where} a symbolic link of another user (uid ${problem.owner}), who could point it at any directory`
      : problem.kind === 'open'
        ? `lies in ${problem.at}, which another user (uid ${problem.owner}) owns and others may write to (mode ${problem.mode}), so it could be replaced`
        : `belongs to another user (uid ${problem.owner})`;
  throw new UntrustedPathError(dir, `The ${what} ${dir} ${why}: use a directory of your own (DELEGATE_HOME).`);
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
}

interface Problem {
  /** A symbolic link, a directory others may write to, or the directory itself that is another user's. */
  kind: 'link' | 'open' | 'owner';
  at: string;
  owner: number;
  mode: string;
}

/** What makes `path` (absolute) not to be trusted, or undefined. */
function untrustedPart(path: string, uid: number, links: number): Problem | undefined {
  const trusted = (owner: number): boolean => owner === uid || owner === 0;
  const problem = (kind: Problem['kind'], at: string, info: Stats): Problem => ({ kind, at, owner: info.uid, mode: `0${(info.mode & 0o7777).toString(8)}` });
  const parts = path.split(sep).filter((part) => part !== '');
  let parent = lookAt(sep);
  let parentPath: string = sep;
  for (const [i, part] of parts.entries()) {
    if (parent === undefined || !parent.isDirectory()) return undefined; // created by this user, or mkdir fails as before
    const here = resolve(parentPath, part);
    const info = lookAt(here);
    const sticky = (parent.mode & 0o1000) !== 0;
    if (info?.isSymbolicLink() && !trusted(info.uid)) return problem('link', here, info);
    if ((parent.mode & 0o022) !== 0 && !trusted(parent.uid) && !(sticky && (info === undefined || trusted(info.uid)))) return problem('open', parentPath, parent);
    if (info?.isSymbolicLink()) {
      const target = links < MAX_LINKS ? readLink(here) : undefined;
      return target === undefined ? undefined : untrustedPart(resolve(dirname(here), target, ...parts.slice(i + 1)), uid, links + 1);
    }
    parent = info;
    parentPath = here;
  }
  return parent?.isDirectory() && parent.uid !== uid ? problem('owner', parentPath, parent) : undefined;
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
