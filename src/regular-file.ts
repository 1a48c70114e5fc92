// A file read for what it holds (a key, a token, the token cache, config.json) that is no regular file is said to be
// so before its mode or its text is looked at. Found in review (s25faults): a directory named agent-key.json was
// "readable by other users (mode 755); make it 0600", and once chmod-ed, "cannot be read (EISDIR)"; the token cache's
// directory was chmod-ed 0600 (its x bits taken) before it was found to be one; and a FIFO would be read for ever.
import type { Stats } from 'node:fs';

/**
 * What `info` is when it is no regular file, to follow "<the file> is" ("a directory, not a key file"), or undefined
 * for a regular file (one behind a symbolic link too: stat follows it; lstat does not, and a link is then said to be one).
 */
export function notARegularFile(info: Stats, what: string, options: { streams?: boolean } = {}): string | undefined {
  if (info.isFile()) return undefined;
  if (info.isDirectory()) return `a directory, not ${what}`;
  if (info.isSymbolicLink()) return `a symbolic link, not ${what}`;
  return options.streams ? undefined : `a special file (a FIFO, socket or device), not ${what}`;
}

/**
 * For a file the person names on the command line (`--key`, `--subject-token-file`): a pipe is read to its end,
 * `--key <(pass show agent-key)` or `/dev/stdin`, as it always was (found in review, s25new2: the check above refused
 * them as special files); only a directory is refused.
 */
export const NAMED_ON_THE_COMMAND_LINE = { streams: true } as const;
