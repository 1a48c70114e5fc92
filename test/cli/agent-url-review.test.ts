// What review regress20c found in the CLI's --agent-url support, in-process with a fake terminal and real loopback
// servers of the test's own (an authorization server's revocation endpoint, an agent that records what it is sent,
// servers on the ports that say they are published at https URLs, a TLS server with a certificate nobody trusts):
// the delegation of an agent whose metadata names a parent of its URL, DELEGATE_TOKEN for another agent, logout's
// servers, an empty fragment, the device sign-in and logout against an unreachable or untrusted deployment, and the
// advice around servers published at https URLs. And what review regress20e found in those fixes: a port that accepts
// and never answers holding find-slot for the probe's retries, status heading a delegation by the audience that
// --agent-url did not find, `token` by the ports of published servers, the advice's data directory and serve-agent
// --stdio's, and DELEGATE_TOKEN as a JWT whose audience is missing or not one.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { proxyCertificate } from '../e2e/tls-proxy.js';
import { freePort } from '../support/ports.js';
import { fakeIo } from './fake-io.js';

let home: string;
let servers: Server[];

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-agent-url-review-'));
  servers = [];
});

afterEach(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  await rm(home, { recursive: true, force: true });
});

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** An http server on 127.0.0.1 that records each request as "METHOD path body" (the Authorization header too). */
async function listen(handler: Handler, seen: string[] = []): Promise<{ port: number; seen: string[] }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${body}${req.headers.authorization ? ` auth=${req.headers.authorization}` : ''}`.trim());
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { port: (server.address() as { port: number }).port, seen };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function fakeJwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'ES256', typ: 'at+jwt' })}.${part(claims)}.c2lnbmF0dXJl`;
}

interface CachedSignIn {
  agentUrl: string;
  audience: string;
  issuer: string;
  revocationEndpoint: string;
  now: number;
}

/**
 * A token cache holding a delegation for each agent at `agentUrl` (the cache's key), whose tokens' audience is
 * `audience` (what the agent's metadata named), from `issuer`, whose revocation endpoint is cached.
 */
async function writeCache(...signIns: CachedSignIn[]): Promise<void> {
  const cache = { version: 1, discovery: {} as Record<string, unknown>, clients: {} as Record<string, unknown>, tokens: {} as Record<string, Record<string, unknown>> };
  for (const [i, at] of signIns.entries()) {
    const { agentUrl, audience, issuer } = at;
    cache.discovery[agentUrl] = {
      authorizationServerUrl: issuer,
      resourceMetadata: { resource: audience, resource_name: 'CalendarAgent', authorization_servers: [issuer] },
      authorizationServerMetadata: { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, revocation_endpoint: at.revocationEndpoint, response_types_supported: ['code'] },
    };
    cache.clients[issuer] = { client_id: 'cli_abc', issuer, redirect_uris: ['http://127.0.0.1/callback'] };
    (cache.tokens[issuer] ??= {})[agentUrl] = {
      access_token: fakeJwt({ sub: 'usr_alice', client_id: 'cli_abc', grant_id: `grt_${i + 1}`, scope: 'slots:find', aud: audience }),
      token_type: 'Bearer',
      refresh_token: 'dlg_rt_secret',
      scope: 'slots:find',
      expires_at: at.now + 3_600_000,
      refresh_expires_at: at.now + 86_400_000,
      issuer,
      resource: audience,
      obtained_at: at.now,
    };
  }
  await writeFile(join(home, 'tokens.json'), JSON.stringify(cache), { mode: 0o600 });
}

/** An authorization server's revocation endpoint on loopback, answering 200 (RFC 7009 §2.2). */
async function revocationServer(): Promise<{ endpoint: string; seen: string[] }> {
  const { port, seen } = await listen((_req, res) => json(res, 200, {}));
  return { endpoint: `http://127.0.0.1:${port}/revoke`, seen };
}

