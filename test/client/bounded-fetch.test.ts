// boundedFetch's bound against a real server on a loopback port: it covers the answer's body (a body that stalls is
// cut at the bound), and it ends with the body, taking its listener off the caller's signal. Found in review (s26):
// the SDK's transport passes one signal of its own with every request, and each bound's listener stayed on it for the
// whole bound: eleven requests within it printed MaxListenersExceededWarning.
import { getEventListeners } from 'node:events';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { boundedFetch, requestTimedOut } from '../../src/client/bounded-fetch.js';

let server: Server | undefined;

afterEach(async () => {
  const running = server;
  server = undefined;
  running?.closeAllConnections();
  if (running) await new Promise((resolve) => running.close(resolve));
});

/** A server answering /whole with a JSON body, /stalled with half of one, never ended. */
async function startServer(): Promise<string> {
  server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    if (req.url === '/stalled') res.write('{"half":');
    else res.end('{"whole":true}');
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
}

describe('boundedFetch', () => {
  it('takes its listener off the caller’s signal once each body is read: a dozen requests, no MaxListenersExceededWarning', async () => {
    const base = await startServer();
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => void (warning.name === 'MaxListenersExceededWarning' && warnings.push(warning));
    process.on('warning', onWarning);
    const long = new AbortController(); // as the SDK transport's, passed with every request it sends
    const fetchFn = boundedFetch(fetch, 30_000);
    try {
      for (let i = 0; i < 12; i++) {
        const res = await fetchFn(`${base}/whole`, { signal: long.signal });
        expect(getEventListeners(long.signal, 'abort')).toHaveLength(1); // the body is still to come, and bounded
        expect(await res.json()).toEqual({ whole: true });
        expect(getEventListeners(long.signal, 'abort')).toHaveLength(0);
      }
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('still cuts a body that stalls at the bound, with the bound as the reason, and then keeps no listener', async () => {
    const base = await startServer();
    const long = new AbortController();
    const res = await boundedFetch(fetch, 300)(`${base}/stalled`, { signal: long.signal });
    const error = await res.text().catch((e: unknown) => e);
    expect(requestTimedOut(error)).toMatchObject({ ms: 300, url: `${base}/stalled` });
    expect(getEventListeners(long.signal, 'abort')).toHaveLength(0);
  });

  it('aborts as the caller’s signal does, the body included', async () => {
    const base = await startServer();
    const long = new AbortController();
    const res = await boundedFetch(fetch, 30_000)(`${base}/stalled`, { signal: long.signal });
    const reading = res.text().catch((e: unknown) => e);
    long.abort(new Error('closed'));
    expect(await reading).toMatchObject({ message: 'closed' });
  });
});

// Found in review (s26new): the answer passed on was rebuilt with the reason phrase as fetch read it (UTF-8), and
// the Response constructor refuses any character above U+00FF, so `404 Не найдено` failed the request itself
// ("Cannot convert argument to a ByteString"). RFC 9110 §15.1: a client should ignore the reason phrase's content.
describe('boundedFetch: a reason phrase beyond Latin-1', () => {
  it('passes the answer on, its status, body and reason phrase as they came', async () => {
    const raw = createNetServer((socket) => {
      socket.once('data', () => {
        const body = '{"error":"nope"}';
        socket.end(Buffer.from(`HTTP/1.1 404 Не найдено ✓\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`, 'utf8'));
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(raw.address() as AddressInfo).port}/mcp`;
      const plain = await fetch(url);
      const res = await boundedFetch(fetch, 30_000)(url);
      expect([res.status, res.statusText, await res.json()]).toEqual([404, plain.statusText, { error: 'nope' }]);
      await plain.text();
    } finally {
      await new Promise((resolve) => raw.close(resolve));
    }
  });
});
