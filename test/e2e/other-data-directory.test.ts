// Commands of one data directory (DELEGATE_HOME) meeting the servers of another on their ports (found in review,
// regress21a): `login` registered a client at the other directory's authorization server, wrote a new owner key and a
// token cache into its own directory, and sent the browser to a sign-in link signed with that key, which the server
// refused with a page blaming the link; the command then waited out its whole login timeout. Now each command that
// would sign in there or use those servers stops at once with one line, exit 1, and writes nothing; a command of the
// servers' own data directory (by any spelling of it) signs in and uses them as before.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtModule } from './built.js';
import { approveInBrowser, loginApproved, runCli, serveInNewHome, stopServeAndRemove, startCli, storeSignIn, type Running } from './run.js';

let home: string;
let ports: string[];
let serve: Running;
let others: string;

beforeAll(async () => {
  builtModule('cli/main.js');
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-other-home-'));
  others = await mkdtemp(join(tmpdir(), 'delegate-e2e-other-homes-'));
}, 60_000);

afterAll(async () => {
  await stopServeAndRemove(serve, home);
  await rm(others, { recursive: true, force: true });
});

const portOf = (flag: string) => ports[ports.indexOf(flag) + 1]!;

function refusal(commandHome: string): string {
  return (
    `delegate: The delegate servers on 127.0.0.1 ports ${portOf('--auth-port')}, ${portOf('--calendar-port')} and ${portOf('--agent-port')} ` +
    `run from another data directory than this command's (${commandHome}): this command cannot sign in there or use them. ` +
    'Stop them, run this command with DELEGATE_HOME set to their data directory, or choose other ports with --auth-port, --calendar-port and --agent-port.'
  );
}

describe('a command of another data directory than the servers on its ports', () => {
  it.each([
    ['login --no-browser', ['login', '--no-browser', '--login-timeout', '12s'], 'missing'],
    ['login --device', ['login', '--device', '--login-timeout', '12s'], 'missing'],
    // find-slot goes to the agent first (its fast path); with nothing stored it would sign in, and looks before that.
    ['find-slot --no-browser', ['find-slot', '--duration', '30m', '--no-browser', '--login-timeout', '12s'], 'empty'],
    ['serve-agent --stdio', ['serve-agent', '--stdio'], 'empty'],
  ])('%s stops at once with one line, exit 1, and writes nothing into its data directory', { timeout: 30_000 }, async (name, args, state) => {
    const own = join(others, name.replace(/\W+/g, '-'));
    if (state === 'empty') await mkdir(own, { mode: 0o700 });
    const started = Date.now();
    const run = await runCli([...args, ...ports], own);
    const took = Date.now() - started;
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toEqual([refusal(own)]);
    expect(took).toBeLessThan(10_000); // the login timeout is 12 s
    // No owner key, token cache, client registration or agent key; for a missing directory, not even the directory.
    if (state === 'missing') expect(existsSync(own)).toBe(false);
    else expect(readdirSync(own)).toEqual([]);
  });

  it('the authorization server says which data directory it runs from in a header that web pages cannot read, not in its metadata', async () => {
    const res = await fetch(`http://127.0.0.1:${portOf('--auth-port')}/.well-known/oauth-authorization-server`);
    const metadata = (await res.json()) as Record<string, unknown>;
    expect(res.headers.get('delegate-data-directory')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res.headers.get('access-control-expose-headers')).toBeNull();
    expect(JSON.stringify(metadata)).not.toContain(res.headers.get('delegate-data-directory')!);
    expect(JSON.stringify(metadata)).not.toContain(home);
  });
});

