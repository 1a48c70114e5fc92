// An MCP server whose authorization server does not say it takes PKCE with
// S256. Found in review (s24bcp, low): `delegate login --agent-url` signed in
// at one whose RFC 8414 metadata left out code_challenge_methods_supported
// (it registered a client and printed the sign-in link), and at one that
// published no metadata at all (the SDK guessed /authorize). The MCP
// authorization spec (2025-11-25, "Authorization Code Protection") says a
// client MUST refuse to proceed then. Now the CLI refuses before it registers
// or shows anything, and keeps nothing. And OpenID discovery metadata the
// SDK's schema refuses (no jwks_uri) is said in one line, not as zod's JSON
// array of issues (by the device sign-in too). The built CLI, a fresh data
// directory, fake servers on loopback ports of their own.
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { killLeftovers, runCli, startCli } from './run.js';

/** What the fake authorization server publishes: RFC 8414 metadata with these methods (absent: no field), OpenID metadata without jwks_uri, or nothing. */
type Published = { oauth: string[] | 'absent' } | 'openid-without-jwks' | 'nothing';

interface Fakes {
  agentUrl: string;
  issuer: string;
  /** Every request the authorization server got: method and path. */
  asked: string[];
}

let home: string;
const servers: Server[] = [];

beforeAll(() => {
  builtModule('cli/main.js');
});

beforeEach(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-pkce-')), 'home');
});

afterEach(async () => {
  killLeftovers();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  await rm(join(home, '..'), { recursive: true, force: true });
});

async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * An authorization server publishing `published`, taking any registration, and an MCP server that answers 401
 * pointing at it (RFC 9728); or at `elsewhere`, where the fake authorization server is not.
 */
async function fakes(published: Published, elsewhere?: string): Promise<Fakes> {
  const asked: string[] = [];
  let issuer = '';
  issuer = await listen((req, res) => {
    asked.push(`${req.method} ${req.url}`);
    const path = new URL(req.url!, issuer).pathname;
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const metadata: Record<string, unknown> = {
      issuer,
      authorization_endpoint: `${issuer}/authorize`,
      token_endpoint: `${issuer}/token`,
      registration_endpoint: `${issuer}/register`,
      response_types_supported: ['code'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      token_endpoint_auth_methods_supported: ['none'],
    };
    if (typeof published === 'object' && path.startsWith('/.well-known/oauth-authorization-server')) {
      return json(200, published.oauth === 'absent' ? metadata : { ...metadata, code_challenge_methods_supported: published.oauth });
    }
    if (published === 'openid-without-jwks' && path.startsWith('/.well-known/openid-configuration')) {
      return json(200, { ...metadata, code_challenge_methods_supported: ['S256'] });
    }
    if (path === '/register') {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => json(201, { ...JSON.parse(body), client_id: 'fake_client', client_id_issued_at: 1 }));
      return;
    }
    res.writeHead(404).end();
  });
  if (elsewhere !== undefined) issuer = elsewhere;
  const agent = await listen((req, res) => {
    const base = `http://${req.headers.host}`;
    if (req.url!.startsWith('/.well-known/oauth-protected-resource')) {
      return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ resource: `${base}/mcp`, authorization_servers: [issuer] }));
    }
    res
      .writeHead(401, { 'www-authenticate': `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`, 'content-type': 'application/json' })
      .end('{}');
  });
  return { agentUrl: `${agent}/mcp`, issuer, asked };
}

/** What the token cache holds for anyone: discovery states, client registrations, tokens (none when there is no file). */
async function cached(): Promise<{ discovery: object; clients: object; tokens: object }> {
  const text = await readFile(join(home, 'tokens.json'), 'utf8').catch(() => undefined);
  if (text === undefined) return { discovery: {}, clients: {}, tokens: {} };
  const { discovery, clients, tokens } = JSON.parse(text) as { discovery: object; clients: object; tokens: object };
  return { discovery, clients, tokens };
}

/** `delegate login --no-browser --agent-url <fake>`; a sign-in that starts gives up after 3 s (the old code's). */
function login(agentUrl: string) {
  return runCli(['login', '--no-browser', '--login-timeout', '3s', '--agent-url', agentUrl], home);
}

const RULE = 'without S256 in code_challenge_methods_supported, a client must refuse to proceed';

