// find-slot goes to the agent's port without probing the servers first
// (docs/internals.md, "The embedded stack"); when what answers there is not
// delegate, it still says so, as the probe did, instead of a protocol error.
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { killLeftovers, runCli, storeSignIn } from './run.js';

let dir: string;
let foreign: Server;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-e2e-first-'));
  // Like `python3 -m http.server`: a page for GET, 501 with an HTML body for POST.
  foreign = createServer((req, res) =>
    req.method === 'POST'
      ? res.writeHead(501, { 'content-type': 'text/html' }).end('<!DOCTYPE HTML>\n<html><body><h1>Error response</h1><p>Unsupported method</p></body></html>\n')
      : res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not here</h1>'),
  );
});

/** A token cache whose access token has expired, for the servers on these ports: the next use refreshes it first. */
async function expiredSignIn(home: string, auth: number, agent: number): Promise<void> {
  const now = Date.now();
  await storeSignIn(home, { auth, agent }, { accessToken: 'expired.access.token', refreshToken: 'dlg_rt_x', expiresAt: now - 60_000, obtainedAt: now - 700_000, clientId: 'cli_abc' });
}

afterEach(async () => {
  killLeftovers();
  foreign.closeAllConnections();
  await new Promise((resolve) => foreign.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('find-slot without a probe first', () => {
  it('names the port another program holds when it is the authorization server’s and a refresh meets it, and never prints its page', { timeout: 30_000 }, async () => {
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    await new Promise<void>((resolve) => foreign.listen(auth, '127.0.0.1', resolve));
    const home = join(dir, 'home');
    await expiredSignIn(home, auth, agent);
    const ports = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
    const expected = [`delegate: Port ${auth} is used by another program, not delegate's authorization server. Choose other ports with --auth-port, --calendar-port and --agent-port.`];
    for (const args of [['find-slot', '--duration', '30m', '--json'], ['token']]) {
      const run = await runCli([...args, ...ports], home);
      expect(run.code, `${args[0]}: ${run.stderr}`).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim().split('\n'), args[0]).toEqual(expected);
    }
  });

  it('names the port another program holds', { timeout: 30_000 }, async () => {
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    await new Promise<void>((resolve) => foreign.listen(agent, '127.0.0.1', resolve));
    const run = await runCli(['find-slot', '--duration', '30m', '--json', '--no-browser', '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], join(dir, 'home'));
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toEqual([`delegate: Port ${agent} is used by another program, not delegate's CalendarAgent. Choose other ports with --auth-port, --calendar-port and --agent-port.`]);
  });
});
