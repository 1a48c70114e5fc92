// The command lines hints tell a person to copy run as delegate was installed (review s27mcp, finding 2): README's
// install (`npm install && npx delegate …`) puts no `delegate` on PATH, so a hint saying `delegate approve …` or
// `DELEGATE_HOME=… delegate login …` failed in their shell with "command not found" (127). Each hint starts with what
// runs this delegate there (src/cli/invocation.ts): bare `delegate` when PATH's `delegate` is this launcher (npm link),
// else `node /…/bin/delegate`. Checked by running the hinted command (its `--version` form) from a shell with that
// PATH: the CLI's mcp-config line and the authorization server's sign-in page, both on the built CLI.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { Browser, authorizeUrl, pkcePair, registerPublicClient } from '../support/oauth-flow.js';
import { fakeIo } from '../cli/fake-io.js';
import { delegateBin } from './built.js';
import { startCli, startServer, stopServeAndRemove, type Running } from './run.js';

const version = (JSON.parse(readFileSync(join(delegateBin, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

let root: string;
/** A PATH as README's install leaves it: `node` (this one) and the system's tools, no `delegate`. */
let bare: string;
/** The same after `npm link`: this launcher as `delegate`, first. */
let linked: string;
/** Another program named `delegate` first on PATH. */
let other: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'delegate-hint-'));
  const nodeDir = join(root, 'node-bin');
  const linkDir = join(root, 'link-bin');
  const otherDir = join(root, 'other-bin');
  for (const [dir, name, target] of [
    [nodeDir, 'node', process.execPath],
    [linkDir, 'delegate', delegateBin],
  ] as const) {
    mkdirSync(dir);
    symlinkSync(target, join(dir, name));
  }
  mkdirSync(otherDir);
  writeFileSync(join(otherDir, 'delegate'), '#!/bin/sh\necho not this delegate\n', { mode: 0o755 });
  bare = [nodeDir, '/usr/bin', '/bin'].join(':');
  linked = [linkDir, bare].join(':');
  other = [otherDir, bare].join(':');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Runs `line` as a person pastes it, in sh with this PATH. */
function shell(line: string, path: string) {
  return spawnSync('/bin/sh', ['-c', line], { env: { PATH: path, HOME: root }, encoding: 'utf8', timeout: 20_000 });
}

/** mcp-config's approve line (stderr of `--client json`), run with PATH `path`: the command before ` approve `. */
async function approvePrefix(path: string): Promise<string> {
  const home = mkdtempSync(join(root, 'home-'));
  const run = await startCli(['mcp-config', '--client', 'json', '--auth-port', String(await freePort())], home, { env: { PATH: path } }).done;
  expect(run.code).toBe(0);
  const line = /approve their request with `DELEGATE_HOME=\S+ (.*?) approve '<the URL it opens>' --auth-port \d+`/.exec(run.stderr);
  expect(line, run.stderr).not.toBeNull();
  return line![1]!;
}

describe('mcp-config’s approve line', () => {
  it('without `delegate` on PATH (npm install, npx delegate): node and the launcher’s absolute path, which runs from a shell there', async () => {
    expect(shell('delegate --version', bare).status).toBe(127);
    const prefix = await approvePrefix(bare);
    expect(prefix).toBe(`node ${delegateBin}`);
    const ran = shell(`cd / && ${prefix} --version`, bare);
    expect([ran.status, ran.stdout.trim()]).toEqual([0, version]);
  });

  it('with this launcher as `delegate` on PATH (npm link): plain `delegate`, which runs', async () => {
    expect(await approvePrefix(linked)).toBe('delegate');
    const ran = shell('cd / && delegate --version', linked);
    expect([ran.status, ran.stdout.trim()]).toEqual([0, version]);
  });

  it('with another program named `delegate` first on PATH: not that one, but this launcher’s path', async () => {
    expect(await approvePrefix(other)).toBe(`node ${delegateBin}`);
  });
});

describe('the authorization server’s sign-in page, for an MCP client’s request', () => {
  let home: string;
  let serve: Running | undefined;
  let issuer: string;
  let agentUrl: string;

  beforeAll(async () => {
    // Inside a directory of its own: stopServeAndRemove removes the one above it.
    home = join(mkdtempSync(join(tmpdir(), 'delegate-hint-serve-')), 'home');
    const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
    issuer = `http://127.0.0.1:${auth}`;
    agentUrl = `http://127.0.0.1:${agent}/mcp`;
    serve = await startServer(['serve', '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], home, { env: { PATH: bare } });
  });
  afterAll(async () => stopServeAndRemove(serve, home));

  // Found in review (s27hint): the page left out the data directory, so `… approve` pasted in a shell without
  // DELEGATE_HOME exited 1 ("run from another data directory").
  it('names `DELEGATE_HOME=… node /…/bin/delegate approve …` when the server’s PATH has no `delegate`, and that command runs on the server’s data directory', async () => {
    const client = await registerPublicClient(issuer);
    const href = authorizeUrl(issuer, { clientId: client, redirectUri: 'http://127.0.0.1/callback', resource: agentUrl, challenge: pkcePair().challenge });
    const res = await new Browser().get(href);
    expect(res.status).toBe(403);
    const code = /<pre><code>([^<]*)<\/code><\/pre>/.exec(res.html)?.[1]?.replace(/&#39;/g, "'").replace(/&amp;/g, '&');
    expect(code).toMatch(new RegExp(`^DELEGATE_HOME='?${escaped(home)}'? node ${escaped(delegateBin)} approve --auth-port ${new URL(issuer).port} '`));
    const prefix = code!.split(' approve ')[0]!;
    const ran = shell(`cd / && ${prefix} --version`, bare);
    expect([ran.status, ran.stdout.trim()]).toEqual([0, version]);
    // In a shell with no DELEGATE_HOME (HOME another directory), the line reaches the server's data directory: its owner.
    const listed = shell(`cd / && ${prefix} users list --json`, bare);
    expect(listed.status, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ owner?: boolean; name: string }>).length).toBeGreaterThan(0);
    // The other commands of the pages say the same.
    expect(res.html).not.toMatch(/<code>delegate /);
  });

  it('adds nothing before the command for the default data directory', async () => {
    const { sameDataDelegateCommand } = await import('../../src/cli/commands/mcp-config.js');
    expect(sameDataDelegateCommand({ PATH: bare, HOME: userInfo().homedir })).toBe(`node ${delegateBin}`);
    expect(sameDataDelegateCommand({ PATH: linked, HOME: userInfo().homedir })).toBe('delegate');
  });
});

describe('the stdio agent’s `delegate login` (loginCommandLine, what its tool answers name)', () => {
  it('without `delegate` on PATH: node and the launcher’s path, and that line runs', async () => {
    const { loginCommandLine } = await import('../../src/cli/commands/mcp-config.js');
    const home = join(root, 'stdio home');
    const line = loginCommandLine({ ports: { auth: 18710, calendar: 18711, agent: 18712 } }, fakeIo({ DELEGATE_HOME: home, PATH: bare }));
    expect(line).toBe(`DELEGATE_HOME='${home}' node ${delegateBin} login --auth-port 18710 --calendar-port 18711 --agent-port 18712`);
    const ran = shell(`cd / && ${line.replace(/ login .*$/, ' --version')}`, bare);
    expect([ran.status, ran.stdout.trim()]).toEqual([0, version]);
  });
});

describe('an authorization server published at an https URL', () => {
  it('shows plain `delegate` on its pages, never this computer’s paths, whatever command it was given', async () => {
    const { buildAuthServer } = await import('../../src/authz/index.js');
    const { openStore } = await import('../../src/store/index.js');
    const store = openStore(join(mkdtempSync(join(root, 'https-')), 'delegate.db'));
    const app = await buildAuthServer({ issuer: 'https://auth.example.com', store, sweepIntervalMs: 0, delegateCommand: () => `node ${delegateBin}` });
    try {
      const page = await app.inject({ method: 'GET', url: '/grants', headers: { host: 'auth.example.com' } });
      expect(page.statusCode).toBe(403);
      expect(page.body).toContain('<code>delegate users add &lt;name&gt;</code>');
      expect(page.body).not.toContain(delegateBin);
      const link = await app.inject({ method: 'GET', url: '/login/owner', headers: { host: 'auth.example.com' } });
      expect(link.body).toContain('Run delegate login again');
      expect(link.body).not.toContain(delegateBin);
    } finally {
      await app.close();
      store.close();
    }
  });
});

// Found in review (s27hint): hints still written with a bare `delegate`, some beside the new form in one line. With a
// grant limited to "travel", `calendar add work` run with no `delegate` on PATH said `node /…/bin/delegate grants
// revoke grt_…` and then a bare `delegate login`.
describe('the CLI’s other hints, without `delegate` on PATH', () => {
  const ICS = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN', 'END:VCALENDAR', ''].join('\r\n');
  const cli = (home: string, args: string[]) => startCli(args, home, { env: { PATH: bare } }).done;

  it('calendar add, for a delegation that does not see the new calendar: both commands it names run', async () => {
    const home = join(mkdtempSync(join(root, 'cal-')), 'home');
    const ics = join(root, 'plain.ics');
    writeFileSync(ics, ICS);
    expect((await cli(home, ['calendar', 'add', 'travel', ics])).code).toBe(0);
    const { openStore } = await import('../../src/store/index.js');
    const { resolvePaths } = await import('../../src/config.js');
    const store = openStore(resolvePaths({ DELEGATE_HOME: home }).db);
    try {
      const owner = (await store.ownerUser())!;
      const now = Date.now();
      await store.createClient({ clientId: 'cli_hint', clientName: 'hint app', kind: 'public', secretHash: null, redirectUris: ['http://127.0.0.1/cb'], grantTypes: ['authorization_code'], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: now });
      const detail = { type: 'calendar', locations: ['http://127.0.0.1:8411'], actions: ['read'], calendars: ['travel'] };
      await store.createGrant({ id: 'grt_hint', userId: owner.id, clientId: 'cli_hint', resource: 'http://127.0.0.1:8412/mcp', scope: 'slots:find', authorizationDetails: [detail], maxDepth: 1, createdAt: now, expiresAt: now + 86_400_000, revokedAt: null });
    } finally {
      store.close();
    }
    const added = await cli(home, ['calendar', 'add', 'work', ics]);
    expect(added.code, added.stderr).toBe(0);
    const hint = /end it \(`([^`]*)`\) and sign in again \(`([^`]*)`, or from its app\)/.exec(added.stderr);
    expect(hint, added.stderr).not.toBeNull();
    expect([hint![1], hint![2]]).toEqual([`node ${delegateBin} grants revoke grt_hint`, `node ${delegateBin} login`]);
    expect(added.stderr).not.toMatch(/`delegate /);
    // Their harmless forms, in the shell that ran the command (its DELEGATE_HOME): the grant shown, login's help.
    const shown = shell(`cd / && DELEGATE_HOME='${home}' ${hint![1]!.replace(' revoke ', ' show ')}`, bare);
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('grt_hint');
    const help = shell(`cd / && DELEGATE_HOME='${home}' ${hint![2]} --help`, bare);
    expect(help.status, help.stderr).toBe(0);
  });

  it('users remove and users add --replace, refused for the local owner: the command they name runs', async () => {
    const home = join(mkdtempSync(join(root, 'users-')), 'home');
    const ics = join(root, 'plain.ics');
    writeFileSync(ics, ICS);
    expect((await cli(home, ['calendar', 'add', 'travel', ics])).code).toBe(0);
    const owner = systemOwnerName(home);
    const removed = await cli(home, ['users', 'remove', owner, '--yes']);
    expect(removed.code).toBe(1);
    expect(removed.stderr).toContain(`(\`node ${delegateBin} grants revoke\` ends its delegations)`);
    const replaced = startCli(['users', 'add', owner, '--replace'], home, { env: { PATH: bare }, stdin: 'a long and secret password\n' });
    const refused = await replaced.done;
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`signs in with \`node ${delegateBin} login\``);
    const listed = shell(`cd / && DELEGATE_HOME='${home}' node ${delegateBin} grants list`, bare);
    expect(listed.status, listed.stderr).toBe(0);
  });

  it('a start that moved CalendarAgent: the audit command it names', async () => {
    const { agentMoveNotice } = await import('../../src/cli/servers.js');
    const notice = agentMoveNotice({ from: 'http://127.0.0.1:1/mcp', to: 'http://127.0.0.1:2/mcp', grantsRevoked: 1 }, { PATH: bare });
    expect(notice).toContain(`(\`node ${delegateBin} audit\` lists them as grant_revoked)`);
  });

  it('keys rotate before any server ran: the serve command it names', async () => {
    const home = join(mkdtempSync(join(root, 'keys-')), 'home');
    const run = await cli(home, ['keys', 'rotate']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`(node ${delegateBin} serve)`);
  });
});

/** The local owner's name, as `users list --json` says. */
function systemOwnerName(home: string): string {
  const listed = shell(`DELEGATE_HOME='${home}' node ${delegateBin} users list --json`, bare);
  expect(listed.status, listed.stderr).toBe(0);
  const owner = (JSON.parse(listed.stdout) as Array<{ name: string; owner?: boolean; local_owner?: boolean }>)[0];
  return owner!.name;
}
