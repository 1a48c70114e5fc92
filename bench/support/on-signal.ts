// A benchmark stopped by SIGTERM or SIGINT (Ctrl-C) runs no `finally` block:
// its servers' data directory (keys, tokens, the database) stayed in /tmp.
// This runs the benchmark's cleanup on the first of those signals, then exits
// as a process ended by it would (128 + the signal's number).
import { constants } from 'node:os';
import { setImmediate as turn } from 'node:timers/promises';

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;
let stoppingBy: NodeJS.Signals | undefined;

/** Registers `cleanup` for SIGTERM and SIGINT; the function returned unregisters it (call it once the cleanup has run in the ordinary way). */
export function cleanUpOnSignal(cleanup: () => Promise<void> | void): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    // A second signal while the cleanup runs changes nothing: the cleanup is bounded (servers get 5 s before SIGKILL).
    if (stoppingBy) return;
    stoppingBy = signal;
    void (async () => {
      try {
        await cleanup();
      } catch (error) {
        console.error(`cleanup after ${signal} failed: ${String((error as Error)?.message ?? error)}`);
      }
      process.exit(128 + constants.signals[signal]);
    })();
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  return () => {
    for (const signal of SIGNALS) process.off(signal, onSignal);
  };
}

/** process.exit(code), unless a signal's cleanup is running: that exits when it is done, with the signal's code. */
export function exit(code: number): void {
  if (!stoppingBy) process.exit(code);
}

/**
 * A turn of the event loop, for a benchmark that runs processes one after another with spawnSync (a signal's handler
 * runs only there); once a signal's cleanup runs, it never resolves, so the benchmark starts nothing more.
 */
export async function betweenRuns(): Promise<void> {
  await turn();
  if (stoppingBy) await new Promise<never>(() => undefined);
}
