// A fetch whose every request ends within a bound, so that a server that
// accepts the connection and never answers cannot hang the CLI, nor hold
// tokens.lock while it waits (Node's own limit is 300 s for the headers).
//
// The bound is a timer of our own (deadlineSignal), not AbortSignal.timeout()
// joined to the caller's signal with AbortSignal.any(): Node 20's any() holds
// its sources weakly, and a timeout signal nothing else holds is collected at
// the next garbage collection and never fires. Loading the MCP SDK makes
// enough garbage for that, so the CLI's 30 s bound never fired and a hung
// agent was waited for until the SDK's own 60 s (found in review, s25faults).
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { heldTimeoutSignal } from '../http/held-timeout.js';

/** The reason a request bounded here was aborted: `url` gave no full answer within `ms`. Named as AbortSignal.timeout()'s is. */
export class RequestTimedOut extends Error {
  constructor(
    readonly url: string,
    readonly ms: number,
  ) {
    super(`No answer from ${url} within ${ms} ms.`);
    this.name = 'TimeoutError';
  }
}

/** The RequestTimedOut among an error's causes (node:http wraps the reason in its AbortError), if any. */
export function requestTimedOut(error: unknown): RequestTimedOut | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof RequestTimedOut) return e;
  }
  return undefined;
}

/**
 * A signal that aborts with RequestTimedOut after `ms`, or as `also` does. The timer holds it until it fires
 * (unref'd: it keeps no process alive by itself), so no garbage collection can lose the bound (src/http/held-timeout.ts).
 */
export function deadlineSignal(ms: number, url: string, also?: AbortSignal): AbortSignal {
  return heldTimeoutSignal(ms, () => new RequestTimedOut(url, ms), also);
}

/** Every request through `fetchFn` is aborted after `ms` (answer and body), as well as on the caller's own signal. */
export function boundedFetch(fetchFn: FetchLike, ms: number): FetchLike {
  return (url, init) => fetchFn(url, { ...init, signal: deadlineSignal(ms, String(url), init?.signal ?? undefined) });
}
