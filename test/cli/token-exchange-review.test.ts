// `delegate token exchange` as review s33deleg ran it beside `delegate serve` on other ports than the defaults, in
// process with a fake io: the advice where no sign-in is stored for the agent on its ports names the `delegate login`
// of this run and a sign-in stored for another agent, with this command run for it by --agent-url, which then works;
// `--as` another agent without `--key` is bad usage, nothing sent; an agent the authorization server does not know is
// said to be not registered (not to be registered "under another kid"); a lookahead outside 1–366 days is bad usage,
// nothing sent. No request reaches an authorization server where none should: a recording stand-in counts them.
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { registerTestAgent, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { freePort } from '../support/ports.js';
import { recordingIssuer } from '../support/recording-issuer.js';
import { fakeIo, type FakeIo } from './fake-io.js';

const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const TOKEN = `${part({ alg: 'ES256', typ: 'at+jwt' })}.${part({ sub: 'usr_x', aud: 'http://127.0.0.1:8412/mcp' })}.c2ln`;

let dir: string;
let home: string;
let as: Awaited<ReturnType<typeof recordingIssuer>>;
let keyFile: string;
let tokenFile: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-exchange-review-'));
  home = join(dir, 'home');
  as = await recordingIssuer();
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  keyFile = join(dir, 'helper.key.json');
  await writeFile(keyFile, JSON.stringify(await exportJWK(privateKey)), { mode: 0o600 });
  tokenFile = join(dir, 'handed.txt');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
});

