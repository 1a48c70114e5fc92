// The `delegate login` the CLI advises when it cannot go on for want of a
// sign-in, run in-process with a fake terminal-less io and nothing listening
// on the ports given: the command named must reach the same servers (ports),
// token cache (profile) and data directory as the run that advises it, or,
// typed as written, it signs in somewhere else. Found by the s18 helpers:
// `token` with nothing stored, `status --profile` on a damaged cache, and
// find-slot on a damaged cache with nobody to sign in (which named neither
// --device nor --no-browser) still said plain `delegate login`.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { freePort } from '../support/ports.js';
import { fakeIo } from './fake-io.js';

let root: string;
let home: string;
let flags: string[];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'delegate-cli-login-advice-'));
  home = join(root, 'home');
  flags = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function damagedCache(path: string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
  await writeFile(path, '{"version": 1, "discov', { mode: 0o600 });
}

describe('token with nothing stored', () => {
  it('names the `delegate login` of its data directory, ports and profile', async () => {
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['token', '--profile', 'work', ...flags], io)).toBe(4);
    expect(io.out).toBe('');
    const agentUrl = `http://127.0.0.1:${flags[5]}/mcp`;
    expect(io.err).toBe(
      `delegate: No delegation for CalendarAgent at ${agentUrl} is stored, and this command never signs in. Run \`DELEGATE_HOME=${home} delegate login ${flags.join(' ')} --profile work\` first.\n`,
    );
  });
});

describe('status on a damaged token cache', () => {
  it('with --profile, names the login of that profile (plain `delegate login` signs in to the default one)', async () => {
    const cache = join(home, 'profiles', 'work', 'tokens.json');
    await damagedCache(cache);
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['--profile', 'work', 'status'], io)).toBe(4);
    expect(io.err).toBe(`delegate: The token cache ${cache} is not valid JSON. It was left as it is; \`DELEGATE_HOME=${home} delegate login --profile work\` keeps it aside and signs in again.\n`);
    // The same words in the --json document's tokenCacheError, and under DELEGATE_PROFILE.
    const json = fakeIo({ DELEGATE_HOME: home, DELEGATE_PROFILE: 'work' });
    expect(await runCli(['status', '--json'], json)).toBe(4);
    expect(JSON.parse(json.out)).toMatchObject({ tokenCacheError: `The token cache ${cache} is not valid JSON. It was left as it is; \`DELEGATE_HOME=${home} delegate login --profile work\` keeps it aside and signs in again.` });
  });

  it('with nothing stored under --profile, the line that says so names that profile too', async () => {
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['--profile', 'work', 'status'], io)).toBe(4);
    expect(io.out).toContain(`Not signed in: no delegation is stored. Run \`DELEGATE_HOME=${home} delegate login --profile work\`.`);
  });

  it('the default profile names no profile', async () => {
    const cache = join(home, 'tokens.json');
    await damagedCache(cache);
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status'], io)).toBe(4);
    expect(io.err).toBe(`delegate: The token cache ${cache} is not valid JSON. It was left as it is; \`DELEGATE_HOME=${home} delegate login\` keeps it aside and signs in again.\n`);
  });
});

describe('status with the servers’ ports or CalendarAgent’s URL', () => {
  // Stop 20: status took no ports, so its "Run `delegate login`" named the default ports' servers whatever the run's.
  it('names them in the `delegate login` it advises', async () => {
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', ...flags], io)).toBe(4);
    expect(io.out).toContain(`Not signed in: no delegation is stored. Run \`DELEGATE_HOME=${home} delegate login ${flags.join(' ')}\`.`);
    // An agent given by its URL, by the option or by DELEGATE_AGENT_URL: named as an option, which a shell without that variable reads too.
    for (const [argv, env] of [
      [['status', '--agent-url', 'https://agent.example.com/mcp'], {}],
      [['status'], { DELEGATE_AGENT_URL: 'https://agent.example.com/mcp' }],
    ] as const) {
      const remote = fakeIo({ DELEGATE_HOME: home, ...env });
      expect(await runCli(argv, remote)).toBe(4);
      expect(remote.out).toContain(`Not signed in: no delegation for https://agent.example.com/mcp is stored. Run \`DELEGATE_HOME=${home} delegate login --agent-url https://agent.example.com/mcp\`.`);
    }
  });
});

