// bringBackIfGone, which the CLI's /start runs before it sends the browser to the authorization server (sign-in.ts):
// one request when the authorization server answers with its own metadata; the servers brought back and the request
// sent again when it got no answer; the look at the ports (serversGone) asked when something else answers; what
// stands in the way thrown (a program of another user on the port among it); no answer in time left for the browser.
import { describe, expect, it } from 'vitest';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { bringBackIfGone } from '../../src/client/servers-gone.js';

const ISSUER = 'http://127.0.0.1:8410';
const METADATA = `${ISSUER}/.well-known/oauth-authorization-server`;
const own = () => new Response(JSON.stringify({ issuer: ISSUER }), { headers: { 'content-type': 'application/json' } });

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
  it('asks once, and brings nothing back, when the authorization server answers with its own metadata', async () => {
    const fetchFn = fetchOf(own());
    let gone = 0;
    await bringBackIfGone(ISSUER, fetchFn, async () => void gone++);
    expect(fetchFn.asked).toEqual([METADATA]);
    expect(gone).toBe(0);
  });

  // Found in review (s28new): any answer sent the browser on, with the owner's link, to whatever held the port.
  it('asks the look at the ports (which refuses another program there) when anything else answers', async () => {
    const others = [new Response('{}', { status: 404 }), new Response('busy', { status: 503 }), new Response(JSON.stringify({ issuer: 'http://127.0.0.1:9999' })), new Response('<html>')];
    for (const answer of others) {
      let gone = 0;
      // The look found (or started) this directory's servers: they answer as the issuer the sign-in began with.
      await bringBackIfGone(ISSUER, fetchOf(answer, own()), async () => void gone++);
      expect(gone).toBe(1);
    }
    const there = new Error('Port 8410 is used by another program, not delegate’s authorization server.');
    await expect(bringBackIfGone(ISSUER, fetchOf(new Response('{}', { status: 404 })), () => Promise.reject(there))).rejects.toBe(there);
  });

  // Found in review (s28new2): another data directory's server on the port answers with the same issuer.
  it("asks the look at the ports when the answer names another data directory; one naming this one's, or none, goes on", async () => {
    const withDirectory = (id: string) => new Response(JSON.stringify({ issuer: ISSUER }), { headers: { 'delegate-data-directory': id } });
    let gone = 0;
    await bringBackIfGone(ISSUER, fetchOf(withDirectory('theirs'), own()), async () => void gone++, async () => 'ours');
    expect(gone).toBe(1);
    for (const answer of [withDirectory('ours'), own()]) {
      await bringBackIfGone(ISSUER, fetchOf(answer), async () => void gone++, async () => 'ours');
    }
    expect(gone).toBe(1);
  });

  // Found in review (s28new2): the look at the ports took servers for this directory's whose issuer is not the one the
  // sign-in began with (split servers restarted as the embedded ones, another issuer): the link could only be refused.
  it('throws when, after the look at the ports, the server still does not answer as the issuer the sign-in began with', async () => {
    const other = () => new Response(JSON.stringify({ issuer: 'http://localhost:8410' }));
    await expect(bringBackIfGone(ISSUER, fetchOf(other(), other()), async () => {})).rejects.toMatchObject({ code: 'ISSUER_MISMATCH' });
  });

  // Found in review (s28new3): the look after serversGone was a bare request.
  it('looks again after the look at the ports as it looked first: a refusal brings the servers back, no answer in time is left for the browser', async () => {
    let gone = 0;
    await bringBackIfGone(ISSUER, fetchOf(new Response('busy', { status: 503 }), refused(), own()), async () => void gone++);
    expect(gone).toBe(2);
    const timedOut = Object.assign(new Error('No answer within 1500 ms.'), { name: 'TimeoutError' });
    await expect(bringBackIfGone(ISSUER, fetchOf(new Response('busy', { status: 503 }), timedOut), async () => {})).resolves.toBeUndefined();
  });

  // Found in review (s28new): the CLI's guard refused to send to another user's program on the port, and that error was
  // taken for "no answer in time": the browser was sent there with the owner's link.
  it("throws the guard's refusal of another user's program on the port, bringing nothing back", async () => {
    const foreign = Object.assign(new Error('Port 8410 on 127.0.0.1 is held by a program of another user of this machine (uid 65534)'), { code: 'FOREIGN_LISTENER' });
    let gone = 0;
    await expect(bringBackIfGone(ISSUER, fetchOf(new TypeError('fetch failed', { cause: foreign })), async () => void gone++)).rejects.toBe(foreign);
    expect(gone).toBe(0);
  });

  it('brings the servers back when the request got no answer, and asks again', async () => {
    const fetchFn = fetchOf(refused(), own());
    let gone = 0;
    await bringBackIfGone(ISSUER, fetchFn, async () => void gone++);
    expect(gone).toBe(1);
    expect(fetchFn.asked).toEqual([METADATA, METADATA]);
  });

  it('throws what stands in the way of bringing them back', async () => {
    const cannot = new Error('The delegate servers on 127.0.0.1 ports 8410… run from another data directory.');
    await expect(bringBackIfGone(ISSUER, fetchOf(refused()), () => Promise.reject(cannot))).rejects.toBe(cannot);
  });

  it('leaves a request that failed otherwise (no answer in time) for the browser to meet, bringing nothing back', async () => {
    const timedOut = Object.assign(new Error('No answer within 1500 ms.'), { name: 'TimeoutError' });
    let gone = 0;
    await expect(bringBackIfGone(ISSUER, fetchOf(timedOut), async () => void gone++)).resolves.toBeUndefined();
    expect(gone).toBe(0);
  });
});
