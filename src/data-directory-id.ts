// Which data directory a process runs from, as something two processes of this machine can compare without naming a
// path: the identity of the directory itself (its device and inode), hashed. The authorization server on a loopback
// issuer sends it with its metadata (the DATA_DIRECTORY_HEADER response header), and a command that would use the
// servers on its ports compares it with its own (src/cli/stack.ts) before it signs in or writes anything: servers of
// another data directory trust another owner key, so the owner's sign-in link could only fail there (found in review,
// regress21a). Two spellings of one directory (a symlink, a relative DELEGATE_HOME, a renamed directory) are one
// identity; it is not a secret (anyone who may stat the directory can work it out), and no path is sent.
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';

/**
 * The response header of the authorization server's metadata (RFC 8414) that carries its data directory's identity.
 * A header, not a metadata field: the document is readable cross-origin (CORS `*`), a header not listed in
 * Access-Control-Expose-Headers is not, so web pages cannot read it.
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
