// Another user of the machine holding delegate's ports. While no delegate
// server runs, anyone may bind the fixed loopback ports the CLI uses; a
// program of theirs that answers as delegate's servers do (their discovery
// documents are public) was handed the cached access token on the agent's
// port, and the refresh token on the authorization server's. The CLI now
// looks up who owns the listening socket before it sends anything there
// (src/http/listener-owner.ts). The squatter runs as `nobody`, so these tests
// need root (as CI runs them); elsewhere they are skipped.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NOBODY, asRoot, listenAsNobody, type ForeignListener } from '../support/foreign-listener.js';
import { freePort } from '../support/ports.js';
import { killLeftovers, runCli, startCli, startServer, storeSignIn } from './run.js';
import { Browser, authorizeUrl, pkcePair, registerPublicClient } from '../support/oauth-flow.js';

/**
 * A server run by `nobody` that answers like delegate's: the AS's metadata
 * (issuer and endpoints on its own port), the agent's protected resource
 * metadata, and every other request with a JSON 200. It prints one JSON line
 * per request it receives: method, path, authorization header and body.
 */
const SQUATTER = `
const http = require('node:http');
const [port, issuer, resource] = process.argv.slice(1);
http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    console.log(JSON.stringify({ method: req.method, path: req.url, authorization: req.headers.authorization ?? null, body }));
    const json = (v) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v));
    if (req.url.startsWith('/.well-known/oauth-authorization-server')) return json({ issuer, authorization_endpoint: issuer + '/authorize', token_endpoint: issuer + '/token', registration_endpoint: issuer + '/register', revocation_endpoint: issuer + '/revoke', response_types_supported: ['code'], code_challenge_methods_supported: ['S256'], authorization_response_iss_parameter_supported: true });
    if (req.url.startsWith('/.well-known/oauth-protected-resource')) return json({ resource, authorization_servers: [issuer], resource_name: 'CalendarAgent' });
    if (req.url === '/token') return json({ access_token: 'squatter.token.x', token_type: 'Bearer', expires_in: 600, refresh_token: 'dlg_rt_squatter' });
    json({ jsonrpc: '2.0', id: 0, result: {} });
  });
}).listen(Number(port), '127.0.0.1', () => console.log('listening'));
`;

async function squat(port: number, issuer: string, resource: string): Promise<ForeignListener> {
  const squatter = await listenAsNobody(port, SQUATTER, [issuer, resource]);
  squatters.push(squatter);
  return squatter;
}

let dir: string;
const squatters: ForeignListener[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-e2e-squat-'));
});

