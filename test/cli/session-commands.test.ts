// The issue-5 commands in-process, with a fake terminal: help with examples
// on every command, mcp-config for each client (completion scripts are in
// completion.test.ts), status read from a crafted cache (and DELEGATE_TOKEN first), the
// profile's cache, and how the CLI talks to a terminal (interactive or not,
// spinner, NO_COLOR).
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths } from '../../src/config.js';
import { buildProgram, runCli } from '../../src/cli/program.js';
import { colourOn, isInteractive, startSpinner, stylesFor } from '../../src/cli/terminal.js';
import { fakeIo, type FakeIo } from './fake-io.js';

let home: string;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-cli-session-'));
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

function fakeJwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'ES256', typ: 'at+jwt' })}.${part(claims)}.c2lnbmF0dXJl`;
}

async function writeCache(path: string, now: number, times: { expiresAt?: number; refreshExpiresAt?: number } = {}): Promise<string> {
  const issuer = 'http://127.0.0.1:8410';
  const resource = 'http://127.0.0.1:8412/mcp';
  const access = fakeJwt({ sub: 'usr_owner', client_id: 'cli_abc', grant_id: 'grt_123', scope: 'slots:find', aud: resource });
  await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
  const cache = {
    version: 1,
    discovery: { [resource]: { authorizationServerUrl: issuer, resourceMetadata: { resource, resource_name: 'CalendarAgent' } } },
    clients: { [issuer]: { client_id: 'cli_abc', client_name: 'delegate CLI', issuer } },
    tokens: {
      [issuer]: {
        [resource]: {
          access_token: access,
          token_type: 'Bearer',
          refresh_token: 'dlg_rt_secret',
          scope: 'slots:find',
          expires_at: times.expiresAt ?? now + 300_000,
          refresh_expires_at: times.refreshExpiresAt ?? now + 30 * 86_400_000,
          issuer,
          resource,
          obtained_at: now,
        },
      },
    },
  };
  await writeFile(path, JSON.stringify(cache), { mode: 0o600 });
  return access;
}

describe('help', () => {
  it('every command of the session, serving and integration side has examples in its --help', async () => {
    const program = buildProgram(fakeIo(), () => undefined);
    const names = ['find-slot', 'login', 'serve', 'serve-auth', 'serve-calendar', 'serve-agent', 'status', 'token', 'logout', 'mcp-config', 'completion'];
    expect(program.commands.map((c) => c.name())).toEqual(expect.arrayContaining(names));
    for (const name of names) {
      const io = fakeIo({ DELEGATE_HOME: home });
      expect(await runCli([name, '--help'], io), name).toBe(0);
      expect(io.out, `${name} --help`).toContain('Examples:');
    }
  });
});

describe('the top-level help', () => {
  it('names the environment and the exit codes', async () => {
    const io = fakeIo({});
    expect(await runCli(['--help'], io)).toBe(0);
    expect(io.out).toContain('DELEGATE_TOKEN');
    expect(io.out).toMatch(/Exit codes: 0 ok, 1 error, 2 bad usage, 3 no free slot found, 4 authorization required/);
  });
});

describe('status', () => {
  it('says who, which agent, grant, scopes and until when; --json without any token; exit 0', async () => {
    const io = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    const access = await writeCache(join(home, 'tokens.json'), io.now());
    expect(await runCli(['status'], io)).toBe(0);
    expect(io.out).toContain('CalendarAgent at http://127.0.0.1:8412/mcp');
    expect(io.out).toMatch(/signed in as\s+usr_owner at http:\/\/127\.0\.0\.1:8410/);
    expect(io.out).toMatch(/grant\s+grt_123/);
    expect(io.out).toContain('slots:find');
    expect(io.out).toMatch(/access token\s+valid until Tue 1 Dec 2026, 08:05 \(UTC\)/);

    const json = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', '--json'], json)).toBe(0);
    const parsed = JSON.parse(json.out);
    expect(parsed.delegations[0]).toMatchObject({ user: 'usr_owner', grantId: 'grt_123', clientId: 'cli_abc', scopes: ['slots:find'], accessTokenValid: true });
    expect(json.out).not.toContain(access);
    expect(json.out).not.toContain('dlg_rt_secret');
  });

  it('a delegation that has ended is not renewable and not usable: no renewal promised, sign in again, exit 4', async () => {
    const now = Date.UTC(2026, 11, 1, 8);
    await writeCache(join(home, 'tokens.json'), now, { expiresAt: now - 86_400_000, refreshExpiresAt: now - 3_600_000 });
    const io = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    expect(await runCli(['status'], io)).toBe(4);
    expect(io.out).not.toContain('renewed without you');
    expect(io.out).not.toContain('unless revoked');
    expect(io.out).toMatch(/access token\s+expired at Mon 30 Nov 2026, 08:00 \(UTC\)\n/);
    // With the data directory, as token advises it (found in review, s30: the shell that ran status need not have it set).
    expect(io.out).toMatch(/delegation\s+ended Tue 1 Dec 2026, 07:00 \(UTC\); sign in again with `DELEGATE_HOME=(\S+) delegate login`\n/);
    expect(/with `DELEGATE_HOME=(\S+) delegate login`/.exec(io.out)?.[1]).toBe(home);

    const json = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', '--json'], json)).toBe(4);
    expect(JSON.parse(json.out).delegations[0]).toMatchObject({ accessTokenValid: false, renewable: false, usable: false });
  });

  it('an expired access token within a delegation that lasts is renewed without you: exit 0', async () => {
    const now = Date.UTC(2026, 11, 1, 8);
    await writeCache(join(home, 'tokens.json'), now, { expiresAt: now - 60_000 });
    const io = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    expect(await runCli(['status'], io)).toBe(0);
    expect(io.out).toContain('; renewed without you on next use');
    expect(io.out).toMatch(/delegation\s+until Thu 31 Dec 2026, 08:00 \(UTC\), unless revoked/);
    const json = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', '--json'], json)).toBe(0);
    expect(JSON.parse(json.out).delegations[0]).toMatchObject({ accessTokenValid: false, renewable: true, usable: true });
  });

  // Found in review (s31fix): with tokens.json a symbolic link, every refresh was refused (nothing sent), and status
  // said "renewed without you on next use".
  it('an expired access token in a token cache that is a symbolic link: not promised a renewal, and why', async () => {
    const now = Date.UTC(2026, 11, 1, 8);
    const target = join(home, 'elsewhere.json');
    await writeCache(target, now, { expiresAt: now - 60_000 });
    await symlink(target, join(home, 'tokens.json'));
    const io = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    // No usable sign-in, as `token` and `find-slot` find (exit 1, nothing sent): exit 4, in text and --json alike (s31fix2).
    expect(await runCli(['status'], io)).toBe(4);
    expect(io.out).not.toContain('renewed without you');
    expect(io.out).toMatch(/access token\s+expired at Tue 1 Dec 2026, 07:59 \(UTC\); not renewed here: the token cache is a symbolic link, which cannot be saved over \(mount or link its directory instead\)\n/);
    const json = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', '--json'], json)).toBe(4);
    expect(JSON.parse(json.out).delegations[0]).toMatchObject({
      accessTokenValid: false,
      renewable: false,
      usable: false,
      notRenewedWhy: 'the token cache is a symbolic link, which cannot be saved over (mount or link its directory instead)',
    });
  });

  // Found in review (s26): text status exited 1 for a cache it could not open, --json 4; README's row 4 says 4.
  it('a token cache it cannot open (a directory in its place): exit 4 with or without --json; DELEGATE_TOKEN still speaks for itself', async () => {
    await mkdir(join(home, 'tokens.json'), { recursive: true });
    const text = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status'], text)).toBe(4);
    expect([text.out, text.err]).toEqual(['', `delegate: The token cache ${join(home, 'tokens.json')} is a directory, not a token cache; move it away.\n`]);
    const json = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', '--json'], json)).toBe(4);
    expect(JSON.parse(json.out)).toMatchObject({ source: 'none', tokenCacheReadable: false });

    const token = fakeJwt({ sub: 'usr_env', aud: 'http://127.0.0.1:8412/mcp', exp: Date.UTC(2026, 11, 1, 9) / 1000 });
    const withToken = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: token });
    expect(await runCli(['status'], withToken), withToken.err).toBe(0);
    expect(withToken.out).toContain('Using DELEGATE_TOKEN from the environment');
    // What was found, not "no delegation is stored" (found in review, s26new: the unopenable cache read as an empty one).
    expect(withToken.out).toContain(`Stored sign-ins cannot be shown: The token cache ${join(home, 'tokens.json')} is a directory, not a token cache; move it away.\n`);
    expect(withToken.out).not.toContain('no delegation');
    // A damaged one: its advice to sign in holds once DELEGATE_TOKEN is unset (found in review, s26new2: login refuses).
    await rm(join(home, 'tokens.json'), { recursive: true });
    await writeFile(join(home, 'tokens.json'), '{bad', { mode: 0o600 });
    const damaged = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: token });
    expect(await runCli(['status'], damaged), damaged.err).toBe(0);
    expect(damaged.out).toContain(`is not valid JSON. It was left as it is; \`DELEGATE_HOME=${home} delegate login\` keeps it aside and signs in again. (Unset DELEGATE_TOKEN before signing in: while it is set, \`delegate login\` refuses.)\n`);
    // The same with no `delegate` on PATH (`npm install && npx delegate …`): the hint names `node …/bin/delegate`, and the
    // note stays (found in review, s27rev4: it was added only when the text held "`delegate ").
    const noPath = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: token, PATH: '/usr/bin:/bin' });
    expect(await runCli(['status'], noPath), noPath.err).toBe(0);
    expect(noPath.out).toMatch(/It was left as it is; `DELEGATE_HOME=\S+ \S*node\S* \S+\/bin\/delegate login` keeps it aside and signs in again\. \(Unset DELEGATE_TOKEN before signing in: while it is set, `delegate login` refuses\.\)\n/);
    const withTokenJson = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: token });
    expect(await runCli(['status', '--json'], withTokenJson)).toBe(0);
    expect(JSON.parse(withTokenJson.out)).toMatchObject({ source: 'DELEGATE_TOKEN', tokenCacheReadable: false });
  });

  it('reads the profile’s own cache, and DELEGATE_TOKEN comes first', async () => {
    await writeCache(join(home, 'profiles', 'work', 'tokens.json'), Date.UTC(2026, 11, 1, 8));
    const plain = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['status', '--json'], plain)).toBe(4);
    const work = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['--profile', 'work', 'status', '--json'], work)).toBe(0);
    const viaEnv = fakeIo({ DELEGATE_HOME: home, DELEGATE_PROFILE: 'work' });
    expect(await runCli(['status', '--json'], viaEnv)).toBe(0);
    expect(JSON.parse(viaEnv.out).profile).toBe('work');

    const token = fakeJwt({ sub: 'usr_env', aud: 'http://127.0.0.1:8412/mcp', exp: Date.UTC(2026, 11, 1, 9) / 1000 });
    const env = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: token });
    expect(await runCli(['status', '--json'], env)).toBe(0);
    expect(JSON.parse(env.out)).toMatchObject({ source: 'DELEGATE_TOKEN', environmentToken: { user: 'usr_env' } });
    expect(env.out).not.toContain(token);
  });

  it('refuses a profile name that could leave the data directory', async () => {
    const io = fakeIo({ DELEGATE_HOME: home, DELEGATE_PROFILE: '../elsewhere' });
    expect(await runCli(['status'], io)).toBe(2);
    expect(io.err).toMatch(/^delegate: DELEGATE_PROFILE/);
  });
});

