// bringBackIfGone, which the CLI's /start runs before it sends the browser to the authorization server (sign-in.ts):
// one request when the server answers, the servers brought back and the request sent again when it got no answer,
// what stands in the way of bringing them back thrown, and anything else left for the browser to meet.
import { describe, expect, it } from 'vitest';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { bringBackIfGone } from '../../src/client/servers-gone.js';

const METADATA = 'http://127.0.0.1:8410/.well-known/oauth-authorization-server';

/** A fetch answering with `answers` in turn (an Error is thrown), recording the URLs asked for. */
function fetchOf(...answers: Array<Response | Error>): FetchLike & { asked: string[] } {
  const asked: string[] = [];
  const fetchFn = async (url: string | URL) => {
    asked.push(String(url));
    const next = answers.shift();
    if (next === undefined) throw new Error('asked once too often');
    if (next instanceof Error) throw next;
    return next;
  };
  return Object.assign(fetchFn, { asked });
}

/** What fetch throws when nothing listens on the port. */
function refused(): Error {
  return new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8410'), { code: 'ECONNREFUSED' }) });
}

describe('bringBackIfGone', () => {
  it('asks once, and brings nothing back, when the server answers (whatever it answers)', async () => {
    for (const status of [200, 404, 503]) {
      const fetchFn = fetchOf(new Response('{}', { status }));
      let gone = 0;
      await bringBackIfGone(METADATA, fetchFn, async () => void gone++);
      expect(fetchFn.asked).toEqual([METADATA]);
      expect(gone).toBe(0);
    }
  });

  it('brings the servers back when the request got no answer, and asks again', async () => {
    const fetchFn = fetchOf(refused(), new Response('{}'));
    let gone = 0;
    await bringBackIfGone(METADATA, fetchFn, async () => void gone++);
    expect(gone).toBe(1);
    expect(fetchFn.asked).toEqual([METADATA, METADATA]);
  });

  it('throws what stands in the way of bringing them back', async () => {
    const cannot = new Error('The delegate servers on 127.0.0.1 ports 8410… run from another data directory.');
    await expect(bringBackIfGone(METADATA, fetchOf(refused()), () => Promise.reject(cannot))).rejects.toBe(cannot);
  });

  it('leaves a request that failed otherwise (no answer in time) for the browser to meet, bringing nothing back', async () => {
    const timedOut = Object.assign(new Error('No answer within 30000 ms.'), { name: 'TimeoutError' });
    let gone = 0;
    await expect(bringBackIfGone(METADATA, fetchOf(timedOut), async () => void gone++)).resolves.toBeUndefined();
    expect(gone).toBe(0);
  });
});
