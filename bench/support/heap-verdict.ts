// The load test's memory verdict (bench/load.ts), pure so that it can be
// tested on made-up readings: does CalendarAgent's heap, read after a forced
// GC before the first memory round and after each, grow with the calls made?
// The first round is a warm-up (new clients' first calls fill what fills
// once: JIT code, pools, caches reaching their working size); the verdict is
// the least-squares slope of heap-after-GC against the calls made over the
// rounds after it, in bytes per call, judged against a fixed bound. A fixed
// allowance (the old "2 MiB + 5 %") let any leak pass that a run's calls did
// not multiply past it: 1 KB per call in a short run, about 127 B per call in
// a default one.

/**
 * The most a call may leave behind, on average, in bytes; and the fewest
 * calls in the judged rounds for a PASS. In a run with no leak (this code,
 * 50 new clients a round, 3 rounds of 10 s on a 2-CPU machine kept busy by
 * other jobs), heap-after-GC moved by up to 0.4 MiB from one reading to the
 * next (28.2, 28.6, 28.2 MiB) while the slope read 3.0 bytes per call. A
 * swing of 0.4 MiB over MIN_JUDGED_CALLS calls is 28 bytes per call, under
 * the bound: with fewer calls the noise alone could pass for a leak (or hide
 * one), so the run is "too short to judge". A default run on a quiet machine
 * (about 950 calls/s) judges about 19,000 calls. A second such run read
 * 28.0, 28.1, 28.3 MiB, 25.4 bytes per call over 13,620 calls; each new
 * token costs the agent about 6 KB until its bounded caches are full, about
 * 33 bytes per call at a default round's pace, which is why the warm-up round
 * now fills them first (bench/support/memory-rounds.ts). With it, a run
 * read 30.8, 30.6, 30.7 MiB: −8.1 bytes per call over 15,000 calls; with
 * 100 bytes kept per request on purpose, 188.2 bytes per call.
 */
export const MAX_BYTES_PER_CALL = 32;
export const MIN_JUDGED_CALLS = 15_000;

export type HeapVerdict =
  | { result: 'PASS' | 'MISS'; bytesPerCall: number; judgedCalls: number }
  | { result: 'too short to judge'; bytesPerCall: number | undefined; judgedCalls: number };

/**
 * `heapUsed`: the heap after GC before the first round, then after each
 * round (one more than `callsPerRound`); `callsPerRound`: the calls each
 * round made. Judges rounds 2..N: their readings (the one after round 1
 * first, at 0 calls) against the calls made since round 1.
 */
export function heapVerdict(heapUsed: readonly number[], callsPerRound: readonly number[]): HeapVerdict {
  if (heapUsed.length !== callsPerRound.length + 1) throw new Error(`${heapUsed.length} readings for ${callsPerRound.length} rounds: one before the first round, one after each`);
  // After round 1 (index 1) at x = 0, then after each later round at the calls made since.
  const points: Array<[number, number]> = [];
  let calls = 0;
  for (let i = 1; i < heapUsed.length; i++) {
    if (i > 1) calls += callsPerRound[i - 1]!;
    points.push([calls, heapUsed[i]!]);
  }
  const bytesPerCall = points.length >= 2 && calls > 0 ? slope(points) : undefined;
  if (bytesPerCall === undefined || calls < MIN_JUDGED_CALLS) return { result: 'too short to judge', bytesPerCall, judgedCalls: calls };
  return { result: bytesPerCall <= MAX_BYTES_PER_CALL ? 'PASS' : 'MISS', bytesPerCall, judgedCalls: calls };
}

/** The least-squares slope of y against x. */
function slope(points: ReadonlyArray<readonly [number, number]>): number {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  return sxy / sxx;
}