describe('an agent whose protected resource metadata names a parent of its URL (review regress20c, 1)', () => {
  const agentUrl = 'https://agent.delegate.test:9443/mcp';
  const audience = 'https://agent.delegate.test:9443';
  const issuer = 'https://auth.delegate.test:9443';

  it('status --agent-url shows its delegation, selected by the URL signed in at, not the audience', async () => {
    const io = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    await writeCache({ agentUrl, audience, issuer, revocationEndpoint: `${issuer}/revoke`, now: io.now() });
    expect(await runCli(['status', '--agent-url', agentUrl], io), io.err).toBe(0);
    expect(io.out).toMatch(/signed in as\s+usr_alice/);
    const json = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', '--json', '--agent-url', agentUrl], json)).toBe(0);
    expect(JSON.parse(json.out).delegations).toHaveLength(1);
    // Another agent on that origin is not this one.
    const other = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', '--agent-url', `${audience}/other/mcp`], other)).toBe(4);
  });

  // Review regress20e, 2: status headed it by its audience, which --agent-url then did not find (exit 4, "Not signed in").
  it('status heads it by the URL signed in at, with the audience on its own line and agentUrl in --json', async () => {
    const io = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    await writeCache({ agentUrl, audience, issuer, revocationEndpoint: `${issuer}/revoke`, now: io.now() });
    expect(await runCli(['status'], io), io.err).toBe(0);
    expect(io.out).toContain(`\nCalendarAgent at ${agentUrl}\n  audience          ${audience}\n  signed in as      usr_alice at ${issuer}\n`);
    const json = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', '--json'], json)).toBe(0);
    expect(JSON.parse(json.out).delegations[0]).toMatchObject({ agentUrl, resource: audience, issuer });
    // An agent whose metadata names its own URL has no audience line.
    await writeCache({ agentUrl, audience: agentUrl, issuer, revocationEndpoint: `${issuer}/revoke`, now: io.now() });
    const same = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    expect(await runCli(['status'], same)).toBe(0);
    expect(same.out).toContain(`\nCalendarAgent at ${agentUrl}\n  signed in as      usr_alice at ${issuer}\n`);
  });

  // Noticed by the regress20e fixes: plain status advised `delegate login` by this machine's ports for it.
  it('plain status advises signing in again at the deployment’s URL for a delegation made there whose sign-in ended', async () => {
    const io = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    // Obtained two days ago: the access token and the sign-in (a day) have both ended.
    await writeCache({ agentUrl, audience, issuer, revocationEndpoint: `${issuer}/revoke`, now: io.now() - 2 * 86_400_000 });
    expect(await runCli(['status'], io), io.err).toBe(4);
    expect(io.out).toContain(`sign in again with \`DELEGATE_HOME=${home} delegate login --agent-url ${agentUrl}\``);
    expect(io.out).not.toMatch(/delegate login`|--auth-port/);
  });

  it('status and logout --agent-url also find it by its audience, when one delegation alone is for it', async () => {
    const revocation = await revocationServer();
    const now = fakeIo().now();
    await writeCache({ agentUrl, audience, issuer, revocationEndpoint: revocation.endpoint, now });
    const status = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    expect(await runCli(['status', '--agent-url', audience], status), status.err).toBe(0);
    expect(status.out).toContain(`CalendarAgent at ${agentUrl}\n`);
    const logout = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['logout', '--agent-url', audience], logout), logout.err).toBe(0);
    expect(logout.err).toContain(`Revoked the delegation for ${agentUrl} at ${issuer}.\nForgot the sign-in for ${agentUrl} in `);
    expect(revocation.seen.filter((line) => line.startsWith('POST /revoke'))).toHaveLength(2);
    // Two delegations for that audience: which one is meant cannot be told.
    await writeCache(
      { agentUrl, audience, issuer, revocationEndpoint: revocation.endpoint, now },
      { agentUrl: `${audience}/other/mcp`, audience, issuer, revocationEndpoint: revocation.endpoint, now },
    );
    for (const command of ['status', 'logout']) {
      const io = fakeIo({ DELEGATE_HOME: home });
      expect(await runCli([command, '--agent-url', audience], io), command).toBe(2);
      expect(io.err).toBe(
        `delegate: --agent-url ${audience} is the audience of 2 stored delegations, signed in at ${agentUrl} and ${audience}/other/mcp: give the URL of the one you mean.\n`,
      );
    }
    expect(revocation.seen.filter((line) => line.startsWith('POST /revoke'))).toHaveLength(2);
  });

  it('logout --agent-url revokes it at its authorization server and forgets it', async () => {
    const revocation = await revocationServer();
    const io = fakeIo({ DELEGATE_HOME: home });
    await writeCache({ agentUrl, audience, issuer, revocationEndpoint: revocation.endpoint, now: io.now() });
    expect(await runCli(['logout', '--agent-url', agentUrl], io), io.err).toBe(0);
    expect(io.err).toContain(`Revoked the delegation for ${agentUrl} at ${issuer}.`);
    expect(revocation.seen.filter((line) => line.startsWith('POST /revoke'))).toHaveLength(2);
    const left = JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8'));
    expect(JSON.stringify(left.tokens)).not.toContain('dlg_rt_secret');
  });

  // Delegate's access token names its grant, and its revocation ends it (src/authz/revoke.ts); an opaque one of another
  // server may end alone, which logout says.
  it('logout --agent-url with no refresh token and an opaque access token revokes it and says the delegation may stand, exit 1', async () => {
    const revocation = await revocationServer();
    const io = fakeIo({ DELEGATE_HOME: home });
    await writeCache({ agentUrl, audience, issuer, revocationEndpoint: revocation.endpoint, now: io.now() });
    const file = join(home, 'tokens.json');
    const cache = JSON.parse(await readFile(file, 'utf8')) as { tokens: Record<string, Record<string, { access_token: string; refresh_token?: string }>> };
    const entry = cache.tokens[issuer]![agentUrl]!;
    entry.access_token = 'an-opaque-access-token';
    delete entry.refresh_token;
    await writeFile(file, JSON.stringify(cache), { mode: 0o600 });
    expect(await runCli(['logout', '--agent-url', agentUrl], io)).toBe(1);
    expect(io.err).toContain(`Revoked the access token for ${agentUrl} at ${issuer}.`);
    expect(io.err).toContain(`delegate: No refresh token was stored, and the access token does not name its delegation, so the delegation itself may stand at the server for ${agentUrl}.`);
    expect(revocation.seen.filter((line) => line.startsWith('POST /revoke'))).toHaveLength(1);
  });
});

describe('DELEGATE_TOKEN for another agent than --agent-url names (review regress20c, 2)', () => {
  it('is refused before anything is sent: one line naming both, exit 4; token does not print it', async () => {
    const agent = await listen((_req, res) => json(res, 401, { error: 'invalid_token' }));
    const agentUrl = `http://127.0.0.1:${agent.port}/mcp`;
    const forA = fakeJwt({ sub: 'usr_alice', aud: 'https://agent-a.delegate.test/mcp', scope: 'slots:find', exp: 4_000_000_000 });
    for (const args of [['find-slot', '--duration', '30m'], ['busy'], ['token']]) {
      const io = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: forA });
      expect(await runCli([...args, '--agent-url', agentUrl], io), args[0]).toBe(4);
      expect(io.out).toBe('');
      expect(io.err).toBe(
        `delegate: DELEGATE_TOKEN is for https://agent-a.delegate.test/mcp, not for CalendarAgent at ${agentUrl}; it was not sent. Unset it, or set a token for ${agentUrl}.\n`,
      );
      expect(io.err).not.toContain(forA);
    }
    // As DELEGATE_AGENT_URL too.
    const viaEnv = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: forA, DELEGATE_AGENT_URL: agentUrl });
    expect(await runCli(['token'], viaEnv)).toBe(4);
    expect(agent.seen).toEqual([]);
  });

  it('is used for the agent its audience names (or a parent of its URL, as metadata may name), and an opaque one as before', async () => {
    const agentUrl = 'https://agent.delegate.test/calendar/mcp';
    for (const token of [
      fakeJwt({ aud: agentUrl }),
      fakeJwt({ aud: ['https://other.delegate.test/mcp', 'https://AGENT.delegate.test:443/calendar/mcp'] }),
      fakeJwt({ aud: 'https://agent.delegate.test' }),
      fakeJwt({ aud: 'https://agent.delegate.test/calendar' }),
      'opaque-token-value',
    ]) {
      const io = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: token });
      expect(await runCli(['token', '--agent-url', agentUrl], io), token).toBe(0);
      expect(io.out).toBe(`${token}\n`);
    }
    for (const aud of ['https://agent.delegate.test/cal', 'https://agent.delegate.test/calendar/mcp/x', 'http://agent.delegate.test/calendar/mcp']) {
      const io = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: fakeJwt({ aud }) });
      expect(await runCli(['token', '--agent-url', agentUrl], io), aud).toBe(4);
    }
  });
});