describe('an authorization server that does not say it takes PKCE with S256', () => {
  it.each([
    ['leaves code_challenge_methods_supported out of its metadata', { oauth: 'absent' } as const, 'does not say in its metadata that it supports PKCE (no code_challenge_methods_supported)'],
    ['lists only plain', { oauth: ['plain'] }, 'does not support PKCE with S256 (its code_challenge_methods_supported: ["plain"])'],
    ['lists no method at all', { oauth: [] }, 'does not support PKCE with S256 (its code_challenge_methods_supported: [])'],
    ['publishes no metadata (404 at every well-known address)', 'nothing' as const, 'publishes no metadata (RFC 8414)'],
  ])('one that %s: login refuses in one line naming it and the rule, exit 1, no registration, nothing cached', async (_name, published: Published, finding) => {
    const { agentUrl, issuer, asked } = await fakes(published);
    const run = await login(agentUrl);
    expect(run.stderr).toBe(`delegate: The authorization server ${issuer} ${finding}; delegate does not sign in there (MCP authorization spec, "Authorization Code Protection": ${RULE}).\n`);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(asked.filter((request) => !request.startsWith('GET /.well-known/'))).toEqual([]);
    expect(await cached()).toEqual({ discovery: {}, clients: {}, tokens: {} });
  });

  it('one that cannot be reached (nobody on its port) is said as such, not as a server without metadata, and nothing is cached', async () => {
    const { agentUrl } = await fakes('nothing', `http://127.0.0.1:${await freePort()}`);
    const run = await login(agentUrl);
    expect(run.stderr).toBe(`delegate: Cannot reach ${agentUrl} or its authorization server (ECONNREFUSED).\n`);
    expect(run.code).toBe(1);
    expect(await cached()).toEqual({ discovery: {}, clients: {}, tokens: {} });
  });

  it('one that lists S256 among others: the sign-in goes on, the link shown (control)', async () => {
    const { agentUrl, issuer, asked } = await fakes({ oauth: ['plain', 'S256'] });
    const cli = startCli(['login', '--no-browser', '--login-timeout', '3s', '--agent-url', agentUrl], home);
    // A loopback issuer that does not say it runs from this data directory (no Delegate-Data-Directory header): the
    // authorization URL itself, not the owner's link behind the CLI's /start (found in review, s33team).
    const onward = decodeURIComponent(await cli.loginUrl);
    expect(onward.startsWith(`${issuer}/`)).toBe(true);
    expect(onward).toContain('/authorize?');
    expect(onward).toContain('code_challenge_method=S256');
    expect(asked).toContain('POST /register');
    cli.child.kill('SIGTERM');
    await cli.done;
  });
});

describe('OpenID discovery metadata the SDK cannot read (no jwks_uri)', () => {
  it('is said in one line naming its address and what is missing, not as a JSON array; exit 1, nothing cached', async () => {
    const { agentUrl, issuer, asked } = await fakes('openid-without-jwks');
    const run = await login(agentUrl);
    expect(run.stderr).toBe(
      `delegate: ${issuer}/.well-known/openid-configuration answered with a document that is not what the protocol asks for (jwks_uri: expected string, received undefined; ` +
        'subject_types_supported: expected array, received undefined; id_token_signing_alg_values_supported: expected array, received undefined); delegate does not use it.\n',
    );
    expect(run.code).toBe(1);
    expect(asked.filter((request) => !request.startsWith('GET /.well-known/'))).toEqual([]);
    expect(await cached()).toEqual({ discovery: {}, clients: {}, tokens: {} });
  });

  it('is said the same way by the device sign-in (login --device)', async () => {
    const { agentUrl, issuer } = await fakes('openid-without-jwks');
    const run = await runCli(['login', '--device', '--login-timeout', '3s', '--agent-url', agentUrl], home);
    expect(run.stderr).toMatch(new RegExp(`^delegate: ${issuer}/\\.well-known/openid-configuration answered with a document that is not what the protocol asks for \\(jwks_uri: expected string, received undefined; .*\\); delegate does not use it\\.\n$`));
    expect(run.code).toBe(1);
    expect(await cached()).toEqual({ discovery: {}, clients: {}, tokens: {} });
  });
});