afterEach(async () => {
  killLeftovers();
  for (const squatter of squatters.splice(0)) squatter.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A signed-in token cache for the servers on these ports: an access token that is still good, or one that has expired (the next use refreshes). */
async function signedIn(home: string, auth: number, agent: number, access: 'good' | 'expired'): Promise<void> {
  const now = Date.now();
  await storeSignIn(home, { auth, agent }, {
    accessToken: 'eyJhbGciOiJFUzI1NiJ9.the-users-access-token.sig',
    refreshToken: 'dlg_rt_the-users-refresh-token',
    expiresAt: access === 'good' ? now + 500_000 : now - 60_000,
    obtainedAt: now - 100_000,
    clientId: 'cli_abc',
  });
}

const SECRETS = ['the-users-access-token', 'the-users-refresh-token'];

describe.skipIf(!asRoot)("another user's program on delegate's ports", () => {
  it('gets no access token when it holds the agent’s port', { timeout: 30_000 }, async () => {
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    const squatter = await squat(agent, `http://127.0.0.1:${auth}`, `http://127.0.0.1:${agent}/mcp`);
    const home = join(dir, 'home');
    await signedIn(home, auth, agent, 'good');
    const ports = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
    for (const args of [['find-slot', '--duration', '30m', '--json', '--no-browser'], ['busy', '--json', '--no-browser']]) {
      const run = await runCli([...args, ...ports], home);
      expect(run.code, `${args[0]}: ${run.stderr}`).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim()).toBe(
        `delegate: Port ${agent} on 127.0.0.1 is held by a program of another user of this machine (uid ${NOBODY}), not by delegate's servers; nothing was sent to it. ` +
          'Stop that program, or choose other ports with --auth-port, --calendar-port and --agent-port.',
      );
    }
    // Not a request, not a probe: nothing reached it.
    expect(squatter.requests()).toEqual([]);
  });

  it('gets no refresh token when it holds the authorization server’s port', { timeout: 30_000 }, async () => {
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    const squatter = await squat(auth, `http://127.0.0.1:${auth}`, `http://127.0.0.1:${agent}/mcp`);
    const home = join(dir, 'home');
    await signedIn(home, auth, agent, 'expired');
    const ports = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
    for (const args of [['find-slot', '--duration', '30m', '--json', '--no-browser'], ['token'], ['logout'], ['login', '--no-browser']]) {
      const run = await runCli([...args, ...ports], home);
      expect(run.code, `${args[0]}: ${run.stderr}`).toBe(1);
      expect(run.stderr, args[0]).toMatch(new RegExp(`[Pp]ort ${auth}( on 127\\.0\\.0\\.1)? is held by a program of another user of this machine \\(uid ${NOBODY}\\)`));
      for (const secret of SECRETS) expect(run.stdout + run.stderr).not.toContain(secret);
    }
    const seen = JSON.stringify(squatter.requests());
    for (const secret of SECRETS) expect(seen).not.toContain(secret);
    expect(squatter.requests()).toEqual([]);
  });

  // Found in review (s25docs): with the agent's port held and the AS's free, logout's servers could not start, and it
  // said only that the AS's revocation endpoint could not be reached, not why.
  it('is named by `logout` when it holds the agent’s port and the authorization server’s is free', { timeout: 30_000 }, async () => {
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    const squatter = await squat(agent, `http://127.0.0.1:${auth}`, `http://127.0.0.1:${agent}/mcp`);
    const home = join(dir, 'home');
    await signedIn(home, auth, agent, 'good');
    const run = await runCli(['logout', '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], home);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain('could not be revoked at the server');
    expect(run.stderr).toContain(`Port ${agent} on 127.0.0.1 is held by a program of another user of this machine (uid ${NOBODY})`);
    expect(run.stderr).not.toContain('cannot reach');
    for (const secret of SECRETS) expect(run.stdout + run.stderr).not.toContain(secret);
    expect(squatter.requests()).toEqual([]);
  });

  it('gives a calendar backend started alone no keys to trust when it holds the authorization server’s port', { timeout: 60_000 }, async () => {
    // serve-calendar takes the AS's signing keys from what answers at --auth-url: the squatter's own, had it been asked.
    const [auth, calendar] = [await freePort(), await freePort()];
    const squatter = await squat(auth, `http://127.0.0.1:${auth}`, `http://127.0.0.1:${calendar}`);
    const home = join(dir, 'home');
    await startServer(['serve-calendar', '--port', String(calendar), '--auth-url', `http://127.0.0.1:${auth}`], home);
    const res = await fetch(`http://127.0.0.1:${calendar}/freebusy?from=2026-12-07T00:00:00Z&to=2026-12-08T00:00:00Z`, { headers: { authorization: 'Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6InNxdWF0dGVyIn0.eyJzdWIiOiJ4In0.c2ln' } });
    // Fail closed, as when the AS is down: the token is neither accepted nor called invalid.
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error?: string }).error).toBe('temporarily_unavailable');
    expect(squatter.requests()).toEqual([]);
  });

  // Found in review (s23local): `serve` asked "Is delegate serve already running?" of another user's program, which
  // find-slot names as such; and `login --redirect-port` called the port only "in use".
  // Found in review (s28new): a browser sign-in's /start, its servers gone, sent the browser on with the owner's link to
  // this program: the guard's refusal was taken for "no answer in time", or, within 2 s of the servers' last answer,
  // the guard's note that the port was the user's let the request through. Found in review (s28new2): `delegate
  // approve`'s /start gave it the owner's link to the request, and approve said "Signed in for that request" (exit 0).
  it.each([
    ['sign-in link', 'login', async (_auth: number, _agent: number) => ['login']],
    // A request the server waits on (one it refuses is refused before any /start: found in review, s30).
    ['approval link', 'approve', async (auth: number, agent: number) => {
      const issuer = `http://127.0.0.1:${auth}`;
      const clientId = await registerPublicClient(issuer);
      return ['approve', authorizeUrl(issuer, { clientId, redirectUri: 'http://127.0.0.1/callback', resource: `http://127.0.0.1:${agent}/mcp`, state: 's', challenge: pkcePair().challenge })];
    }],
  ])('gets no owner %s when it takes the authorization server’s port before `%s`’s /start is opened', { timeout: 60_000 }, async (_link, _command, words) => {
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    const home = join(dir, 'home');
    const ports = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
    const serve = await startServer(['serve', ...ports], home);
    const [command, ...rest] = await words(auth, agent);
    const waiting = startCli([command!, '--no-browser', '--login-timeout', '60s', ...ports, ...rest], home);
    const link = await waiting.loginUrl;
    serve.child.kill('SIGTERM');
    await serve.done;
    const squatter = await squat(auth, `http://127.0.0.1:${auth}`, `http://127.0.0.1:${agent}/mcp`);
    const start = await new Browser().get(link);
    expect(start.status).toBe(500);
    expect(start.location).toBeNull();
    const run = await waiting.done;
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`Port ${auth} on 127.0.0.1 is held by a program of another user of this machine (uid ${NOBODY})`);
    expect(run.stderr).not.toContain('Gave up waiting');
    expect(squatter.requests()).toEqual([]);
  });

  it('is named as another user’s program when `serve` cannot listen on its port', { timeout: 60_000 }, async () => {
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    const ports = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
    await squat(agent, `http://127.0.0.1:${auth}`, `http://127.0.0.1:${agent}/mcp`);
    const serve = await runCli(['serve', ...ports], join(dir, 'home'));
    expect(serve.code, serve.stderr).toBe(1);
    expect(serve.stderr).toContain(`delegate: Port ${agent} on 127.0.0.1 is held by a program of another user of this machine (uid ${NOBODY}), so CalendarAgent cannot start: stop that program, or choose another port.`);
    expect(serve.stderr).not.toContain('already running');
  });

  it('is named as another user’s program when `login --redirect-port` cannot listen on its port', { timeout: 60_000 }, async () => {
    const [auth, calendar, agent, redirect] = [await freePort(), await freePort(), await freePort(), await freePort()];
    await squat(redirect, 'http://127.0.0.1:1', 'http://127.0.0.1:1/mcp');
    const login = await runCli(['login', '--no-browser', '--redirect-port', String(redirect), '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], join(dir, 'home'));
    expect(login.code, login.stderr).toBe(1);
    expect(login.stderr).toContain(`Port ${redirect} on 127.0.0.1 is held by a program of another user of this machine (uid ${NOBODY}), so the sign-in cannot listen there; choose another --redirect-port.`);
  });

  it('is told apart from the user’s own servers on the same ports (control)', { timeout: 60_000 }, async () => {
    // The same cache, the same ports, no squatter: the command starts its own servers and gets as far as asking for a sign-in.
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    const home = join(dir, 'home');
    await signedIn(home, auth, agent, 'good');
    const run = await runCli(['find-slot', '--duration', '30m', '--json', '--no-browser', '--login-timeout', '1s', '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], home);
    expect(run.stderr).not.toContain('another user');
  });
});
