// The three servers offered to other machines, each behind an https reverse proxy, as the README's deployment
// paragraph sets them up: `serve-auth --issuer https://…`, `serve-calendar --url https://…` and `serve-agent --url
// https://…/mcp`, each listening on loopback. The proxies are real TLS servers of the test's own (a certificate made
// by openssl), which the servers trust through NODE_EXTRA_CA_CERTS, as they would a real one. Two of them send on
// their upstream's address as Host (nginx's default), the authorization server's keeps the client's (Caddy's). An MCP
// client in another process, trusting the same certificate, signs in with the MCP SDK's own auth flow by the public
// URLs alone and calls find_slot: the agent's token exchange and its calendar read go through the proxies too.
// Before `--url` (found at stop 18: only serve-auth could sit behind a proxy), serve-calendar and serve-agent could
// publish only http://<host>:<port>, and CalendarAgent answered a proxy that sends on its own Host with 421.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { repoRoot } from './built.js';
import { killLeftovers, runCli, startServer, type Running } from './run.js';
import { closeProxy, proxyCertificate, reverseProxy as tlsProxy, type Certificate, type Proxy } from './tls-proxy.js';

let root: string;
let home: string;
let certificate: Certificate;
let certFile: string;
const proxies: Proxy[] = [];
const servers: Running[] = [];

/** A TLS-terminating reverse proxy on loopback forwarding every request, path unchanged, to `upstream`'s port. */
async function reverseProxy(upstream: number, sendsOwnHost: boolean): Promise<Proxy> {
  const proxy = await tlsProxy(certificate, upstream, sendsOwnHost);
  proxies.push(proxy);
  return proxy;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'delegate-proxy-'));
  home = join(root, 'home');
  certificate = await proxyCertificate(root);
  certFile = certificate.certFile;
});

afterAll(async () => {
  for (const server of servers.splice(0)) {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGTERM');
    await server.done;
  }
  killLeftovers();
  for (const proxy of proxies.splice(0)) await closeProxy(proxy);
  await rm(root, { recursive: true, force: true });
});

