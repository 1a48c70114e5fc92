// The load generator of the benchmarks (bench/support/http-load.ts) against
// stub servers on loopback:
// - a refresh run in which one answer never comes in time: autocannon, on its
//   timeout, counted the request twice (errors and timeouts), and the family
//   of the request with no answer came back with a token the server had
//   spent, for the next round to replay;
// - a JSON-RPC run: its "one token per connection" was one per request
//   (autocannon's context lives for one request), so a connection carried
//   several callers' tokens.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { httpLoad } from '../bench/support/http-load.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

async function listen(handle: (req: IncomingMessage, body: string) => Promise<{ status: number; body: unknown }>): Promise<string> {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      void handle(req, body).then((answer) => {
        if (res.destroyed) return;
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer.body));
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

it('a refresh whose answer times out is one error, and its family, whose token the server spent, is not handed back', async () => {
  const spent = new Set<string>();
  let requests = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const base = await listen(async (_req, body) => {
    const form = new URLSearchParams(body);
    const token = form.get('refresh_token');
    if (!token) return { status: 400, body: { error: 'invalid_request' } };
    // Rotation as the AS does it: the token is spent as the request is read, whether or not the answer is.
    if (spent.has(token)) return { status: 400, body: { error: 'invalid_grant' } };
    spent.add(token);
    const n = ++requests;
    // The third request's answer waits until the run is over: past autocannon's timeout, whatever the machine's pace.
    if (n === 3) await released;
    return { status: 200, body: { access_token: `at-${n}`, refresh_token: `${form.get('client_id')}-${n}` } };
  });
  const families = ['a', 'b', 'c', 'd'].map((clientId) => ({ clientId, refreshToken: `${clientId}-0` }));
  const result = await httpLoad({ kind: 'refresh', url: `${base}/token`, amount: 40, rotate: true, timeoutSeconds: 1, families });
  release();
  expect(result.errors).toBe(1);
  expect(result.firstError).toMatch(/no answer within 1 s/);
  expect(result.families!.length).toBeGreaterThan(0);
  expect(result.families!.filter((f) => spent.has(f.refreshToken))).toEqual([]);
}, 30_000);

it('a JSON-RPC run sends each connection one token for all its requests', async () => {
  const tokensByPort = new Map<number, Set<string>>();
  const base = await listen(async (req) => {
    const port = req.socket.remotePort!;
    if (!tokensByPort.has(port)) tokensByPort.set(port, new Set());
    tokensByPort.get(port)!.add(String(req.headers.authorization));
    return { status: 200, body: { jsonrpc: '2.0', id: 1, result: { content: [] } } };
  });
  const tokens = ['t1', 't2', 't3', 't4'];
  const result = await httpLoad({ kind: 'json-rpc', url: base, amount: 200, connections: 4, body: { jsonrpc: '2.0', id: 1, method: 'tools/list' }, tokens });
  expect([result.ok, result.errors]).toEqual([200, 0]);
  expect(tokensByPort.size).toBe(4);
  expect([...tokensByPort.values()].map((s) => s.size)).toEqual([1, 1, 1, 1]);
  expect(new Set([...tokensByPort.values()].flatMap((s) => [...s]))).toEqual(new Set(tokens.map((t) => `Bearer ${t}`)));
}, 30_000);
