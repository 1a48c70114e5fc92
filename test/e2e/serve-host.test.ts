// `delegate serve --host <address>` with an address that is not a loopback
// name (one on loopback: http URLs on any other host are refused, OAuth 2.1
// §1.5, test/cli/usage-checks.test.ts): each server answers
// for the host of the URL it publishes, so clients and the servers themselves
// reach it, while any other Host is still refused with 421 (DNS rebinding).
// 127.0.0.2 is such an address that every Linux machine has: on loopback, but
// not one of the names the Host check knows (127.0.0.1, localhost, [::1]).
// So is ::ffff:127.0.0.1 (IPv4-mapped, through a dual-stack socket), which the
// servers name as URLs write it, http://[::ffff:7f00:1]:<port> (found in
// review: it was refused as no loopback address, then published as typed and
// answered 421 there).
import { request } from 'node:http';
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import { loadOrCreateOwnerKey } from '../../src/client/owner-login.js';
import { ownerApproves, redeemCode } from '../support/owner-flow.js';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { killLeftovers, runCli, startServer, type Running } from './run.js';

let root: string | undefined;
const servers: Running[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.child.kill('SIGTERM');
    await server.done;
  }
  killLeftovers();
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

/** GET `url` with the Host header set as given (fetch would not send another Host). */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe.each([
  ['127.0.0.2', '127.0.0.2'],
  ['::ffff:127.0.0.1', '[::ffff:7f00:1]'],
])('delegate serve --host %s (an address that is not a loopback name)', (HOST, URL_HOST) => {
  const metadataPaths = (p: { auth: number; calendar: number; agent: number }) => ({
    auth: `http://${URL_HOST}:${p.auth}/.well-known/oauth-authorization-server`,
    calendar: `http://${URL_HOST}:${p.calendar}/.well-known/oauth-protected-resource`,
    agent: `http://${URL_HOST}:${p.agent}/.well-known/oauth-protected-resource/mcp`,
  });

  it('answers its own URLs, refuses a foreign Host with 421, and find_slot works through it', { timeout: 90_000 }, async () => {
    builtModule('cli/main.js');
    root = await mkdtemp(join(tmpdir(), 'delegate-serve-host-'));
    const home = join(root, 'home');
    const p = { auth: await freePort(), calendar: await freePort(), agent: await freePort() };
    servers.push(await startServer(['serve', '--host', HOST, '--auth-port', String(p.auth), '--calendar-port', String(p.calendar), '--agent-port', String(p.agent)], home));
    const issuer = `http://${URL_HOST}:${p.auth}`;
    const agentUrl = `http://${URL_HOST}:${p.agent}/mcp`;

    for (const [which, url] of Object.entries(metadataPaths(p))) {
      const own = await fetch(url);
      expect(own.status, which).toBe(200);
      // DNS rebinding: a name that resolves here, or another of our servers' hosts, is still not this server.
      const anotherServer = which === 'auth' ? p.agent : p.auth;
      for (const foreign of ['evil.example', `evil.example:${new URL(url).port}`, `${URL_HOST}:${anotherServer}`]) {
        const res = await getWithHost(url, foreign);
        expect(res.status, `${which} with Host ${foreign}`).toBe(421);
        expect(JSON.parse(res.body), which).toMatchObject({ error: 'invalid_request' });
      }
    }
    expect(await (await fetch(metadataPaths(p).agent)).json()).toMatchObject({ resource: agentUrl, authorization_servers: [issuer] });

    // The owner's delegation, then find_slot: the agent exchanges the token at the AS and reads
    // the calendar backend, and both resource servers need the AS's keys and revocation list.
    const ownerJwk = await loadOrCreateOwnerKey(join(home, 'owner-key.json'));
    const approved = await ownerApproves({ issuer, agentUrl, ownerJwk });
    const token = await redeemCode({ issuer, agentUrl, ownerJwk }, approved);
    expect(token.status).toBe(200);
    const client = new Client({ name: 'serve-host-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(agentUrl), { requestInit: { headers: { Authorization: `Bearer ${String(token.body.access_token)}` } } }));
    try {
      const result = (await client.callTool({ name: 'find_slot', arguments: { duration: '30m' } })) as CallToolResult;
      expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
      expect(result.structuredContent).toMatchObject({ found: expect.any(Boolean) });
    } finally {
      await client.close();
    }
  });

  it('each of serve-auth, serve-calendar and serve-agent answers its own URL, and only it', { timeout: 90_000 }, async () => {
    builtModule('cli/main.js');
    root = await mkdtemp(join(tmpdir(), 'delegate-serve-host-'));
    const home = join(root, 'home');
    const p = { auth: await freePort(), calendar: await freePort(), agent: await freePort() };
    const issuer = `http://${URL_HOST}:${p.auth}`;
    const calendarUrl = `http://${URL_HOST}:${p.calendar}`;
    const agentUrl = `http://${URL_HOST}:${p.agent}/mcp`;
    servers.push(await startServer(['serve-auth', '--host', HOST, '--port', String(p.auth), '--issuer', issuer, '--calendar-url', calendarUrl, '--agent-url', agentUrl], home));
    servers.push(await startServer(['serve-calendar', '--host', HOST, '--port', String(p.calendar), '--auth-url', issuer], home));
    servers.push(await startServer(['serve-agent', '--host', HOST, '--port', String(p.agent), '--auth-url', issuer, '--calendar-url', calendarUrl], home));
    for (const [which, url] of Object.entries(metadataPaths(p))) {
      expect((await fetch(url)).status, which).toBe(200);
      expect((await getWithHost(url, 'evil.example')).status, which).toBe(421);
    }
  });
});

// An address that is none of this machine's: one line saying why, exit 1, before anything is set up (the ports are
// looked at first, src/cli/servers.ts refuseUnlistenablePorts). Found in review (s29): a link-local IPv6 address
// without its interface ended with Node's "listen EINVAL: invalid argument fe80::1:43220".
describe('serve-auth on an address it cannot listen on', () => {
  const published = ['--issuer', 'https://auth.example.test', '--calendar-url', 'https://calendar.example.test', '--agent-url', 'https://agent.example.test/mcp'];
  const hasIpv6 = Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.family === 'IPv6' && a.internal));

  // fe80::1 only where the machine has IPv6 (an IPv6 loopback); without it, the address is refused otherwise.
  const cases: Array<[string, string]> = [
    ['192.0.2.1', 'no such local address.'],
    ...(hasIpv6 ? [['fe80::1', 'the system does not take it as a local address to listen on (a link-local IPv6 address needs its interface, as in fe80::1%eth0).'] as [string, string]] : []),
  ];
  it.each(cases)('%s: says why in one line, exit 1, and sets nothing up', { timeout: 30_000 }, async (host, why) => {
    root = await mkdtemp(join(tmpdir(), 'delegate-serve-host-'));
    const home = join(root, 'home');
    const run = await runCli(['serve-auth', '--host', host, '--port', String(await freePort()), ...published], home);
    expect([run.code, run.stdout, run.stderr]).toEqual([1, '', `delegate: The authorization server cannot listen on ${host}: ${why}\n`]);
    const db = new Database(join(home, 'delegate.db'), { readonly: true, fileMustExist: true });
    try {
      expect(db.prepare('SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM clients) + (SELECT COUNT(*) FROM audit_log) AS n').get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
  });
});