describe('DELEGATE_TOKEN as a JWT whose audience is missing or not one (review regress20e, 5)', () => {
  it('is refused before anything is sent: one line, exit 4; an empty list is an audience of none', async () => {
    const agent = await listen((_req, res) => json(res, 401, { error: 'invalid_token' }));
    const agentUrl = `http://127.0.0.1:${agent.port}/mcp`;
    const cannotTell = 'so it cannot be told to be for CalendarAgent at';
    for (const [claims, said] of [
      [{ sub: 'usr_alice' }, `DELEGATE_TOKEN is a JWT that names no audience (it has no \`aud\` claim), ${cannotTell}`],
      [{ aud: 5 }, `its \`aud\` claim is neither a string nor an array of strings, RFC 7519 §4.1.3), ${cannotTell}`],
      [{ aud: null }, cannotTell],
      [{ aud: { url: agentUrl } }, cannotTell],
      [{ aud: [agentUrl, 5] }, cannotTell],
      [{ aud: [] }, 'DELEGATE_TOKEN is a JWT for no audience (its `aud` claim is an empty list), not for CalendarAgent at'],
    ] as const) {
      const token = fakeJwt(claims);
      for (const args of [['find-slot', '--duration', '30m'], ['token']]) {
        const io = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: token });
        expect(await runCli([...args, '--agent-url', agentUrl], io), `${args[0]} ${JSON.stringify(claims)}`).toBe(4);
        expect(io.out).toBe('');
        expect(io.err).toContain(said);
        expect(io.err).toMatch(new RegExp(`^delegate: .* ${agentUrl}; it was not sent\\. Unset it, or set a token for ${agentUrl}\\.\\n$`));
      }
    }
    expect(agent.seen).toEqual([]);
    // Not a JWT (its parts are no JSON objects): nothing can be told of it, and it is used as before.
    for (const token of ['e30.bm90IGpzb24.c2ln', 'W10.e30.c2ln', 'a.b.c.d.e']) {
      const io = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: token });
      expect(await runCli(['token', '--agent-url', agentUrl], io), token).toBe(0);
      expect(io.out).toBe(`${token}\n`);
    }
  });
});