describe('status with the data directory set for that command alone', () => {
  // Found in review (s30): after `DELEGATE_HOME=$H delegate status`, a one-command setting the shell does not keep, the
  // advice was `delegate login`, which typed as printed signed in to the default data directory; `token` in the same
  // place advised `DELEGATE_HOME=$H delegate login`.
  it('advises the same `delegate login` as token does, data directory and all', async () => {
    const status = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', ...flags], status)).toBe(4);
    const token = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['token', ...flags], token)).toBe(4);
    const advised = /Run `(.+?)` first\./.exec(token.err)?.[1];
    expect(advised).toBe(`DELEGATE_HOME=${home} delegate login ${flags.join(' ')}`);
    expect(status.out).toContain(`Not signed in: no delegation is stored. Run \`${advised}\`.`);
  });
});

describe('token exchange with the stored token of a profile', () => {
  // Noticed at stop 19: `delegate --profile work token exchange` read the default profile's token cache.
  it('reads that profile’s token cache, as every other command does', async () => {
    const cache = join(home, 'profiles', 'work', 'tokens.json');
    await damagedCache(cache);
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['--profile', 'work', 'token', 'exchange', '--audience', `http://127.0.0.1:${flags[3]}`, '--agent-port', flags[5]!], io)).toBe(4);
    expect(io.err).toContain(`The token cache ${cache} is not valid JSON.`);
  });
});

describe('find-slot on a damaged token cache, with no terminal', () => {
  it('names `delegate login` in a terminal, `delegate login --device` anywhere, and --no-browser, each with this run’s setup', async () => {
    const cache = join(home, 'tokens.json');
    await damagedCache(cache);
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['find-slot', '--duration', '30m', ...flags], io)).toBe(4);
    const command = (...words: string[]) => `\`DELEGATE_HOME=${home} delegate ${[...words, ...flags].join(' ')}\``;
    expect(io.err).toBe(
      `delegate: The token cache ${cache} is not valid JSON. It was left as it is; ${command('login')} in a terminal (or ${command('login', '--device')} anywhere) keeps it aside and signs in again, ` +
        'as does this command with --no-browser, which prints a sign-in link and waits for it. (Nobody can sign in here: this is not an interactive terminal.)\n',
    );
  });
});

