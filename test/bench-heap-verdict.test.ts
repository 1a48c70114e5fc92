// The load test's memory verdict (bench/support/heap-verdict.ts) on made-up
// readings. It allowed a fixed 2 MiB + 5 % of the first reading whatever the
// calls, so a leak of 100 bytes per call over three rounds of 9,200 calls
// (2.6 MiB) passed; it now judges the slope after the warm-up round.
import { expect, it } from 'vitest';
import { MAX_BYTES_PER_CALL, MIN_JUDGED_CALLS, heapVerdict } from '../bench/support/heap-verdict.js';

const MIB = 1024 * 1024;
const CALLS = [9_200, 9_200, 9_200];

/** Heap after GC before the first round and after each, growing by `perCall` bytes per call from 27 MiB, plus `noise`. */
function readings(perCall: number, noise: readonly number[] = [0, 0, 0, 0]): number[] {
  const heap = [27 * MIB];
  for (const calls of CALLS) heap.push(heap.at(-1)! + perCall * calls);
  return heap.map((h, i) => h + noise[i]!);
}

it('a leak of 100 bytes per call over 3 rounds of 9,200 calls is a MISS, its slope read as 100 bytes per call', () => {
  const verdict = heapVerdict(readings(100), CALLS);
  expect(verdict.result).toBe('MISS');
  expect(verdict.bytesPerCall).toBeCloseTo(100, 6);
  expect(verdict.judgedCalls).toBe(18_400);
});

it('a flat heap with noise of ±100 KiB passes, the slope well under the bound', () => {
  const verdict = heapVerdict(readings(0, [60_000, -90_000, 100_000, -40_000]), CALLS);
  expect(verdict.result).toBe('PASS');
  expect(Math.abs(verdict.bytesPerCall!)).toBeLessThan(MAX_BYTES_PER_CALL);
});

it('the warm-up round is not judged: a jump during round 1 alone passes', () => {
  const heap = readings(0);
  heap[1]! += 4 * MIB;
  heap[2]! += 4 * MIB;
  heap[3]! += 4 * MIB;
  expect(heapVerdict(heap, CALLS).result).toBe('PASS');
});

it('too few calls after the warm-up, or a single round, is too short to judge, never a PASS', () => {
  const short = [2_000, 2_000, 2_000];
  expect(heapVerdict([27 * MIB, 27 * MIB, 27 * MIB, 27 * MIB], short)).toMatchObject({ result: 'too short to judge', judgedCalls: 4_000 });
  expect(heapVerdict([27 * MIB, 27 * MIB], [MIN_JUDGED_CALLS * 2]).result).toBe('too short to judge');
});
