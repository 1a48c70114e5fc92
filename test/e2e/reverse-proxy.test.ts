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
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
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
    // (before stop 20: "Connect an MCP client to … instead"), in this run's data directory (review regress20e), and
    // nothing is started or signed in.
    const local = await runCli(['find-slot', '--duration', '30m', '--json', '--no-browser', '--auth-port', String(ports.auth), '--calendar-port', String(ports.calendar), '--agent-port', String(ports.agent)], home);
    expect(local.code).toBe(1);
    expect(local.stdout).toBe('');
    expect(local.stderr).toBe(
      `delegate: delegate's servers on these ports are published behind an https reverse proxy (CalendarAgent at ${agentUrl}), and are reached by that URL, not by their ports: give it with --agent-url, as in \`DELEGATE_HOME=${home} delegate find-slot --duration 30m --agent-url ${agentUrl}\` (or connect an MCP client to it). To use servers on this machine's loopback instead, run this command with another data directory (DELEGATE_HOME) and other ports (--auth-port, --calendar-port, --agent-port).\n`,
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

/** A request from the local address `from` (a loopback address standing for a client elsewhere), trusting the proxies' certificate. */
function requestFrom(url: string, from: string, options: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: options.method ?? 'GET', localAddress: from, headers: options.headers, ca: certificate.cert }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A failed password sign-in (an unknown name) at `issuer`, sent from `from` with the X-Forwarded-For given, if any. */
async function failedSignIn(issuer: string, from: string, forwardedFor?: string): Promise<void> {
  const forwarded: Record<string, string> = forwardedFor !== undefined ? { 'x-forwarded-for': forwardedFor } : {};
  const form = await requestFrom(`${issuer}/login`, from, { headers: forwarded });
  const cookie = String(form.headers['set-cookie']).split(';')[0]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(form.body)![1]!;
  const body = new URLSearchParams({ csrf, next: '/grants', username: 'nobody', password: 'wrong' }).toString();
  const answer = await requestFrom(`${issuer}/login`, from, { method: 'POST', headers: { ...forwarded, cookie, 'content-type': 'application/x-www-form-urlencoded' }, body });
  expect(answer.status).toBe(400);
}

/** The addresses the audit log of `dataHome` names as the sources of failed sign-ins, in order. */
async function failedSignInSources(dataHome: string): Promise<string[]> {
  const audit = await runCli(['audit', '--json'], dataHome);
  expect(audit.code, audit.stderr).toBe(0);
  const records = JSON.parse(audit.stdout) as Array<{ event: string; detail?: { source?: string } }>;
  return records.filter((r) => r.event === 'sign_in_failed').map((r) => String(r.detail?.source));
}

// Found in review (regress20d): behind the proxy every request came from its 127.0.0.1, so every per-address limit
// (sign-in failures, registrations, new metadata-document clients, device requests) counted the whole Internet as one
// source. The test's proxy appends the client's address as nginx does; loopback addresses stand for clients elsewhere.
describe('client addresses behind an https reverse proxy on loopback', () => {
  // Named, never reached: serve-auth alone, on a data directory of its own (nothing on record to check).
  const others = ['--calendar-url', 'https://calendar.delegate.test', '--agent-url', 'https://agent.delegate.test/mcp'];

  it('serve-auth counts each client by the address the proxy appends, by default; with no proxy, X-Forwarded-For is ignored', async () => {
    const dataHome = join(root, 'forwarded-default');
    const port = await freePort();
    const proxy = await reverseProxy(port, true);
    const run = await startServer(['serve-auth', '--port', String(port), '--issuer', proxy.url, ...others], dataHome, { env: { NODE_EXTRA_CA_CERTS: certFile } });
    servers.push(run);
    await failedSignIn(proxy.url, '127.0.0.2');
    await failedSignIn(proxy.url, '127.0.0.3');
    // Before: 127.0.0.1 twice, the proxy's own address.
    expect(await failedSignInSources(dataHome)).toEqual(['127.0.0.2', '127.0.0.3']);
    expect(run.stderr()).toContain('client addresses      the last X-Forwarded-For entry its proxy appends (proxies trusted: 127.0.0.0/8, ::1)\n');

    // Published at its own http URL on loopback: no proxy, so a header naming another address (as a local process
    // could send, to escape its limits) is not believed.
    const directHome = join(root, 'forwarded-none');
    const directPort = await freePort();
    const direct = await startServer(['serve-auth', '--port', String(directPort)], directHome);
    servers.push(direct);
    expect(direct.stderr()).not.toContain('client addresses');
    await failedSignIn(`http://127.0.0.1:${directPort}`, '127.0.0.4', '198.51.100.9');
    expect(await failedSignInSources(directHome)).toEqual(['127.0.0.4']);
  }, 60_000);

  it('with --trust-proxy naming the proxy, a client naming another address in X-Forwarded-For is still counted as itself', async () => {
    const dataHome = join(root, 'forwarded-named');
    const port = await freePort();
    const proxy = await reverseProxy(port, false);
    const run = await startServer(['serve-auth', '--port', String(port), '--issuer', proxy.url, ...others, '--trust-proxy', '127.0.0.1'], dataHome, { env: { NODE_EXTRA_CA_CERTS: certFile } });
    servers.push(run);
    expect(run.stderr()).toContain('client addresses      the last X-Forwarded-For entry its proxy appends (proxies trusted: 127.0.0.1)\n');
    // The proxy appends 127.0.0.2 after the client's own entries: the rightmost address it did not add itself counts.
    await failedSignIn(proxy.url, '127.0.0.2', '198.51.100.9');
    await failedSignIn(proxy.url, '127.0.0.2', '198.51.100.9, 127.0.0.1');
    expect(await failedSignInSources(dataHome)).toEqual(['127.0.0.2', '127.0.0.2']);
  }, 60_000);
});
