// `delegate serve --log-level …` as a user runs it (the built CLI): at debug
// its stderr carries JSON lines with a reqId for each request and none of the
// credentials the requests carried, in headers, query strings or bodies; at
// warn (serve-auth here) the per-request lines are gone. Neither prints a
// Node process warning.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { killLeftovers, startServer, type Running } from './run.js';

const BEARER = 'eyJhbGciOiJFUzI1NiJ9.bearer-value-never-logged.c2ln';
const CODE = 'code-value-never-logged-0123456789';
const ASSERTION = 'assertion-value-never-logged-abcdef';
const VERIFIER = 'verifier-value-never-logged-zyxwvu';
/** How Node prints a process warning or deprecation: `(node:1234) [CODE] Name: message`. */
const NODE_WARNING = /^\(node:\d+\) /m;

let root: string | undefined;
afterEach(async () => {
  killLeftovers();
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

async function serveWith(level: string): Promise<{ serve: Running; issuer: string; agentUrl: string }> {
  root = await mkdtemp(join(tmpdir(), 'delegate-serve-logs-'));
  const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
  const serve = await startServer(['serve', '--log-level', level, '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], join(root, 'home'));
  return { serve, issuer: `http://127.0.0.1:${auth}`, agentUrl: `http://127.0.0.1:${agent}/mcp` };
}

/** Requests that carry secrets every way a request can. */
async function secretBearingRequests(issuer: string, agentUrl: string): Promise<void> {
  await fetch(`${agentUrl}`, { method: 'POST', headers: { authorization: `Bearer ${BEARER}`, 'content-type': 'application/json' }, body: '{}' });
  await fetch(`${issuer}/login/owner?assertion=${ASSERTION}&next=%2Fauthorize`);
  await fetch(`${issuer}/authorize?code=${CODE}&client_id=x`, { headers: { cookie: `session=${BEARER}` } });
  await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'e2e-request-1' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: CODE, code_verifier: VERIFIER, client_id: 'nobody' }),
  });
}

async function stop(serve: Running): Promise<string> {
  serve.child.kill('SIGTERM');
  const run = await serve.done;
  return run.stderr;
}

describe('delegate serve --log-level', () => {
  it('debug: JSON lines with a reqId per request, and no credential', async () => {
    const { serve, issuer, agentUrl } = await serveWith('debug');
    await secretBearingRequests(issuer, agentUrl);
    const stderr = await stop(serve);
    const lines = stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { reqId?: string; msg?: string; req?: { path?: string } });
    const incoming = lines.filter((l) => l.msg === 'incoming request');
    expect(incoming.map((l) => l.req?.path)).toEqual(expect.arrayContaining(['/mcp', '/login/owner', '/authorize', '/token']));
    for (const line of incoming) expect(line.reqId).toEqual(expect.any(String));
    expect(lines.some((l) => l.reqId === 'e2e-request-1' && l.msg === 'request completed')).toBe(true);
    // The three servers share stderr: each line names its server (found in review, s35logs).
    const servers = (path: string) => new Set(incoming.filter((l) => l.req?.path === path).map((l) => (l as { server?: string }).server));
    expect([servers('/mcp'), servers('/authorize'), servers('/token')]).toEqual([new Set(['agent']), new Set(['auth']), new Set(['auth'])]);
    for (const secret of [BEARER, CODE, ASSERTION, VERIFIER]) expect(stderr).not.toContain(secret);
    // Node's process warnings (a deprecated fastify option once printed three) are noise in a user's terminal.
    expect(stderr).not.toMatch(NODE_WARNING);
  }, 30_000);

  it('warn (serve-auth): no per-request lines', async () => {
    root = await mkdtemp(join(tmpdir(), 'delegate-serve-logs-'));
    const port = await freePort();
    const serve = await startServer(['serve-auth', '--log-level', 'warn', '--port', String(port)], join(root, 'home'));
    const issuer = `http://127.0.0.1:${port}`;
    await secretBearingRequests(issuer, `${issuer}/mcp`);
    const stderr = await stop(serve);
    expect(stderr).toContain('Press Ctrl-C');
    expect(stderr).not.toContain('incoming request');
    expect(stderr).not.toContain('"level":30');
    expect(stderr).not.toMatch(NODE_WARNING);
  }, 30_000);
});
