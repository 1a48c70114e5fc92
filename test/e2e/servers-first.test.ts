// find-slot goes to the agent's port without probing the servers first
// (docs/internals.md, "The embedded stack"); when what answers there is not
// delegate, it still says so, as the probe did, instead of a protocol error.
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { killLeftovers, runCli } from './run.js';

let dir: string;
let foreign: Server;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-e2e-first-'));
  foreign = createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not here</h1>'));
});

afterEach(async () => {
  killLeftovers();
  foreign.closeAllConnections();
  await new Promise((resolve) => foreign.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('find-slot without a probe first', () => {
  it('names the port another program holds', { timeout: 30_000 }, async () => {
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    await new Promise<void>((resolve) => foreign.listen(agent, '127.0.0.1', resolve));
    const run = await runCli(['find-slot', '--duration', '30m', '--json', '--no-browser', '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], join(dir, 'home'));
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toEqual([`delegate: Port ${agent} is used by another program, not delegate's CalendarAgent. Choose other ports with --auth-port, --calendar-port and --agent-port.`]);
  });
});
