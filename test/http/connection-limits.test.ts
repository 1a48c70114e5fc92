// A flood of idle connections cannot take a server down (connection-limits.ts; found in review, s27web: another
// user's 20,000 idle connections exhausted the `serve` process's open files, and all three servers stopped
// answering). Real servers on loopback, with the limits set low; the flood from this process (root's, so the
// owner's) and from a process of nobody's (another user's).
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/http/app.js';
import { limitsFor } from '../../src/http/connection-limits.js';
import { eventually } from '../support/eventually.js';

const LIMITS = { max: 20, othersMax: 15 };
const FLOOD = 60;

let app: FastifyInstance | undefined;
let child: ChildProcess | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  child?.kill('SIGKILL');
  child = undefined;
  for (const socket of sockets.splice(0)) socket.destroy();
  await app?.close();
  app = undefined;
});

async function serve(options: Parameters<typeof createApp>[0]): Promise<{ port: number; open: () => Promise<number> }> {
  app = createApp(options);
  app.get('/ping', async () => ({ ok: true }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const server = app.server;
  return {
    port: (server.address() as { port: number }).port,
    open: () => new Promise((resolve, reject) => server.getConnections((err, count) => (err ? reject(err) : resolve(count)))),
  };
}

/** Opens `count` idle connections from this process; resolves once each has connected or failed. */
async function flood(port: number, count: number): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, () => {
      const socket = connect(port, '127.0.0.1');
      sockets.push(socket);
      return new Promise<void>((resolve) => {
        socket.once('connect', () => resolve());
        socket.once('error', () => resolve());
        socket.once('close', () => resolve());
      });
    }),
  );
}

describe('a flood of idle connections', () => {
  it('holds at most `max` connections however many are opened', async () => {
    const { port, open } = await serve({ connectionLimits: LIMITS });
    await flood(port, FLOOD);
    // Every connection past the limit is closed by the server: the client sees its end close.
    await eventually(() => sockets.filter((s) => !s.destroyed && s.readyState === 'open').length <= LIMITS.max, 'the connections past the limit closed');
    expect(await open()).toBeLessThanOrEqual(LIMITS.max);
  });

  it.skipIf(process.platform !== 'linux' || process.getuid?.() !== 0)('of another user leaves room for the owner: a request of ours is answered while nobody’s flood lasts', async () => {
    const { port, open } = await serve({ connectionLimits: LIMITS });
    // nobody's program: opens FLOOD connections, reopens each one the server closes (as flood3.py did), for at most 60 s.
    const script = `const net = require('net');
      const one = () => { const s = net.connect(${port}, '127.0.0.1'); s.on('error', () => {}); s.on('close', () => setTimeout(one, 5)); };
      for (let i = 0; i < ${FLOOD}; i++) one(); console.log('flooding'); setTimeout(() => process.exit(0), 60000);`;
    child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, cwd: '/', stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child!.stdout!.once('data', () => resolve()));
    await eventually(async () => (await open()) >= LIMITS.othersMax, 'nobody’s flood reached the others’ share');
    // The owner's requests, each on a fresh connection, are answered while the flood goes on.
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/ping`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
    }
    expect(await open()).toBeLessThanOrEqual(LIMITS.max);
    // nobody's connections past the share were closed: the server holds no more than it allows them, plus ours.
    await eventually(async () => (await open()) <= LIMITS.othersMax + 1, 'nobody’s connections past the others’ share closed');
  });

  it('closes a connection that sends no request within the headers timeout, with 408', async () => {
    const { port } = await serve({ connectionLimits: LIMITS, headersTimeoutMs: 300 });
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await eventually(async () => socket.destroyed, 'the idle connection closed by the server', 10_000);
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
  });
});

describe('the default limits', () => {
  it('leave most of the open-file limit to the rest of the process, within 64 and 1,024 per server, a quarter for the owner', () => {
    expect(limitsFor(20_000)).toEqual({ max: 1024, othersMax: 768 });
    expect(limitsFor(1024)).toEqual({ max: 128, othersMax: 96 });
    expect(limitsFor(256)).toEqual({ max: 64, othersMax: 48 });
    expect(limitsFor(undefined).max).toBe(1024);
  });
});
