// Half-open time intervals [start, end) in epoch milliseconds and the set
// operations busy time and free time are built from: merge, clip, subtract.
// Pure: no I/O, no clock.

/** [start, end) in epoch milliseconds; empty when end <= start. */
export interface Interval {
  start: number;
  end: number;
}

/**
 * The union of `intervals` as sorted, disjoint, non-empty intervals.
 * Overlapping and touching intervals ([9, 10) and [10, 11)) become one,
 * since half-open intervals that touch leave no gap between them.
 */
export function mergeIntervals(intervals: readonly Interval[]): Interval[] {
  const sorted = intervals.filter((i) => i.end > i.start).sort((a, b) => a.start - b.start || a.end - b.end);
  const out: Interval[] = [];
  for (const { start, end } of sorted) {
    const last = out[out.length - 1];
    if (last && start <= last.end) {
      if (end > last.end) last.end = end;
    } else {
      out.push({ start, end });
    }
  }
  return out;
}

/** The parts of `intervals` that lie inside `window`, merged. */
export function clipIntervals(intervals: readonly Interval[], window: Interval): Interval[] {
  return mergeIntervals(
    intervals.map((i) => ({ start: Math.max(i.start, window.start), end: Math.min(i.end, window.end) })),
  );
}

/** `base` minus `remove`: what of `base` no interval of `remove` covers. Both are merged first. */
export function subtractIntervals(base: readonly Interval[], remove: readonly Interval[]): Interval[] {
  const holes = mergeIntervals(remove);
  const out: Interval[] = [];
  let h = 0;
  for (const piece of mergeIntervals(base)) {
    let cursor = piece.start;
    while (h < holes.length && holes[h]!.end <= cursor) h++;
    for (let k = h; k < holes.length && holes[k]!.start < piece.end; k++) {
      const hole = holes[k]!;
      if (hole.start > cursor) out.push({ start: cursor, end: hole.start });
      cursor = Math.max(cursor, hole.end);
    }
    if (cursor < piece.end) out.push({ start: cursor, end: piece.end });
  }
  return out;
}

/** Whether two half-open intervals share at least one instant. */
export function overlaps(a: Interval, b: Interval): boolean {
  return a.start < b.end && b.start < a.end;
}
