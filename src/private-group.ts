// Whether a group is a user's own private group (the user-private-group scheme of Debian and Red Hat, login.defs'
// USERGROUPS_ENAB: a group named as the user, whose only member is the user), so that a directory writable by that
// group is writable by no one else. Under that scheme umask 002 is the default, and ~/.local and ~/.local/share are
// made 0775; Debian's OpenSSH accepts exactly this group-writability ("Allow harmless group-writability"), which
// upstream's StrictModes refuses. Read from /etc/passwd and /etc/group only: a user or group known elsewhere (LDAP,
// an OpenShift-style uid in no file) is not taken as private.
import { readFileSync } from 'node:fs';

/** The two account files, as text (undefined when one cannot be read, so that nothing is taken as private). */
export interface AccountFiles {
  passwd: string;
  group: string;
}

/** /etc/passwd and /etc/group, or undefined. */
export function readAccountFiles(): AccountFiles | undefined {
  try {
    return { passwd: readFileSync('/etc/passwd', 'utf8'), group: readFileSync('/etc/group', 'utf8') };
  } catch {
    return undefined;
  }
}

/**
 * True when group `gid` is user `uid`'s private group: it has the user's name, lists no member but the user, and is
 * no other user's primary group. Any doubt (a user or group not in the files, a name listed twice) is false.
 */
export function isPrivateGroupOf(gid: number, uid: number, files: AccountFiles | undefined): boolean {
  if (files === undefined || usesNis(files.passwd) || usesNis(files.group)) return false;
  const users = entries(files.passwd);
  const groups = entries(files.group).filter((fields) => Number(fields[2]) === gid);
  const names = users.filter((fields) => Number(fields[2]) === uid).map((fields) => fields[0]);
  if (names.length !== 1 || groups.length !== 1) return false;
  const [name] = names;
  const [group] = groups;
  const members = (group![3] ?? '').split(',').filter((member) => member !== '');
  const othersPrimary = users.some((fields) => Number(fields[3]) === gid && Number(fields[2]) !== uid);
  return group![0] === name && members.every((member) => member === name) && !othersPrimary;
}

/** A `+` line brings in accounts of NIS that the file does not show. */
function usesNis(text: string): boolean {
  return text.split('\n').some((line) => line.startsWith('+'));
}

/** The colon-separated fields of each line that is not empty or a comment. */
function entries(text: string): string[][] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => line.split(':'));
}
