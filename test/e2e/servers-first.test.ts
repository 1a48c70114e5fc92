// find-slot goes to the agent's port without probing the servers first
// (docs/internals.md, "The embedded stack"); when what answers there is not
// delegate, it still says so, as the probe did, instead of a protocol error.
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { killLeftovers, runCli } from './run.js';

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
  const issuer = `http://127.0.0.1:${auth}`;
  const resource = `http://127.0.0.1:${agent}/mcp`;
  const now = Date.now();
  await mkdir(home, { recursive: true, mode: 0o700 });
  const cache = {
    version: 1,
    discovery: { [resource]: { authorizationServerUrl: issuer, resourceMetadata: { resource, resource_name: 'CalendarAgent' } } },
    clients: { [issuer]: { client_id: 'cli_abc', issuer } },
    tokens: {
      [issuer]: {
        [resource]: {
          access_token: 'expired.access.token',
          token_type: 'Bearer',
          refresh_token: 'dlg_rt_x',
          expires_at: now - 60_000,
          refresh_expires_at: now + 86_400_000,
          issuer,
          resource,
          obtained_at: now - 700_000,
        },
      },
    },
  };
  await writeFile(join(home, 'tokens.json'), JSON.stringify(cache), { mode: 0o600 });
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
