// `delegate serve` started while another delegate command runs this data
// directory's servers in its own process (a `login` waiting for its approval,
// as a `find-slot` does): the ports are taken, and the line says by whom.
// Found in review (s26race): it asked "Is delegate serve already running?",
// which it was not. On ports some other program of this user holds, the
// question stays.
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { killLeftovers, runCli, startCli } from './run.js';

const homes: string[] = [];
afterAll(async () => {
  killLeftovers();
  for (const home of homes) await rm(home, { recursive: true, force: true });
});

async function newHome(): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'delegate-serve-while-served-'));
  homes.push(home);
  return home;
}

describe('delegate serve on ports already taken', () => {
  it("by this data directory's servers, run by a command that started them for itself: says so, exit 1", { timeout: 60_000 }, async () => {
    const home = await newHome();
    const ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
    const waiting = startCli(['login', '--no-browser', ...ports], home);
    await waiting.loginUrl; // its servers answer: it printed where to sign in
    const serve = await runCli(['serve', ...ports], home);
    expect([serve.code, serve.stdout]).toEqual([1, '']);
    expect(serve.stderr).toBe(
      `delegate: Port ${ports[1]} is already in use by this data directory's servers, so the authorization server cannot start: they run in another delegate process (a \`delegate serve\`, or a command such as find-slot or login that runs them while it lasts). Use those, run this again once they have stopped, or choose other ports.\n`,
    );
    // serve-auth alone, on the authorization server's port, says the same (found in review, s26new3: it still asked).
    const auth = await runCli(['serve-auth', '--port', ports[1]!], home);
    expect([auth.code, auth.stderr]).toEqual([1, serve.stderr]);
    waiting.child.kill('SIGTERM');
    await waiting.done;
  });

  // Found in review (s26): undici's fetch left no handle while it failed a connection the peer reset at once, so a
  // command waiting only on that probe ended with Node's exit code 13 (an unsettled top-level await), saying nothing.
  it('by another program of this user that drops every connection: find-slot and serve each say so in one line, exit 1', { timeout: 60_000 }, async () => {
    const home = await newHome();
    const squatter: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    try {
      const port = String((squatter.address() as { port: number }).port);
      const ports = ['--auth-port', port, '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
      const slot = await runCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
      expect([slot.code, slot.stdout, slot.stderr]).toEqual([1, '', `delegate: The authorization server on port ${port} accepts connections but does not answer.\n`]);
      const serve = await runCli(['serve', ...ports], home);
      expect([serve.code, serve.stderr]).toEqual([1, `delegate: Port ${port} is already in use, so the authorization server cannot start. Is delegate serve already running?\n`]);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it('by another program of this user that holds connections without answering: the question as before', { timeout: 60_000 }, async () => {
    const home = await newHome();
    const held: Socket[] = [];
    const squatter: Server = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    try {
      const port = String((squatter.address() as { port: number }).port);
      const serve = await runCli(['serve', '--auth-port', port, '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())], home);
      expect([serve.code, serve.stderr]).toEqual([1, `delegate: Port ${port} is already in use, so the authorization server cannot start. Is delegate serve already running?\n`]);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => squatter.close(resolve));
    }
  });
});