describe('token and login with DELEGATE_TOKEN', () => {
  it('token prints DELEGATE_TOKEN; login and logout refuse while it is set', async () => {
    const io = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: 'from-the-environment' });
    expect(await runCli(['token'], io)).toBe(0);
    expect(io.out).toBe('from-the-environment\n');
    for (const command of ['login', 'logout']) {
      const refused = fakeIo({ DELEGATE_HOME: home, DELEGATE_TOKEN: 'x' });
      expect(await runCli([command], refused)).toBe(1);
      expect(refused.err).toMatch(/^delegate: DELEGATE_TOKEN is set/);
    }
  });
});

describe('mcp-config pins the data directory and config file this shell resolves, for every client', () => {
  const account = userInfo().homedir;
  /** The stdio entry's environment in each --client form (claude-code's as its --env flags). */
  async function emittedEnvs(env: Record<string, string>): Promise<Array<Record<string, string> | undefined>> {
    const forms: Array<Record<string, string> | undefined> = [];
    for (const client of ['json', 'claude-desktop']) {
      const io = fakeIo(env);
      expect(await runCli(['mcp-config', '--client', client], io)).toBe(0);
      forms.push(JSON.parse(io.out).mcpServers['calendar-agent'].env);
    }
    const code = fakeIo(env);
    expect(await runCli(['mcp-config', '--client', 'claude-code'], code)).toBe(0);
    const stdioLine = code.out.split('\n').find((l) => l.includes('serve-agent --stdio'))!;
    const flags = [...stdioLine.matchAll(/--env '?([A-Z_]+)=([^' ]+)'?/g)].map((m) => [m[1]!, m[2]!]);
    forms.push(flags.length > 0 ? Object.fromEntries(flags) : undefined);
    return forms;
  }
  /** The files a process resolves, paths made absolute. */
  const resolved = (env: Record<string, string | undefined>) => Object.fromEntries(Object.entries(resolvePaths(env)).map(([k, v]) => [k, resolve(v)]));

  it.each([
    ['XDG_DATA_HOME', { HOME: account, XDG_DATA_HOME: '/x' }, { XDG_DATA_HOME: '/x' }],
    // Ignored, as the XDG Base Directory spec has it (review s25docs): nothing to pin.
    ['a relative XDG_CONFIG_HOME', { HOME: account, XDG_CONFIG_HOME: 'relconf' }, undefined],
    ['a relative XDG_DATA_HOME', { HOME: account, XDG_DATA_HOME: 'reldata' }, undefined],
    ['both XDG directories', { HOME: account, XDG_DATA_HOME: '/x', XDG_CONFIG_HOME: '/y' }, { XDG_DATA_HOME: '/x', XDG_CONFIG_HOME: '/y' }],
    ['a HOME other than the account’s', { HOME: '/tmp/elsewhere' }, { XDG_DATA_HOME: '/tmp/elsewhere/.local/share', XDG_CONFIG_HOME: '/tmp/elsewhere/.config' }],
    ['DELEGATE_HOME, which wins', { HOME: account, DELEGATE_HOME: '/d', XDG_DATA_HOME: '/x' }, { DELEGATE_HOME: '/d' }],
    ['nothing but the account’s HOME', { HOME: account }, undefined],
  ] as const)('%s', async (_name, shell, pinned) => {
    for (const env of await emittedEnvs(shell)) {
      expect(env).toEqual(pinned);
      // A client started from the desktop, with the account's HOME and nothing else but what was emitted, resolves the same files.
      expect(resolved({ HOME: account, ...env })).toEqual(resolved(shell));
    }
  });

  // Found in review (s25docs): a relative one was taken from the working directory, so every directory a command ran
  // in had its own data directory (a new owner and keys). The XDG Base Directory spec has it ignored as invalid.
  it('a relative XDG_DATA_HOME or XDG_CONFIG_HOME is ignored: the defaults under HOME', () => {
    const defaults = resolvePaths({ HOME: account });
    expect(resolvePaths({ HOME: account, XDG_DATA_HOME: 'reldata', XDG_CONFIG_HOME: './relconf' })).toEqual(defaults);
    expect(defaults.db).toBe(join(account, '.local', 'share', 'delegate', 'delegate.db'));
    expect(defaults.config).toBe(join(account, '.config', 'delegate', 'config.json'));
  });

  // Found in review (s31fault): an empty HOME was taken as is, so the data directory was .local/share/delegate under
  // the directory each command ran in; `status` printed that relative path.
  it('an empty or relative HOME is not taken: the account’s home from the user database, and nothing to pin', async () => {
    const defaults = resolvePaths({ HOME: account });
    expect(resolvePaths({ HOME: '' })).toEqual(defaults);
    expect(resolvePaths({ HOME: 'relhome' })).toEqual(defaults);
    for (const env of await emittedEnvs({ HOME: '' })) expect(env).toBeUndefined();
  });

  it('XDG_DATA_HOME=/x: status and the emitted entry both use /x/delegate', async () => {
    const status = fakeIo({ HOME: account, XDG_DATA_HOME: '/x' });
    await runCli(['status'], status);
    expect(status.out + status.err).toContain('/x/delegate/tokens.json');
    const desktop = fakeIo({ HOME: account, XDG_DATA_HOME: '/x' });
    expect(await runCli(['mcp-config', '--client', 'claude-desktop'], desktop)).toBe(0);
    expect(JSON.parse(desktop.out).mcpServers['calendar-agent'].env).toEqual({ XDG_DATA_HOME: '/x' });
  });
});

