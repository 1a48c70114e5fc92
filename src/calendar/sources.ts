// Where a user's calendars come from: .ics files, read and parsed once per
// version, and ICS feeds (feeds.ts). A file is re-read only when its
// modification time or size changes, so repeated free/busy calls cost one
// stat per calendar. A file that fails to parse is remembered as failing
// until it changes. Parsing is cooperative: the process's other requests run
// between its steps.
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { CalendarSourceError } from './errors.js';
import type { FeedLoader, FeedRef, StaleFeed } from './feeds.js';
import { parseCalendarCooperatively, type ParsedCalendar } from './ics.js';

/** A calendar in an .ics file, as a user configured it. */
export interface FileCalendarRef {
  /** The name the user knows it by; errors use it. */
  name: string;
  /** Path of its .ics file. */
  path: string;
}

/** A calendar as a user configured it: a file, or a feed at a URL. */
export type CalendarRef = FileCalendarRef | FeedRef;

export interface CalendarLoader {
  /** The parsed calendar; throws CalendarSourceError. */
  load(ref: CalendarRef): Promise<ParsedCalendar>;
  /** For a feed: whether the last load fell back on an older copy because the fetch failed. */
  staleness?(ref: CalendarRef): StaleFeed | undefined;
}

export interface CalendarLoaderOptions {
  /** How feeds are fetched and cached; without it a feed cannot be read. */
  feeds?: FeedLoader;
  /** File access, replaceable in tests. */
  readText?: (path: string) => Promise<string>;
  statFile?: (path: string) => Promise<{ mtimeMs: number; size: number }>;
  /** How many calendars to keep parsed (least recently loaded go first). */
  maxEntries?: number;
}

interface Entry {
  version: string;
  parsed: Promise<ParsedCalendar>;
}

export function createCalendarLoader(options: CalendarLoaderOptions = {}): CalendarLoader {
  const readText = options.readText ?? ((path: string) => readFile(path, 'utf8'));
  // The stat on every request is synchronous: the files are the user's own, on this machine, and an asynchronous
  // stat's trip through libuv's thread pool cost the calendar backend about eight times as much CPU (measured:
  // about 20 µs against 2.5 µs a call; in its profiles under load, a tenth of its time per request). The read of a
  // file that changed stays asynchronous.
  const statFile = options.statFile ?? (async (path: string) => statSync(path));
  const maxEntries = options.maxEntries ?? 64;
  const cache = new Map<string, Entry>();

  return {
    staleness(ref) {
      return 'url' in ref ? options.feeds?.staleness(ref) : undefined;
    },
    async load(ref) {
      if ('url' in ref) {
        if (!options.feeds) throw new CalendarSourceError('ERR_CALENDAR_UNREADABLE', ref.name, 'This server does not read calendar feeds.');
        return options.feeds.load(ref);
      }
      let version: string;
      try {
        const info = await statFile(ref.path);
        version = `${info.mtimeMs}:${info.size}`;
      } catch (err) {
        throw unreadable(ref, err);
      }
      const key = `${ref.name}\0${ref.path}`;
      const cached = cache.get(key);
      if (cached && cached.version === version) {
        // Refresh its place in the least-recently-used order.
        cache.delete(key);
        cache.set(key, cached);
        return cached.parsed;
      }
      const parsed = readText(ref.path).then(
        (text) => parseCalendarCooperatively(text, ref.name),
        (err: unknown) => {
          // A failed read may be passing; a failed parse is not, until the file changes.
          if (cache.get(key) === entry) cache.delete(key);
          throw unreadable(ref, err);
        },
      );
      const entry: Entry = { version, parsed };
      cache.delete(key);
      cache.set(key, entry);
      while (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
      return parsed;
    },
  };
}

function unreadable(ref: FileCalendarRef, err: unknown): CalendarSourceError {
  const code = (err as { code?: unknown } | null)?.code;
  const why = code === 'ENOENT' ? 'its file does not exist' : code === 'EACCES' ? 'its file may not be read' : 'its file could not be read';
  return new CalendarSourceError('ERR_CALENDAR_UNREADABLE', ref.name, `The calendar cannot be read: ${why}.`);
}
