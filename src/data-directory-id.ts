// Which data directory a process runs from, as something two processes of this machine can compare without naming a
// path: the identity of the directory itself (its device and inode), hashed. Each server published at a loopback URL
// sends it with its metadata (the DATA_DIRECTORY_HEADER response header): the authorization server, so that a command
// that would use the servers on its ports compares it with its own (src/cli/stack.ts) before it signs in or writes
// anything (servers of another data directory trust another owner key, so the owner's sign-in link could only fail
// there: found in review, regress21a); the calendar backend and CalendarAgent too, so that a serve command that finds
// their port taken says whether this data directory's own servers hold it (found in review, s27ports). Two spellings
// of one directory (a symlink, a relative DELEGATE_HOME, a renamed directory) are one identity; it is not a secret
// (anyone who may stat the directory can work it out), and no path is sent.
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { isAnyLoopbackHost } from './delegation/resource.js';

/**
 * The response header of the servers' metadata (the authorization server's, RFC 8414; the calendar backend's and
 * CalendarAgent's, RFC 9728) that carries their data directory's identity. A header, not a metadata field: the
 * documents are readable cross-origin (CORS `*`), a header not listed in Access-Control-Expose-Headers is not, so web
 * pages cannot read it.
 */
export const DATA_DIRECTORY_HEADER = 'delegate-data-directory';

/** The identity of the directory `home` (base64url SHA-256 of its device and inode), or undefined when it cannot be looked at (missing). */
export async function dataDirectoryId(home: string): Promise<string | undefined> {
  try {
    const { dev, ino } = await stat(home, { bigint: true });
    return createHash('sha256').update(`delegate data directory\0${dev}:${ino}`).digest('base64url');
  } catch {
    return undefined;
  }
}

/**
 * What a server published at `publishedUrl` sends in DATA_DIRECTORY_HEADER: the identity of `home` when that URL is on
 * loopback (its clients run on this machine, and they alone compare it), else nothing; nothing without a directory.
 */
export async function publishedDataDirectoryId(publishedUrl: string, home: string | undefined): Promise<string | undefined> {
  return home !== undefined && isAnyLoopbackHost(new URL(publishedUrl).hostname) ? dataDirectoryId(home) : undefined;
}