describe('a data directory whose name holds a newline, a tab or a format character', () => {
  // Found in review (regress18b): the advice quoted DELEGATE_HOME, but the one-line message joined its newline into a
  // space and wrote its tab as `\t`, so the line, run as printed, named another directory (and signed in there).
  it.each([
    ['a newline', 'h\nome  x'],
    ['a tab', 'tab\tz'],
    ['a line separator', 'ls\u2028z'],
    ['a quote and a backslash beside a newline', "q'\\\nz"],
  ])('names it so that the line, run by bash as printed, reaches that directory (%s)', async (_what, name) => {
    const odd = join(root, name);
    const io = fakeIo({ DELEGATE_HOME: odd });
    expect(await runCli(['token', ...flags], io)).toBe(4);
    const line = /Run `(.+?)` first\./.exec(io.err)?.[1];
    expect(line, io.err).toBeDefined();
    // A stand-in `delegate` that prints the DELEGATE_HOME it was given.
    const bin = join(root, 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'delegate'), '#!/bin/sh\nprintf %s "$DELEGATE_HOME"\n', { mode: 0o755 });
    const run = spawnSync('bash', ['-c', line!], { env: { PATH: `${bin}:/usr/bin:/bin`, LC_ALL: 'C.UTF-8' }, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe(odd);
  });
});

describe('a command that finds no sign-in for its agent, in a profile that holds one for an agent on other ports', () => {
  // Noticed at stop 30: after `delegate login --auth-port A --calendar-port C --agent-port G`, plain `delegate token`
  // (and find-slot in a script) advised only a `delegate login` at the default ports, which signs in a second time at
  // other servers. The sign-in stored is named, with this command run for it by --agent-url (the token cache's key).
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

  /** A token cache, in `dir`, holding a delegation for each agent URL; `ended` ones have no refresh token and an expired access token. */
  async function storedFor(dir: string, now: number, ...agents: { agentUrl: string; ended?: boolean }[]): Promise<Record<string, string>> {
    const cache = { version: 1, discovery: {} as Record<string, unknown>, clients: {} as Record<string, unknown>, tokens: {} as Record<string, Record<string, unknown>> };
    const accessTokens: Record<string, string> = {};
    for (const [i, { agentUrl, ended }] of agents.entries()) {
      const issuer = `http://127.0.0.1:${40000 + i}`;
      cache.discovery[agentUrl] = {
        authorizationServerUrl: issuer,
        resourceMetadata: { resource: agentUrl, resource_name: 'CalendarAgent', authorization_servers: [issuer] },
        authorizationServerMetadata: { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, response_types_supported: ['code'] },
      };
      cache.clients[issuer] = { client_id: 'cli_abc', issuer, redirect_uris: ['http://127.0.0.1/callback'] };
      const access = `${part({ alg: 'ES256', typ: 'at+jwt' })}.${part({ sub: 'usr_owner', client_id: 'cli_abc', grant_id: `grt_${i}`, scope: 'slots:find', aud: agentUrl })}.c2ln`;
      accessTokens[agentUrl] = access;
      (cache.tokens[issuer] ??= {})[agentUrl] = {
        access_token: access,
        token_type: 'Bearer',
        ...(ended ? {} : { refresh_token: 'dlg_rt_secret', refresh_expires_at: now + 86_400_000 }),
        scope: 'slots:find',
        expires_at: ended ? now - 60_000 : now + 3_600_000,
        issuer,
        resource: agentUrl,
        obtained_at: now - 120_000,
      };
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(join(dir, 'tokens.json'), JSON.stringify(cache), { mode: 0o600 });
    return accessTokens;
  }

  it('token names it, and the command it advises prints its token', async () => {
    const other = `http://127.0.0.1:${await freePort()}/mcp`;
    const io = fakeIo({ DELEGATE_HOME: home });
    const tokens = await storedFor(home, io.now(), { agentUrl: other });
    expect(await runCli(['token', ...flags], io)).toBe(4);
    expect(io.out).toBe('');
    const agentUrl = `http://127.0.0.1:${flags[5]}/mcp`;
    expect(io.err).toBe(
      `delegate: No delegation for CalendarAgent at ${agentUrl} is stored, and this command never signs in. Run \`DELEGATE_HOME=${home} delegate login ${flags.join(' ')}\` first. ` +
        `This profile holds a sign-in for the agent at ${other}: \`DELEGATE_HOME=${home} delegate token --agent-url ${other}\` uses it.\n`,
    );
    // Followed as written (its token is valid: no server is asked), it prints that sign-in's token.
    const advised = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['token', '--agent-url', other], advised), advised.err).toBe(0);
    expect(advised.out).toBe(`${tokens[other]}\n`);
  });

  it('find-slot with no terminal names it too, with its own options and this run’s profile', async () => {
    const other = `http://127.0.0.1:${await freePort()}/mcp`;
    const io = fakeIo({ DELEGATE_HOME: home });
    await storedFor(join(home, 'profiles', 'work'), io.now(), { agentUrl: other });
    expect(await runCli(['--profile', 'work', 'find-slot', '--duration', '30m', ...flags], io)).toBe(4);
    expect(io.err).toContain('nobody is here to give it: this is not an interactive terminal.');
    expect(io.err).toMatch(new RegExp(`This profile holds a sign-in for the agent at ${other.replace(/[.]/g, '\\.')}: \`DELEGATE_HOME=${home} delegate find-slot --duration 30m --agent-url ${other.replace(/[.]/g, '\\.')} --profile work\` uses it\\.\\n$`));
  });

  it('several are counted and the first is named; one that has ended, and none at all, add nothing', async () => {
    const [a, b, ended] = [`http://127.0.0.1:${await freePort()}/mcp`, `http://127.0.0.1:${await freePort()}/mcp`, `http://127.0.0.1:${await freePort()}/mcp`];
    const io = fakeIo({ DELEGATE_HOME: home });
    await storedFor(home, io.now(), { agentUrl: a }, { agentUrl: b }, { agentUrl: ended, ended: true });
    expect(await runCli(['token', ...flags], io)).toBe(4);
    expect(io.err).toContain(
      ` This profile holds sign-ins for 2 other agents (at ${a}, ${b}; \`delegate status\` lists them): \`DELEGATE_HOME=${home} delegate token --agent-url ${a}\` uses the first.\n`,
    );
    expect(io.err).not.toContain(ended);
    await storedFor(home, io.now(), { agentUrl: ended, ended: true });
    const none = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['token', ...flags], none)).toBe(4);
    expect(none.err).toMatch(/first\.\n$/);
  });
});