describe('plain logout and servers on its ports (review regress20c, 4)', () => {
  it('starts nothing on its ports for a delegation from another authorization server on loopback', async () => {
    const revocation = await revocationServer();
    const issuer = revocation.endpoint.replace(/\/revoke$/, '');
    const io = fakeIo({ DELEGATE_HOME: home });
    await writeCache({ agentUrl: 'http://127.0.0.1:9/mcp', audience: 'http://127.0.0.1:9/mcp', issuer, revocationEndpoint: revocation.endpoint, now: io.now() });
    const ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
    expect(await runCli(['logout', ...ports], io), io.err).toBe(0);
    expect(revocation.seen.filter((line) => line.startsWith('POST /revoke'))).toHaveLength(2);
    // No server was set up here: no store, no owner or agent key in the data directory.
    expect(await readdir(home)).toEqual([]);
  }, 30_000);
});

describe('an empty fragment (review regress20c, 5)', () => {
  it('is refused in --agent-url and DELEGATE_AGENT_URL: exit 2', async () => {
    const flag = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['token', '--agent-url', 'https://agent.delegate.test/mcp#'], flag)).toBe(2);
    expect(flag.err).toContain('may not carry a fragment');
    const env = fakeIo({ DELEGATE_HOME: home, DELEGATE_AGENT_URL: 'https://agent.delegate.test/mcp#' });
    expect(await runCli(['status'], env)).toBe(2);
    expect(env.err).toMatch(/^delegate: DELEGATE_AGENT_URL: .*fragment/);
  });
});