describe('mcp-config', () => {
  it('json: the stdio command and the remote URL', async () => {
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['mcp-config', '--agent-port', '9412'], io)).toBe(0);
    const { mcpServers } = JSON.parse(io.out);
    expect(mcpServers['calendar-agent']).toMatchObject({ type: 'stdio', command: process.execPath, env: { DELEGATE_HOME: home } });
    expect(mcpServers['calendar-agent'].args.slice(1)).toEqual(['serve-agent', '--stdio', '--agent-port', '9412']);
    expect(mcpServers['calendar-agent'].args[0]).toMatch(/bin\/delegate$/);
    expect(mcpServers['calendar-agent-http']).toEqual({ type: 'http', url: 'http://127.0.0.1:9412/mcp' });
  });

  // Found in review (s23local): an HTTP client set up as mcp-config suggested sent its bearer token to another user's
  // program that held the agent's port while `serve` was stopped. The stdio entry is recommended, on stderr, in one line.
  it('json and claude-code: one line on stderr recommends the stdio entry over the loopback URL; stdout stays the snippet', async () => {
    const line = `Prefer the stdio entry "calendar-agent" on a computer other people log in to: an HTTP client sends its access token to whatever program listens at http://127.0.0.1:9412/mcp, and while \`delegate serve\` is stopped any user of this computer may listen there (delegate's own commands check who listens; other MCP clients do not).`;
    for (const client of ['json', 'claude-code']) {
      const io = fakeIo({ DELEGATE_HOME: home });
      expect(await runCli(['mcp-config', '--client', client, '--agent-port', '9412'], io)).toBe(0);
      expect(io.err.split('\n'), client).toContain(line);
      expect(io.out, client).not.toContain('Prefer the stdio entry');
      if (client === 'json') expect(Object.keys(JSON.parse(io.out).mcpServers)).toEqual(['calendar-agent', 'calendar-agent-http']);
    }
  });

  it('claude-desktop: its config file’s shape, and its URL on stderr (as one a custom connector cannot reach)', async () => {
    const io = fakeIo({});
    expect(await runCli(['--profile', 'work', 'mcp-config', '--client', 'claude-desktop'], io)).toBe(0);
    const entry = JSON.parse(io.out).mcpServers['calendar-agent'];
    expect(entry.args.slice(1)).toEqual(['serve-agent', '--stdio', '--profile', 'work']);
    expect(entry.env).toBeUndefined();
    expect(io.err).toContain('http://127.0.0.1:8412/mcp');
  });

  it('carries the profile of DELEGATE_PROFILE as --profile does, and not the default one', async () => {
    const io = fakeIo({ DELEGATE_HOME: home, DELEGATE_PROFILE: 'work' });
    expect(await runCli(['mcp-config'], io)).toBe(0);
    expect(JSON.parse(io.out).mcpServers['calendar-agent'].args.slice(1)).toEqual(['serve-agent', '--stdio', '--profile', 'work']);

    const code = fakeIo({ DELEGATE_PROFILE: 'work' });
    expect(await runCli(['mcp-config', '--client', 'claude-code'], code)).toBe(0);
    expect(code.out).toMatch(/serve-agent --stdio --profile work$/m);

    const plain = fakeIo({ DELEGATE_PROFILE: 'default' });
    expect(await runCli(['mcp-config'], plain)).toBe(0);
    expect(JSON.parse(plain.out).mcpServers['calendar-agent'].args.slice(1)).toEqual(['serve-agent', '--stdio']);

    expect(await runCli(['mcp-config'], fakeIo({ DELEGATE_PROFILE: '../elsewhere' }))).toBe(2);
  });

  it('writes a relative DELEGATE_HOME as an absolute path, since the client resolves it elsewhere', async () => {
    const io = fakeIo({ DELEGATE_HOME: 'relhome' });
    expect(await runCli(['mcp-config'], io)).toBe(0);
    expect(JSON.parse(io.out).mcpServers['calendar-agent'].env).toEqual({ DELEGATE_HOME: join(process.cwd(), 'relhome') });
    const code = fakeIo({ DELEGATE_HOME: 'relhome' });
    expect(await runCli(['mcp-config', '--client', 'claude-code'], code)).toBe(0);
    expect(code.out).toContain(`--env DELEGATE_HOME=${join(process.cwd(), 'relhome')} `);
    // Every command sees the same absolute directory.
    const status = fakeIo({ DELEGATE_HOME: 'relhome' });
    await runCli(['status', '--json'], status);
    expect(JSON.parse(status.out).tokenCache).toBe(join(process.cwd(), 'relhome', 'tokens.json'));
  });

  it('claude-code: two claude mcp add commands', async () => {
    const io = fakeIo({});
    expect(await runCli(['mcp-config', '--client', 'claude-code'], io)).toBe(0);
    expect(io.out).toMatch(/^claude mcp add calendar-agent -- \S+ \S+bin\/delegate serve-agent --stdio$/m);
    expect(io.out).toMatch(/^claude mcp add --transport http calendar-agent-http http:\/\/127\.0\.0\.1:8412\/mcp$/m);
  });

  it('refuses an unknown client with exit 2', async () => {
    expect(await runCli(['mcp-config', '--client', 'vim'], fakeIo({}))).toBe(2);
  });
});

