// Timing helpers for the benchmarks: run a function and keep its result and
// its wall time, take medians, and print a table of figures and ratios.
import { performance } from 'node:perf_hooks';

export function time<T>(fn: () => T): { value: T; ms: number } {
  const start = performance.now();
  const value = fn();
  return { value, ms: performance.now() - start };
}

export async function timeAsync<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function formatMs(ms: number): string {
  return ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 1 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(3)} ms`;
}

/** Rows of [what, figure, note], aligned. */
export function report(rows: ReadonlyArray<readonly [string, string, string?]>): void {
  const width = Math.max(...rows.map((r) => r[0].length));
  const figure = Math.max(...rows.map((r) => r[1].length));
  for (const [what, value, note] of rows) console.log(`  ${what.padEnd(width)}  ${value.padStart(figure)}${note ? `  ${note}` : ''}`);
}
