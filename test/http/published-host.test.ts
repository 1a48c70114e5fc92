// The Host check (src/http/app.ts) for a server published at a URL without a port: the name alone and the name with
// its scheme's default port are one origin (RFC 9110 §4.2.3). Found in review (regress19a): behind nginx's common
// `proxy_set_header Host $host:$server_port`, a server published at https://calendar.example.com got
// `Host: calendar.example.com:443` and answered 421 to every request. Another port is still another origin.
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/http/app.js';

let app: FastifyInstance;
let port: number;

beforeAll(async () => {
  app = createApp({ publicUrl: 'https://calendar.example.com' });
  app.get('/ping', async () => ({ ok: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await app.close();
});

function statusFor(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/ping', headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a server published at https://calendar.example.com', () => {
  it.each([
    ['calendar.example.com', 200],
    ['calendar.example.com:443', 200],
    ['CALENDAR.example.com:443', 200],
    ['calendar.example.com:80', 421],
    ['calendar.example.com:8443', 421],
    ['evil.example:443', 421],
  ])('answers Host %s with %i', async (host, status) => {
    expect(await statusFor(host)).toBe(status);
  });
});