/** A TLS server on 127.0.0.1 with a self-signed certificate for localhost, which this process does not trust. */
async function untrustedServer(): Promise<{ url: string; seen: string[] }> {
  const certificate = await proxyCertificate(home);
  const seen: string[] = [];
  const server = createHttpsServer({ key: certificate.key, cert: certificate.cert }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    json(res, 404, {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server as unknown as Server);
  return { url: `https://localhost:${(server.address() as { port: number }).port}`, seen };
}

describe('a deployment that cannot be reached (review regress20c, 6 and 7)', () => {
  it('login --device says what the browser sign-in says: connection refused, or the certificate and NODE_EXTRA_CA_CERTS', async () => {
    const down = `http://127.0.0.1:${await freePort()}/mcp`;
    const untrusted = `${(await untrustedServer()).url}/mcp`;
    for (const agentUrl of [down, untrusted]) {
      const device = fakeIo({ DELEGATE_HOME: home });
      expect(await runCli(['login', '--device', '--agent-url', agentUrl], device), agentUrl).toBe(1);
      expect(device.err).not.toContain('publishes no metadata');
      const browser = fakeIo({ DELEGATE_HOME: home });
      expect(await runCli(['login', '--no-browser', '--agent-url', agentUrl, '--login-timeout', '5s'], browser)).toBe(1);
      expect(device.err).toBe(browser.err);
    }
    const device = fakeIo({ DELEGATE_HOME: home });
    await runCli(['login', '--device', '--agent-url', down], device);
    expect(device.err).toBe(`delegate: Cannot reach ${down} or its authorization server (ECONNREFUSED).\n`);
    await runCli(['login', '--device', '--agent-url', untrusted], (device.err = '', device));
    expect(device.err).toMatch(/not trusted here \(DEPTH_ZERO_SELF_SIGNED_CERT\)\. With a private CA, give its certificate in NODE_EXTRA_CA_CERTS\.\n$/);
  }, 30_000);

  it('logout --agent-url names the certificate its authorization server presented, and NODE_EXTRA_CA_CERTS', async () => {
    const deployment = await untrustedServer();
    const agentUrl = `${deployment.url}/mcp`;
    const io = fakeIo({ DELEGATE_HOME: home });
    await writeCache({ agentUrl, audience: agentUrl, issuer: deployment.url, revocationEndpoint: `${deployment.url}/revoke`, now: io.now() });
    expect(await runCli(['logout', '--agent-url', agentUrl], io)).toBe(1);
    expect(io.err).toContain(
      `could not be revoked at the server for ${agentUrl} (cannot reach ${deployment.url}/revoke: its https certificate is not trusted here (DEPTH_ZERO_SELF_SIGNED_CERT); with a private CA, give its certificate in NODE_EXTRA_CA_CERTS)`,
    );
    expect(deployment.seen).toEqual([]);
  }, 30_000);
});

/** Listeners on three ports of 127.0.0.1 that accept connections and never answer; closed after the test. */
async function silentPorts(): Promise<string[]> {
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    const sockets: Socket[] = [];
    const server = createNetServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    silent.push({ server, sockets });
    ports.push((server.address() as { port: number }).port);
  }
  return ['--auth-port', String(ports[0]), '--calendar-port', String(ports[1]), '--agent-port', String(ports[2])];
}

const silent: Array<{ server: NetServer; sockets: Socket[] }> = [];

afterEach(async () => {
  for (const { server, sockets } of silent.splice(0)) {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

// Review regress20e, 1: the look for published servers after an exit 4 ran the probe's 1.5 + 4 + 8 s ladder on each
// silent port: find-slot waited 13.5 s to say what it knew at once.
describe('ports that accept connections and never answer, where nobody can sign in', () => {
  it('find-slot, busy and token stop with exit 4 without waiting for them', async () => {
    const ports = await silentPorts();
    for (const args of [['find-slot', '--duration', '30m'], ['busy'], ['token']]) {
      const io = fakeIo({ DELEGATE_HOME: home });
      const started = Date.now();
      expect(await runCli([...args, ...ports], io), args[0]).toBe(4);
      // A generous bound, not a benchmark: one short look at two ports, where the ladder alone took 13.5 s.
      expect(Date.now() - started, args[0]).toBeLessThan(3_000);
      // What it says at once: a sign-in by these ports, on one line.
      expect(io.err).toContain(` ${ports.join(' ')}\``);
      expect(io.err.trim().split('\n'), io.err).toHaveLength(1);
    }
  }, 60_000);
});

describe('servers published at https URLs, reached by their ports (review regress20c, 8)', () => {
  /** Servers on three ports that say they are delegate's, published behind an https reverse proxy. */
  async function publishedServers(): Promise<string[]> {
    const issuer = 'https://auth.delegate.test';
    const auth = await listen((req, res) => (req.url?.startsWith('/.well-known/') ? json(res, 200, { issuer }) : json(res, 404, {})));
    const calendar = await listen((_req, res) => json(res, 200, { resource: 'https://calendar.delegate.test', authorization_servers: [issuer] }));
    const agent = await listen((req, res) =>
      req.url?.startsWith('/.well-known/') ? json(res, 200, { resource: 'https://agent.delegate.test/mcp', authorization_servers: [issuer] }) : json(res, 404, {}),
    );
    return ['--auth-port', String(auth.port), '--calendar-port', String(calendar.port), '--agent-port', String(agent.port)];
  }
  const advice = (line: string) =>
    `delegate: delegate's servers on these ports are published behind an https reverse proxy (CalendarAgent at https://agent.delegate.test/mcp), and are reached by that URL, not by their ports: give it with --agent-url, as in \`${line}\` (or connect an MCP client to it). To use servers on this machine's loopback instead, run this command with another data directory (DELEGATE_HOME) and other ports (--auth-port, --calendar-port, --agent-port).\n`;

  it('find-slot and busy with nobody to sign in stop with exit 1 naming --agent-url in the command run, not exit 4 and a login by these ports', async () => {
    const ports = await publishedServers();
    const findSlot = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['find-slot', '--duration', '45m', '--json', ...ports], findSlot)).toBe(1);
    expect(findSlot.err).toBe(advice(`DELEGATE_HOME=${home} delegate find-slot --duration 45m --agent-url https://agent.delegate.test/mcp`));
    const busy = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['--profile', 'work', 'busy', ...ports], busy)).toBe(1);
    expect(busy.err).toBe(advice(`DELEGATE_HOME=${home} delegate busy --agent-url https://agent.delegate.test/mcp --profile work`));
    const login = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['login', '--device', ...ports], login)).toBe(1);
    expect(login.err).toBe(advice(`DELEGATE_HOME=${home} delegate login --device --agent-url https://agent.delegate.test/mcp`));
  }, 30_000);

  // Review regress20e, 4: the line named neither DELEGATE_HOME nor the XDG directories this run used, so typed in
  // another shell it signed in to another data directory.
  it('the advised line carries the data directory as other advice does: DELEGATE_HOME, or the XDG directories, and DELEGATE_PROFILE', async () => {
    const ports = await publishedServers();
    const xdg = { HOME: home, XDG_DATA_HOME: join(home, 'data dir'), XDG_CONFIG_HOME: join(home, 'config'), DELEGATE_PROFILE: 'work' };
    const io = fakeIo(xdg);
    expect(await runCli(['find-slot', '--duration', '30m', ...ports], io)).toBe(1);
    expect(io.err).toBe(
      advice(`XDG_DATA_HOME='${home}/data dir' XDG_CONFIG_HOME=${home}/config delegate find-slot --duration 30m --agent-url https://agent.delegate.test/mcp --profile work`),
    );
  }, 30_000);

  // Review regress20e, 4: serve-agent --stdio was told `delegate find-slot --duration 30m --agent-url …`, an option it
  // does not take, for a command nobody ran.
  it('serve-agent --stdio, which takes no --agent-url, is told to connect the MCP client to that URL', async () => {
    const ports = await publishedServers();
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['serve-agent', '--stdio', ...ports], io)).toBe(1);
    expect(io.err).toBe(
      "delegate: delegate's servers on these ports are published behind an https reverse proxy (CalendarAgent at https://agent.delegate.test/mcp), and are reached by that URL, not by their ports. This command finds servers by their ports only (it takes no --agent-url): connect your MCP client to https://agent.delegate.test/mcp itself, which signs in there. To use servers on this machine's loopback instead, run this command with another data directory (DELEGATE_HOME) and other ports (--auth-port, --calendar-port, --agent-port).\n",
    );
    expect(io.out).toBe('');
  }, 30_000);

  // Review regress20e, 3: token said nothing was stored (exit 4) and advised `delegate login --auth-port …`, which stops
  // with exit 1 naming --agent-url.
  it('token with nothing stored names --agent-url too, not a login by these ports', async () => {
    const ports = await publishedServers();
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['token', ...ports], io)).toBe(1);
    expect(io.err).toBe(advice(`DELEGATE_HOME=${home} delegate token --agent-url https://agent.delegate.test/mcp`));
    expect(io.out).toBe('');
  }, 30_000);

  // Review regress20g, 3: plain status with nothing stored advised `delegate login`, which stops there with exit 1.
  it('status with nothing stored advises a login by --agent-url, with the data directory as token advises it', async () => {
    const ports = await publishedServers();
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', ...ports], io)).toBe(4);
    expect(io.out).toContain(`Not signed in: no delegation is stored. Run \`DELEGATE_HOME=${home} delegate login --agent-url https://agent.delegate.test/mcp\`.\n`);
  }, 30_000);

  // Review regress20g, 1: mcp-config printed `serve-agent --stdio`, which stops there, and the loopback URL, whose
  // metadata names the https one (an MCP client refuses it: RFC 9728 §3.3).
  it('mcp-config gives the published URL as the remote entry, and no stdio entry, saying why', async () => {
    const ports = await publishedServers();
    const why = /^No stdio entry: delegate's servers on these ports are published behind an https reverse proxy \(CalendarAgent at https:\/\/agent\.delegate\.test\/mcp\), where `delegate serve-agent --stdio` stops/;
    const json = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['mcp-config', ...ports], json)).toBe(0);
    expect(JSON.parse(json.out)).toEqual({ mcpServers: { 'calendar-agent-http': { type: 'http', url: 'https://agent.delegate.test/mcp' } } });
    expect(json.err).toMatch(why);
    const code = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['mcp-config', '--client', 'claude-code', ...ports], code)).toBe(0);
    expect(code.out).not.toContain('--stdio');
    expect(code.out).toContain('claude mcp add --transport http calendar-agent-http https://agent.delegate.test/mcp\n');
    const desktop = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['mcp-config', '--client', 'claude-desktop', ...ports], desktop)).toBe(0);
    expect(desktop.out).toBe('');
    expect(desktop.err).toContain('add https://agent.delegate.test/mcp as a custom connector');
  }, 30_000);

  // Review regress20g, 4: the SDK's "Protected resource https://agent…/mcp does not match expected http://127.0.0.1:…/mcp
  // (or origin)" was all find-slot said. The mismatch is still refused (RFC 9728 §3.3), and said so the person can act.
  it('find-slot --agent-url at the loopback port of an agent published at https names the URL to pass instead, exit 1', async () => {
    const agent = await listen((req, res) => {
      const { port } = req.socket.address() as { port: number };
      if (req.url?.startsWith('/.well-known/')) return json(res, 200, { resource: 'https://agent.delegate.test/mcp', authorization_servers: ['https://auth.delegate.test'] });
      res.writeHead(401, { 'www-authenticate': `Bearer resource_metadata="http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp"` }).end();
    });
    const io = fakeIo({ DELEGATE_HOME: home });
    const agentUrl = `http://127.0.0.1:${agent.port}/mcp`;
    expect(await runCli(['find-slot', '--duration', '30m', '--no-browser', '--agent-url', agentUrl], io)).toBe(1);
    expect(io.err).toBe(`delegate: The agent at ${agentUrl} says it is published at https://agent.delegate.test/mcp, and is reached by that URL only (RFC 9728 §3.3): pass --agent-url https://agent.delegate.test/mcp.\n`);
  }, 30_000);

  it('--redirect-port with --agent-url is not compared with ports no server of this machine uses', async () => {
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['busy', '--agent-url', 'https://agent.delegate.test/mcp', '--redirect-port', '8412'], io)).toBe(4);
    expect(io.err).not.toContain('--redirect-port and --agent-port');
    const ports = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['busy', '--redirect-port', '8412'], ports)).toBe(2);
    expect(ports.err).toContain('--redirect-port and --agent-port are both 8412');
  });
});