afterEach(async () => {
  await as.close();
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[], stdin?: string): Promise<FakeIo & { code: number }> {
  const io = fakeIo({ DELEGATE_HOME: home });
  if (stdin !== undefined) io.readAll = async () => stdin;
  const code = await runCli(args, io);
  return Object.assign(io, { code });
}

/** Bad usage: exit 2, one line naming `option`, nothing on stdout, no request, nothing written in the data directory. */
async function badUsage(args: string[], option: string, stdin?: string): Promise<void> {
  const r = await run(args, stdin);
  expect([r.code, r.out], r.err).toEqual([2, '']);
  expect(r.err.trim().split('\n')).toHaveLength(1);
  expect(r.err).toContain(option);
  expect(as.requests).toEqual([]);
  expect(await readdir(home).catch(() => [])).toEqual([]);
}

const exchange = (...more: string[]) => ['token', 'exchange', '--issuer', as.issuer, '--audience', 'http://127.0.0.1:9001', ...more];

describe('--as another agent than CalendarAgent without --key', () => {
  it.each([
    ['a registered helper, the token on stdin', ['--as', 'helper', '--subject-token', '-'], TOKEN],
    ['a registered helper, the token in a file', ['--as', 'helper', '--subject-token-file', '<file>'], undefined],
    ['an agent no server knows, the stored token', ['--as', 'nosuch'], undefined],
  ])('is bad usage naming --key, before anything is read or sent (%s)', async (_what, more, stdin) => {
    await badUsage(exchange(...more.map((m) => (m === '<file>' ? tokenFile : m))), '--as', stdin);
    const r = await run(exchange(...more.map((m) => (m === '<file>' ? tokenFile : m))), stdin);
    expect(r.err).toBe(`delegate: --as ${more[1]} needs --key FILE, the private key ${more[1]} was registered with (the data directory's agent key is calendar-agent's, CalendarAgent's).\n`);
  });

  it('with --key, the exchange is sent, signed as that agent (the control)', async () => {
    const r = await run(exchange('--as', 'helper', '--key', keyFile, '--subject-token-file', tokenFile));
    expect([r.code, r.err]).toEqual([1, 'delegate: The exchange was refused (invalid_request): recorded\n']);
    const posted = as.requests.filter((q) => q.method === 'POST').map((q) => new URLSearchParams(q.body));
    expect(posted).toHaveLength(1);
    expect(posted[0]!.get('client_id')).toBe('helper');
    expect(decodeJwt(posted[0]!.get('client_assertion')!)).toMatchObject({ iss: 'helper', sub: 'helper', aud: as.issuer });
  });
});

describe('--constraint lookahead_days outside 1 to 366', () => {
  it.each(['0', '367', '00', '100000000000000000000'])('lookahead_days=%s is bad usage, nothing sent', async (days) => {
    await badUsage(exchange('--as', 'helper', '--key', keyFile, '--subject-token-file', tokenFile, '--constraint', `lookahead_days=${days}`), `not lookahead_days=${days}`);
    const r = await run(exchange('--as', 'helper', '--key', keyFile, '--subject-token-file', tokenFile, '--constraint', `lookahead_days=${days}`));
    expect(r.err).toBe(`delegate: --constraint lookahead_days takes a whole number of days from 1 to 366, not lookahead_days=${days}.\n`);
  });

  it.each(['1', '366', '007'])('lookahead_days=%s is sent (the control)', async (days) => {
    const r = await run(exchange('--as', 'helper', '--key', keyFile, '--subject-token-file', tokenFile, '--constraint', `lookahead_days=${days}`));
    expect([r.code, r.err]).toEqual([1, 'delegate: The exchange was refused (invalid_request): recorded\n']);
    const posted = as.requests.filter((q) => q.method === 'POST').map((q) => JSON.parse(new URLSearchParams(q.body).get('authorization_details')!));
    expect(posted).toEqual([[expect.objectContaining({ lookahead_days: Number(days) })]]);
  });
});

describe('--as an agent the authorization server does not know', () => {
  let authz: TestAuthz;
  beforeAll(async () => {
    authz = await startTestAuthz();
    await registerTestAgent(authz, 'helper', 'http://127.0.0.1:8/helper');
  });
  afterAll(async () => {
    await authz.close();
  });

  it('says that no such agent is registered there, not that it may be registered under another kid (its key has none)', async () => {
    const r = await run(['token', 'exchange', '--issuer', authz.issuer, '--audience', authz.calendarUrl, '--as', 'nosuch', '--key', keyFile, '--subject-token-file', tokenFile]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      new RegExp(
        `^delegate: The exchange was refused \\(invalid_client\\): Client authentication failed\\. No agent nosuch that signs with a key is registered at ${authz.issuer.replace(/[.]/g, '\\.')}: check --as, or have the agent registered there first \\(\`\\S*delegate agents register --help\` says how\\)\\.\\n$`,
      ),
    );
    expect(r.err).not.toContain('kid');
  });

  it('a registered agent signing with another key than its own still gets the kid advice (the control)', async () => {
    const r = await run(['token', 'exchange', '--issuer', authz.issuer, '--audience', authz.calendarUrl, '--as', 'helper', '--key', keyFile, '--subject-token-file', tokenFile]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('The exchange was refused (invalid_client): The client assertion is not valid for this client.');
    expect(r.err).toContain(`${keyFile} has no kid, so it was named by its RFC 7638 thumbprint`);
    expect(r.err).not.toContain('No agent');
  });
});

describe('the stored sign-in, with none for the agent on this run’s ports', () => {
  /** A token cache holding a usable sign-in for the agent at `agentUrl`, made at `issuer`; its access token. */
  async function signedIn(agentUrl: string, issuer: string, cacheDir = home): Promise<string> {
    const now = Date.UTC(2026, 11, 1, 8);
    const access = `${part({ alg: 'ES256', typ: 'at+jwt' })}.${part({ sub: 'usr_owner', client_id: 'cli_abc', grant_id: 'grt_1', scope: 'slots:find', aud: agentUrl })}.c2ln`;
    const cache = {
      version: 1,
      discovery: {
        [agentUrl]: {
          authorizationServerUrl: issuer,
          resourceMetadata: { resource: agentUrl, resource_name: 'CalendarAgent', authorization_servers: [issuer] },
          authorizationServerMetadata: { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, response_types_supported: ['code'] },
        },
      },
      clients: { [issuer]: { client_id: 'cli_abc', issuer, redirect_uris: ['http://127.0.0.1/callback'] } },
      tokens: {
        [issuer]: {
          [agentUrl]: { access_token: access, token_type: 'Bearer', refresh_token: 'dlg_rt_secret', refresh_expires_at: now + 86_400_000, scope: 'slots:find', expires_at: now + 3_600_000, issuer, resource: agentUrl, obtained_at: now - 120_000 },
        },
      },
    };
    await mkdir(cacheDir, { recursive: true, mode: 0o700 });
    await writeFile(join(cacheDir, 'tokens.json'), JSON.stringify(cache), { mode: 0o600 });
    return access;
  }

  it('names the login of this run and the sign-in stored for the agent elsewhere; the command it advises exchanges that sign-in’s token at its server', async () => {
    // As the review ran it: no port options (the servers on other ports), the one sign-in stored for the agent there.
    const other = `http://127.0.0.1:${await freePort()}/mcp`;
    const calendar = `http://127.0.0.1:${await freePort()}`;
    const stored = await signedIn(other, as.issuer);
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    await writeFile(join(home, 'agent-key.json'), JSON.stringify({ ...(await exportJWK(privateKey)), kid: 'agent-1' }), { mode: 0o600 });
    const r = await run(['token', 'exchange', '--audience', calendar, '--scope', 'freebusy:read', '--constraint', 'lookahead_days=3']);
    expect([r.code, r.out]).toEqual([4, '']);
    const advised = `DELEGATE_HOME=${home} delegate token exchange --audience ${calendar} --scope freebusy:read --constraint lookahead_days=3 --agent-url ${other}`;
    expect(r.err).toBe(
      `delegate: No delegation for CalendarAgent at http://127.0.0.1:8412/mcp is stored, and this command never signs in. Run \`DELEGATE_HOME=${home} delegate login\` first. ` +
        `This profile holds a sign-in for the agent at ${other}: \`${advised}\` uses it.\n`,
    );
    expect(as.requests).toEqual([]);
    // Followed as written: the stored token is posted, with the limits asked, to the server that sign-in was made at.
    const followed = await run(advised.split(' ').slice(2));
    expect([followed.code, followed.err]).toEqual([1, 'delegate: The exchange was refused (invalid_request): recorded\n']);
    const posted = as.requests.filter((q) => q.method === 'POST').map((q) => new URLSearchParams(q.body));
    expect(posted).toHaveLength(1);
    expect(posted[0]!.get('subject_token')).toBe(stored);
    expect(posted[0]!.get('scope')).toBe('freebusy:read');
    expect(JSON.parse(posted[0]!.get('authorization_details')!)).toEqual([expect.objectContaining({ lookahead_days: 3, locations: [calendar] })]);
    expect(decodeJwt(posted[0]!.get('client_assertion')!)).toMatchObject({ iss: 'calendar-agent', aud: as.issuer });
  });

  it('with ports and a profile, names them in the login, and its own options in the command it advises', async () => {
    const other = `http://127.0.0.1:${await freePort()}/mcp`;
    const [auth, agent] = [String(await freePort()), String(await freePort())];
    await signedIn(other, as.issuer, join(home, 'profiles', 'work'));
    const r = await run(['--profile', 'work', 'token', 'exchange', '--audience', 'http://127.0.0.1:9001', '--auth-port', auth, '--agent-port', agent, '--as', 'helper', '--key', keyFile, '--for', 'helper2', '--json']);
    expect([r.code, r.out]).toEqual([4, '']);
    expect(r.err).toBe(
      `delegate: No delegation for CalendarAgent at http://127.0.0.1:${agent}/mcp is stored, and this command never signs in. Run \`DELEGATE_HOME=${home} delegate login --auth-port ${auth} --agent-port ${agent} --profile work\` first. ` +
        `This profile holds a sign-in for the agent at ${other}: \`DELEGATE_HOME=${home} delegate token exchange --audience http://127.0.0.1:9001 --as helper --key ${keyFile} --for helper2 --auth-port ${auth} --json --agent-url ${other} --profile work\` uses it.\n`,
    );
    expect(as.requests).toEqual([]);
  });

  it('with nothing stored at all, names the login alone (exit 4)', async () => {
    const r = await run(['token', 'exchange', '--audience', 'http://127.0.0.1:9001', '--agent-port', String(await freePort())]);
    expect(r.code).toBe(4);
    expect(r.err).toMatch(/this command never signs in\. Run `DELEGATE_HOME=\S+ delegate login --agent-port \d+` first\.\n$/);
  });

  // Noticed in review (s33deleg): `token` took DELEGATE_AGENT_URL, `token exchange` did not.
  it('takes DELEGATE_AGENT_URL as --agent-url, unless a port option names the agent on this machine', async () => {
    const other = `http://127.0.0.1:${await freePort()}/mcp`;
    const calendar = `http://127.0.0.1:${await freePort()}`;
    const stored = await signedIn(other, as.issuer);
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    await writeFile(join(home, 'agent-key.json'), JSON.stringify({ ...(await exportJWK(privateKey)), kid: 'agent-1' }), { mode: 0o600 });
    const io = fakeIo({ DELEGATE_HOME: home, DELEGATE_AGENT_URL: other });
    expect(await runCli(['token', 'exchange', '--audience', calendar, '--scope', 'freebusy:read'], io)).toBe(1);
    expect(io.err).toBe('delegate: The exchange was refused (invalid_request): recorded\n');
    const posted = as.requests.filter((q) => q.method === 'POST').map((q) => new URLSearchParams(q.body));
    expect(posted.map((p) => p.get('subject_token'))).toEqual([stored]);
    // With --agent-port, the agent on this machine's port: nothing stored for it, exit 4, nothing sent.
    const ported = fakeIo({ DELEGATE_HOME: home, DELEGATE_AGENT_URL: other });
    expect(await runCli(['token', 'exchange', '--audience', calendar, '--agent-port', String(await freePort())], ported)).toBe(4);
    expect(as.requests.filter((q) => q.method === 'POST')).toHaveLength(1);
    // A value that is no agent URL is bad usage, as for `token`.
    const bad = fakeIo({ DELEGATE_HOME: home, DELEGATE_AGENT_URL: 'ftp://x' });
    expect(await runCli(['token', 'exchange', '--audience', calendar], bad)).toBe(2);
    expect(bad.err).toMatch(/^delegate: DELEGATE_AGENT_URL: /);
  });

  it('--agent-url beside --agent-port or --calendar-port is bad usage, nothing read or sent', async () => {
    await badUsage(exchange('--agent-url', 'https://agent.example.com/mcp', '--agent-port', '9102'), '--agent-port');
    await badUsage(exchange('--agent-url', 'https://agent.example.com/mcp', '--calendar-port', '9101'), '--calendar-port');
  });
});