// Found in review (s31fault: the usual cron mistake, cron's DELEGATE_HOME not the one `serve` runs from): with nothing
// stored and nobody to sign in (no terminal, no --no-browser), find-slot and busy (their fast path) and token never asked
// the servers anything, and failed with exit 4 advising a `delegate login …` that these servers refuse with exit 1. Now
// the authorization server is asked, on that failure only, which data directory it runs from.
describe('a command of another data directory with nothing stored and nobody to sign in', () => {
  it.each([
    ['find-slot', 'missing', ['find-slot', '--duration', '30m', '--json']],
    ['find-slot', 'empty', ['find-slot', '--duration', '30m', '--json']],
    ['busy', 'missing', ['busy', '--json']],
    ['busy', 'empty', ['busy', '--json']],
    ['token', 'missing', ['token']],
    ['token', 'empty', ['token']],
  ])('%s (data directory %s) stops with the other data directory line, exit 1, not exit 4 and a login that refuses; writes nothing', { timeout: 30_000 }, async (name, state, args) => {
    const own = join(others, `nothing-stored-${name}-${state}`);
    if (state === 'empty') await mkdir(own, { mode: 0o700 });
    const run = await runCli([...args, ...ports], own);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toEqual([refusal(own)]);
    if (state === 'missing') expect(existsSync(own)).toBe(false);
    else expect(readdirSync(own)).toEqual([]);
  });

  it('status says that the login it advises stops there, and why, still exit 4; writes nothing', { timeout: 30_000 }, async () => {
    const own = join(others, 'nothing-stored-status');
    const run = await runCli(['status', ...ports], own);
    expect(run.code, run.stderr).toBe(4);
    expect(run.stdout).toContain(
      `It stops with exit 1 while the delegate servers on 127.0.0.1 ports ${portOf('--auth-port')}, ${portOf('--calendar-port')} and ${portOf('--agent-port')} ` +
        `run from another data directory than this one (${own}): stop them first, or give it other ports (--auth-port, --calendar-port, --agent-port); ` +
        'or set DELEGATE_HOME to their data directory to use the sign-ins stored there.',
    );
    expect(existsSync(own)).toBe(false);
  });

  it('the servers’ own data directory with nothing stored is told to sign in (exit 4), as before (the control)', { timeout: 30_000 }, async () => {
    for (const args of [['find-slot', '--duration', '30m'], ['token']]) {
      const run = await runCli([...args, ...ports], home);
      expect(run.code, run.stderr).toBe(4);
      expect(run.stderr).toContain('login --auth-port');
    }
    const status = await runCli(['status', ...ports], home);
    expect(status.code, status.stderr).toBe(4);
    expect(status.stdout).toContain('Not signed in: no delegation is stored. Run `');
    expect(status.stdout).not.toContain('another data directory');
  });
});

// Found in review (regress21e): with a sign-in stored in its own directory, find-slot (its fast path) and token did not
// look before a refresh: they sent the directory's refresh token to the other directory's authorization server, which
// refused it with invalid_client, and on that refusal deleted the stored client and tokens (still good for their own
// servers) and noted the sign-in as ended; token then said "has ended … Unknown client" (exit 4) and advised a login that
// refuses. Now the authorization server is asked which data directory it runs from before a refresh goes to it.
describe('a command of another data directory holding a sign-in, before a refresh', () => {
  it.each([
    ['find-slot with an expired access token', ['find-slot', '--duration', '30m'], -60_000],
    ['token with an expired access token', ['token'], -60_000],
    // The agent of the other directory answers 401 to a token it did not issue; the retry would refresh.
    ['find-slot with a valid access token the agent refuses', ['find-slot', '--duration', '30m'], 600_000],
  ])('%s stops with one line, exit 1, sends no refresh token and changes nothing', { timeout: 30_000 }, async (name, args, expiresIn) => {
    const own = join(others, `stored-${name.replace(/\W+/g, '-')}`);
    const now = Date.now();
    await storeSignIn(own, { auth: Number(portOf('--auth-port')), agent: Number(portOf('--agent-port')) }, {
      accessToken: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJvd25lciJ9.c2ln',
      refreshToken: 'this-directory-refresh-token',
      expiresAt: now + expiresIn,
      obtainedAt: now - 3_600_000,
      clientId: 'this-directorys-client',
    });
    const before = readFileSync(join(own, 'tokens.json'));
    const run = await runCli([...args, ...ports], own);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toEqual([refusal(own)]);
    // The client registration and tokens are kept as they were, with no note of an ended sign-in; nothing else written.
    expect(readFileSync(join(own, 'tokens.json')).equals(before)).toBe(true);
    expect(readdirSync(own)).toEqual(['tokens.json']);
  });
});

describe('a command of the servers’ own data directory (the control)', () => {
  it('signs in, and so does one naming that directory by a symlink', { timeout: 60_000 }, async () => {
    await loginApproved(ports, home);
    const run = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
    expect(run.code, run.stderr).toBe(0);
    const alias = join(others, 'alias');
    await symlink(home, alias);
    // `token` looks at the servers first (no fast path): the same directory by another path is theirs.
    const token = await runCli(['token', ...ports], alias);
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout.trim()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    // A sign-in through the alias: the link is the servers' own directory's, and is accepted.
    const cli = startCli(['login', '--no-browser', ...ports], alias);
    await approveInBrowser(await cli.loginUrl);
    expect((await cli.done).code).toBe(0);
  });
});
