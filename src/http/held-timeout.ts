// A signal that aborts after a time, or as another signal does, whose timer holds it until it fires. Not
// AbortSignal.timeout() joined to the other with AbortSignal.any(): Node 20's any() holds its sources weakly, and a
// timeout signal nothing else holds is collected at the next garbage collection and never fires (found in review,
// s25faults, for the CLI's request bound; the resource servers' revocation-list poll had the same pattern).

export interface HeldTimeout {
  signal: AbortSignal;
  /** Ends it: the timer cleared and the listener on `also` removed (a long-lived `also`, such as a server's stop signal, keeps none). */
  dispose(): void;
}

/** Aborts with `reason()` after `ms` (the timer unref'd: it keeps no process alive by itself), or as `also` does. */
export function heldTimeout(ms: number, reason: () => unknown, also?: AbortSignal): HeldTimeout {
  const controller = new AbortController();
  const onAbort = (): void => {
    clearTimeout(timer);
    controller.abort(also!.reason);
  };
  // Found in review (s25new3): the listener stayed on `also` once the timer had fired or the request was done, one
  // more on the revocation list's stop signal at every poll (MaxListenersExceededWarning within seconds, about 2 KB a
  // poll for good).
  const dispose = (): void => {
    clearTimeout(timer);
    also?.removeEventListener('abort', onAbort);
  };
  const timer = setTimeout(() => {
    also?.removeEventListener('abort', onAbort);
    controller.abort(reason());
  }, ms);
  timer.unref();
  if (also?.aborted) onAbort();
  else also?.addEventListener('abort', onAbort, { once: true });
  return { signal: controller.signal, dispose };
}

/** The reason AbortSignal.timeout() gives: a DOMException named TimeoutError. */
export const timedOut = (): DOMException => new DOMException('The operation was aborted due to timeout', 'TimeoutError');
