// Busy time expanded once and reused across calls. Expanding recurring series
// is the expensive part of a free/busy answer, and consecutive calls ask for
// nearly the same window (from "now" for a week): so each calendar version is
// expanded over the window widened to whole UTC days, kept, and later windows
// inside that range are cut out of it with a binary search. A new version of
// a calendar is a new ParsedCalendar object, so its entries go with the old one.
import { expandBusy, type BusyOptions, type ParsedCalendar } from './ics.js';
import type { Interval } from './intervals.js';
import { DAY_MS } from './zone.js';

export interface BusyCache {
  /** Same result as expandBusy(calendar, window, options): merged, sorted, clipped to the window. */
  busy(calendar: ParsedCalendar, window: Interval, options: BusyOptions): Interval[];
}

export interface BusyCacheOptions {
  /** Ranges kept per calendar version (least recently used go first); default 4. */
  maxRangesPerCalendar?: number;
  /** What windows are widened to before expanding; default whole UTC days. */
  alignMs?: number;
}

interface Entry {
  key: string;
  range: Interval;
  /** Merged and sorted, so a window is a contiguous run of it. */
  busy: Interval[];
}

export function createBusyCache(options: BusyCacheOptions = {}): BusyCache {
  const maxRanges = options.maxRangesPerCalendar ?? 4;
  const align = options.alignMs ?? DAY_MS;
  const entries = new WeakMap<ParsedCalendar, Entry[]>();

  return {
    busy(calendar, window, busyOptions) {
      const key = `${busyOptions.timeZone}|${busyOptions.tentative ?? 'busy'}|${busyOptions.maxIterationsPerSeries ?? ''}`;
      const list = entries.get(calendar) ?? [];
      const hit = list.findIndex((e) => e.key === key && e.range.start <= window.start && e.range.end >= window.end);
      if (hit >= 0) {
        const entry = list[hit]!;
        list.splice(hit, 1);
        list.unshift(entry);
        return cut(entry.busy, window);
      }
      const range = { start: Math.floor(window.start / align) * align, end: Math.ceil(window.end / align) * align };
      const entry: Entry = { key, range, busy: expandBusy(calendar, range, busyOptions) };
      list.unshift(entry);
      if (list.length > maxRanges) list.length = maxRanges;
      entries.set(calendar, list);
      return cut(entry.busy, window);
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
