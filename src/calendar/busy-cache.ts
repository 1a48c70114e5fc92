// Busy time expanded once and reused across calls. Expanding recurring series
// is the expensive part of a free/busy answer, and consecutive calls ask for
// nearly the same window (from "now" for a week): so each calendar version is
// expanded over the window widened to whole UTC days, kept, and later windows
// inside that range are cut out of it with a binary search. A new version of
// a calendar is a new ParsedCalendar object, so its entries go with the old one.
// Expansion is cooperative (other requests of the process run meanwhile), one
// at a time (a read that needs another waits its turn), and a range whose
// expansion failed (over the limit, or a rule that could not be expanded) is
// remembered, so that the same read, or one over more days, is refused without
// paying for it again.
import { CalendarSourceError } from './errors.js';
import { expandBusyCooperatively, type BusyOptions, type ParsedCalendar } from './ics.js';
import type { Interval } from './intervals.js';
import { DAY_MS } from './zone.js';

export interface BusyCache {
  /**
   * Same result as expandBusy(calendar, window, options): merged, sorted, clipped to the window; rejects with
   * the CalendarSourceError expandBusy would throw.
   */
  busy(calendar: ParsedCalendar, window: Interval, options: BusyOptions): Promise<Interval[]>;
}

export interface BusyCacheOptions {
  /** Ranges kept per calendar version (least recently used go first), and as many failed ones; default 4. */
  maxRangesPerCalendar?: number;
  /** What windows are widened to before expanding; default whole UTC days. */
  alignMs?: number;
}

interface Entry {
  key: string;
  range: Interval;
  /** Merged and sorted, so a window is a contiguous run of it; pending while it is expanded, shared by the reads meanwhile. */
  busy: Promise<Interval[]>;
}

/** A range whose expansion failed: over the limit (ERR_ICS_EXPANSION_LIMIT), or a rule that could not be expanded (ERR_ICS_RULE). */
interface Failure {
  key: string;
  range: Interval;
  error: CalendarSourceError;
}

export function createBusyCache(options: BusyCacheOptions = {}): BusyCache {
  const maxRanges = options.maxRangesPerCalendar ?? 4;
  const align = options.alignMs ?? DAY_MS;
  const entries = new WeakMap<ParsedCalendar, Entry[]>();
  const failures = new WeakMap<ParsedCalendar, Failure[]>();
  // One expansion at a time, the others waiting their turn, as when expansion was synchronous. Found in review:
  // once expansion let other requests run, 16 concurrent reads of one large calendar ran 16 expansions side by side,
  // 953 MB at the peak against 288 MB one after another, and none answered for 20 s.
  let queue: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(work: () => Promise<T>): Promise<T> => {
    const turn = queue.then(work, work);
    queue = turn.catch(() => undefined);
    return turn;
  };

  return {
    async busy(calendar, window, busyOptions) {
      const key = `${busyOptions.timeZone}|${busyOptions.tentative ?? 'busy'}|${busyOptions.maxIterationsPerSeries ?? ''}|${busyOptions.maxIterations ?? ''}`;
      const list = entries.get(calendar) ?? [];
      const hit = list.findIndex((e) => e.key === key && e.range.start <= window.start && e.range.end >= window.end);
      if (hit >= 0) {
        const entry = list[hit]!;
        list.splice(hit, 1);
        list.unshift(entry);
        return cut(await entry.busy, window);
      }
      const range = { start: Math.floor(window.start / align) * align, end: Math.ceil(window.end / align) * align };
      // Iterating a range that holds another takes at least as many iterations of every rule (it starts no
      // later and stops no sooner), so a range that holds one that went over the limit goes over it too; and it
      // meets every instance the other met, so a rule that failed there fails again.
      const known = failures.get(calendar)?.find((f) => f.key === key && range.start <= f.range.start && range.end >= f.range.end);
      if (known) throw known.error;
      const entry: Entry = { key, range, busy: inTurn(() => expandBusyCooperatively(calendar, range, busyOptions)) };
      list.unshift(entry);
      if (list.length > maxRanges) list.length = maxRanges;
      entries.set(calendar, list);
      try {
        return cut(await entry.busy, window);
      } catch (err) {
        const at = list.indexOf(entry);
        if (at >= 0) list.splice(at, 1);
        // Expansion is a pure function of the calendar version, the range and the options: a CalendarSourceError is
        // the same on every try. Found in review regress21c: an ERR_ICS_RULE was not kept, and a rule that took 42 s
        // to fail was paid for by every read (anything else, a fault of this program, is not kept).
        if (err instanceof CalendarSourceError) {
          const failed = failures.get(calendar) ?? [];
          failed.unshift({ key, range, error: err });
          if (failed.length > maxRanges) failed.length = maxRanges;
          failures.set(calendar, failed);
        }
        throw err;
      }
    },
  };
}

/** The part of sorted, disjoint `busy` inside `window`, clipped to it. */
function cut(busy: readonly Interval[], window: Interval): Interval[] {
  // First interval that ends after the window starts.
  let lo = 0;
  let hi = busy.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (busy[mid]!.end <= window.start) lo = mid + 1;
    else hi = mid;
  }
  const out: Interval[] = [];
  for (let i = lo; i < busy.length && busy[i]!.start < window.end; i++) {
    const b = busy[i]!;
    out.push({ start: Math.max(b.start, window.start), end: Math.min(b.end, window.end) });
  }
  return out;
}
