// A signal that aborts after a time, or as another signal does, whose timer holds it until it fires. Not
// AbortSignal.timeout() joined to the other with AbortSignal.any(): Node 20's any() holds its sources weakly, and a
// timeout signal nothing else holds is collected at the next garbage collection and never fires (found in review,
// s25faults, for the CLI's request bound; the resource servers' revocation-list poll had the same pattern).

/** Aborts with `reason()` after `ms` (the timer unref'd: it keeps no process alive by itself), or as `also` does. */
export function heldTimeoutSignal(ms: number, reason: () => unknown, also?: AbortSignal): AbortSignal {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(reason()), ms);
  timer.unref();
  if (also?.aborted) {
    clearTimeout(timer);
    controller.abort(also.reason);
  } else {
    also?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        controller.abort(also.reason);
      },
      { once: true },
    );
  }
  return controller.signal;
}

/** The reason AbortSignal.timeout() gives: a DOMException named TimeoutError. */
export const timedOut = (): DOMException => new DOMException('The operation was aborted due to timeout', 'TimeoutError');
