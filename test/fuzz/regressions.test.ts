// What the fuzz tests found in the shared fastify plumbing (src/http/app.ts),
// kept as fixed examples: requests refused before any route or hook runs
// still get an RFC 6749 §5.2-style body, `no-store`, and no echo of the
// request. Before the fix, a malformed percent-encoding in the path got
// fastify's own body ({"error":"Bad Request","code":"FST_ERR_BAD_URL",
// "message":"'/%' is not a valid url component"}) and headers over 16 KiB got
// {"error":"Request Header Fields Too Large",…}.
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/http/app.js';

let app: FastifyInstance;
let origin: string;

beforeAll(async () => {
  app = createApp();
  app.get('/things/:id', async () => ({ ok: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app.close();
});

describe('requests refused before routing', () => {
  it.each(['/%', '/things/%zz', '/%E0%A4%A'])('a malformed path %s: 400 invalid_request, with a request id, not echoed', async (path) => {
    const res = await fetch(`${origin}${path}`);
    expect(res.status).toBe(400);
    expect(res.headers.get('cache-control')).toMatch(/no-store/);
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: 'invalid_request', error_description: 'The request URL is malformed.' });
    expect(text).not.toContain(path);
  });

  it('headers over 16 KiB: 431 invalid_request', async () => {
    const res = await fetch(`${origin}/things/1?q=${'x'.repeat(20_000)}`);
    expect(res.status).toBe(431);
    expect(res.headers.get('cache-control')).toMatch(/no-store/);
    expect(await res.json()).toEqual({ error: 'invalid_request', error_description: 'The request headers are too large.' });
  });

  it('a request line that does not parse: 400 invalid_request', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect((app.server.address() as AddressInfo).port, '127.0.0.1', () => socket.write('GARBAGE\r\n\r\n'));
      let text = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('{"error":"invalid_request","error_description":"The request is malformed."}');
  });
});
