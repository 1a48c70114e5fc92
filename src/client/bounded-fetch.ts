// A fetch whose every request ends within a bound, so that a server that
// accepts the connection and never answers cannot hang the CLI, nor hold
// tokens.lock while it waits (Node's own limit is 300 s for the headers).
//
// The bound is a timer of our own (deadline), not AbortSignal.timeout()
// joined to the caller's signal with AbortSignal.any(): Node 20's any() holds
// its sources weakly, and a timeout signal nothing else holds is collected at
// the next garbage collection and never fires. Loading the MCP SDK makes
// enough garbage for that, so the CLI's 30 s bound never fired and a hung
// agent was waited for until the SDK's own 60 s (found in review, s25faults).
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { heldTimeout, type HeldTimeout } from '../http/held-timeout.js';
import { causeAmong } from './errors.js';

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
  return causeAmong(error, (e) => e instanceof RequestTimedOut) as RequestTimedOut | undefined;
}

/**
 * A signal that aborts with RequestTimedOut after `ms`, or as `also` does. The timer holds it until it fires
 * (unref'd: it keeps no process alive by itself), so no garbage collection can lose the bound (src/http/held-timeout.ts).
 * dispose() it once the request is done, body and all: until then its listener stays on `also`, which may outlive
 * many requests (a transport's closing signal).
 */
export function deadline(ms: number, url: string, also?: AbortSignal): HeldTimeout {
  return heldTimeout(ms, () => new RequestTimedOut(url, ms), also);
}

/**
 * Every request through `fetchFn` is aborted after `ms` (answer and body), as well as on the caller's own signal. The
 * bound ends with the body (read to its end, failed or cancelled), or with the request if it failed: the SDK's
 * transport passes one signal of its own with every request, and each bound's listener stayed on it for the whole
 * `ms` (found in review, s26).
 */
export function boundedFetch(fetchFn: FetchLike, ms: number): FetchLike {
  return async (url, init) => {
    const bound = deadline(ms, String(url), init?.signal ?? undefined);
    let res: Response;
    try {
      res = await fetchFn(url, { ...init, signal: bound.signal });
    } catch (error) {
      bound.dispose();
      throw error;
    }
    return endingWithBody(res, bound.dispose);
  };
}

/** The Fetch standard's null body statuses: no Response with a body can be built with one of them. */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** `res`, its body read through, with `end` called once the body is done (its end, an error, a cancel); at once when it has none. */
function endingWithBody(res: Response, end: () => void): Response {
  if (res.body === null || NULL_BODY_STATUSES.has(res.status) || res.status < 200 || res.status > 599) {
    end();
    return res;
  }
  const reader = res.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          end();
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch (error) {
        end();
        controller.error(error);
      }
    },
    async cancel(reason) {
      end();
      await reader.cancel(reason);
    },
  });
  const passed = new Response(body, { status: res.status, headers: res.headers });
  // What the constructor cannot set: the SDK names a redirect it did not follow by the answer's url. Nor the reason
  // phrase as it came: fetch reads it as UTF-8, and the constructor refuses any character above U+00FF (found in
  // review, s26new: `404 Не найдено` failed the request with "Cannot convert argument to a ByteString").
  Object.defineProperties(passed, { url: { value: res.url }, redirected: { value: res.redirected }, statusText: { value: res.statusText } });
  return passed;
}