describe('the terminal', () => {
  function tty(env: Record<string, string | undefined> = {}, stdinTty = true): FakeIo {
    const io = fakeIo(env);
    return { ...io, stdin: { isTTY: stdinTty }, stderr: { write: (t: string) => void (io.err += t), isTTY: true }, get err() { return io.err; } } as FakeIo;
  }

  it('is interactive only when stdin and stderr are terminals', () => {
    expect(isInteractive(fakeIo())).toBe(false);
    expect(isInteractive(tty())).toBe(true);
    expect(isInteractive(tty({}, false))).toBe(false);
  });

  it('colours only a terminal, and never under NO_COLOR', () => {
    expect(colourOn(fakeIo())).toBe(false);
    expect(colourOn(tty())).toBe(true);
    expect(colourOn(tty({ NO_COLOR: '1' }))).toBe(false);
    expect(stylesFor(tty({ NO_COLOR: '1' })).bold('x')).toBe('x');
    expect(stylesFor(tty()).bold('x')).not.toBe('x');
  });

  it('spins on a terminal, and prints one plain line elsewhere', () => {
    const plain = fakeIo();
    startSpinner(plain, 'Waiting…').stop('done');
    expect(plain.err).toBe('Waiting…\ndone\n');

    const term = tty({ NO_COLOR: '1' });
    const spinner = startSpinner(term, 'Waiting…');
    spinner.stop('done');
    expect(term.err).toMatch(/^\r\u001b\[2K⠋ Waiting…/);
    expect(term.err.endsWith('\r\u001b[2Kdone\n')).toBe(true);
    expect(term.err).not.toMatch(/\u001b\[\d+m/); // NO_COLOR: no colour codes, only line control
  });

  // Found in review (regress21a): under TERM=dumb the spinner redrew `\r\x1b[2K⠋ …` ten times a second, control codes
  // such a terminal prints as they are; colour was already off there.
  it('prints one plain line on a dumb terminal, as elsewhere, and no control codes', async () => {
    const dumb = tty({ TERM: 'dumb' });
    const spinner = startSpinner(dumb, 'Waiting…');
    await new Promise((resolve) => setTimeout(resolve, 250));
    spinner.stop('done');
    expect(dumb.err).toBe('Waiting…\ndone\n');
    expect(colourOn(dumb)).toBe(false);
  });

  it('ends its line when stopped without a final line, on a terminal as elsewhere', () => {
    const plain = fakeIo();
    startSpinner(plain, 'Waiting for your approval…').stop();
    expect(plain.err).toBe('Waiting for your approval…\n');

    // stdin is not a terminal (a script), stderr is: the spinner runs, and its line must not be left open for the answer.
    const term = tty({ NO_COLOR: '1' }, false);
    startSpinner(term, 'Waiting for your approval…').stop();
    expect(term.err.endsWith('\r\u001b[2KWaiting for your approval…\n')).toBe(true);
  });
});