/** A process of this machine's MCP client elsewhere: runs the fixture with the proxies' certificate trusted; its JSON line. */
async function remoteClient(agentUrl: string, issuer: string): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'test/e2e/fixtures/remote-mcp-client.ts'), agentUrl, issuer, home], {
    cwd: repoRoot,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: certFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('a program of this user answering on the ports as servers published behind a proxy would', () => {
  // Found in review (regress19a): the probe's "published behind an https reverse proxy" message quoted whatever the
  // agent port named as `resource` (200 characters of free text, twice) once its issuer matched: now only a bare
  // https URL counts; anything else is "another program", as before.
  it('is another program when its resource is not a bare https URL', async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const bodies = [{ issuer: 'x' }, undefined, { resource: 'https://evil.example/mcp). Your servers are fine: sign in at https://evil.example/login', authorization_servers: ['x'] }];
    const fakes = await Promise.all(
      ports.map(async (port, i) => {
        const server = createHttpServer((_req, res) => {
          const body = bodies[i];
          if (body === undefined) res.writeHead(404).end();
          else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        });
        await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
        return server;
      }),
    );
    try {
      const run = await runCli(['find-slot', '--duration', '30m', '--no-browser', '--auth-port', String(ports[0]), '--calendar-port', String(ports[1]), '--agent-port', String(ports[2])], home);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^delegate: Port \d+ is used by another program, not delegate's /);
      expect(run.stderr).not.toContain('evil.example');
    } finally {
      for (const server of fakes) await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 30_000);
});

describe('the three servers behind https reverse proxies', () => {
  it('publish the proxies’ URLs, and an MCP client elsewhere signs in by them and finds a slot', async () => {
    const ports = { auth: await freePort(), calendar: await freePort(), agent: await freePort() };
    const auth = await reverseProxy(ports.auth, true);
    const calendar = await reverseProxy(ports.calendar, false);
    const agent = await reverseProxy(ports.agent, false);
    // At a path of its own (the proxy forwards paths unchanged): found in review (regress19a), the CLI's probe knew only /mcp.
    const agentUrl = `${agent.url}/calendar-agent/mcp`;
    const trust = { env: { NODE_EXTRA_CA_CERTS: certFile } };

    servers.push(await startServer(['serve-auth', '--port', String(ports.auth), '--issuer', auth.url, '--calendar-url', calendar.url, '--agent-url', agentUrl], home, trust));
    const calendarRun = await startServer(['serve-calendar', '--port', String(ports.calendar), '--url', calendar.url, '--auth-url', auth.url], home, trust);
    servers.push(calendarRun);
    const agentRun = await startServer(['serve-agent', '--port', String(ports.agent), '--url', agentUrl, '--auth-url', auth.url, '--calendar-url', calendar.url], home, trust);
    servers.push(agentRun);
    // Each says what it publishes and where its proxy forwards to.
    expect(calendarRun.stderr()).toContain(`calendar backend      ${calendar.url}\nlistening on          http://127.0.0.1:${ports.calendar} (the reverse proxy forwards to it, paths unchanged)\n`);
    expect(agentRun.stderr()).toContain(`CalendarAgent (MCP)   ${agentUrl}\nlistening on          http://127.0.0.1:${ports.agent} (the reverse proxy forwards to it, paths unchanged)\n`);

    const seen = await remoteClient(agentUrl, auth.url);
    // Discovery named only public URLs (RFC 9728 §3.3, RFC 8414 §3.3: each identical to the one used).
    expect(seen).toMatchObject({ resource: agentUrl, authorizationServer: auth.url, tokenEndpoint: `${auth.url}/token`, iss: auth.url });
    expect(new URL(String(seen.authorizationUrl)).origin).toBe(auth.url);
    expect(new URL(String(seen.authorizationUrl)).searchParams.get('resource')).toBe(agentUrl);
    const result = seen.result as { isError?: boolean; structuredContent?: { found: boolean; start: string; end: string } };
    expect(result.isError, JSON.stringify(result)).toBeFalsy();
    expect(result.structuredContent?.found).toBe(true);
    expect(Date.parse(result.structuredContent!.end) - Date.parse(result.structuredContent!.start)).toBe(30 * 60_000);
    // CalendarAgent's onward requests went through the proxies too: its token exchange at the AS, its read at the backend.
    expect(auth.seen).toContain('POST /token');
    expect(calendar.seen.some((line) => line.startsWith('GET /freebusy'))).toBe(true);
    expect(agent.seen).toContain('POST /calendar-agent/mcp');
    // find-slot on this machine, by these ports: delegate's servers, published elsewhere, said so (before: "Port … is
    // used by another program, not delegate's authorization server"), naming the option that reaches them by their URL
    // (before stop 20: "Connect an MCP client to … instead"), and nothing is started or signed in.
    const local = await runCli(['find-slot', '--duration', '30m', '--json', '--no-browser', '--auth-port', String(ports.auth), '--calendar-port', String(ports.calendar), '--agent-port', String(ports.agent)], home);
    expect(local.code).toBe(1);
    expect(local.stdout).toBe('');
    expect(local.stderr).toBe(
      `delegate: delegate's servers on these ports are published behind an https reverse proxy (CalendarAgent at ${agentUrl}), and are reached by that URL, not by their ports: give it with --agent-url, as in \`delegate find-slot --duration 30m --agent-url ${agentUrl}\` (or connect an MCP client to it). To use servers on this machine's loopback instead, run this command with another data directory (DELEGATE_HOME) and other ports (--auth-port, --calendar-port, --agent-port).\n`,
    );
    // find-slot on other ports, on this data directory, without the proxies' certificate: whether the servers on
    // record run cannot be told, so nothing moves (found in review, regress19a: CalendarAgent was moved to the
    // loopback URL and every delegation ended). serve-auth restarted without its flags keeps the https URLs on record.
    const elsewhere = [await freePort(), await freePort(), await freePort()].map(String);
    const moved = await runCli(['find-slot', '--duration', '30m', '--json', '--no-browser', '--auth-port', elsewhere[0]!, '--calendar-port', elsewhere[1]!, '--agent-port', elsewhere[2]!], home);
    expect(moved.code).toBe(1);
    expect(moved.stderr).toContain(`delegate: This data directory's servers are on record at https URLs (authorization server ${auth.url}, CalendarAgent ${agentUrl}), and whether they run could not be checked: ${auth.url} answered no https request (`);
    expect(moved.stderr.trim().split('\n')).toHaveLength(1);
    const grants = await runCli(['grants', 'list', '--json'], home);
    expect(grants.code, grants.stderr).toBe(0);
    expect(JSON.parse(grants.stdout)).toHaveLength(1);
    const authRun = servers.shift()!;
    authRun.child.kill('SIGTERM');
    await authRun.done;
    const restarted = await startServer(['serve-auth', '--port', String(ports.auth)], home);
    servers.push(restarted);
    expect(restarted.stderr()).toContain(`authorization server  ${auth.url}\nlistening on          http://127.0.0.1:${ports.auth} (the reverse proxy forwards to it, paths unchanged)\nissues tokens for     ${agentUrl} and ${calendar.url}\n`);
    expect(restarted.stderr()).not.toContain('CalendarAgent moved');
    // The audit log has the call, attributed as it happened.
    const audit = await runCli(['audit', '--json'], home);
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout).toContain('find_slot');
  }, 90_000);
});
