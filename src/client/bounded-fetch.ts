// A fetch whose every request ends within a bound, so that a server that
// accepts the connection and never answers cannot hang the CLI, nor hold
// tokens.lock while it waits (Node's own limit is 300 s for the headers).
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';

/** Every request through `fetchFn` is aborted after `ms`, as well as on the caller's own signal. */
export function boundedFetch(fetchFn: FetchLike, ms: number): FetchLike {
  return (url, init) => {
    const timeout = AbortSignal.timeout(ms);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    return fetchFn(url, { ...init, signal });
  };
}
