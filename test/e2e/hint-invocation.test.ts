// The command lines hints tell a person to copy run as delegate was installed (review s27mcp, finding 2): README's
// install (`npm install && npx delegate …`) puts no `delegate` on PATH, so a hint saying `delegate approve …` or
// `DELEGATE_HOME=… delegate login …` failed in their shell with "command not found" (127). Each hint starts with what
// runs this delegate there (src/cli/invocation.ts): bare `delegate` when PATH's `delegate` is this launcher (npm link),
// else `node /…/bin/delegate`. Checked by running the hinted command (its `--version` form) from a shell with that
// PATH: the CLI's mcp-config line and the authorization server's sign-in page, both on the built CLI.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

  it('names `node /…/bin/delegate approve …` when the server’s PATH has no `delegate`, and that command runs', async () => {
    const client = await registerPublicClient(issuer);
    const href = authorizeUrl(issuer, { clientId: client, redirectUri: 'http://127.0.0.1/callback', resource: agentUrl, challenge: pkcePair().challenge });
    const res = await new Browser().get(href);
    expect(res.status).toBe(403);
    const code = /<pre><code>([^<]*)<\/code><\/pre>/.exec(res.html)?.[1]?.replace(/&#39;/g, "'").replace(/&amp;/g, '&');
    expect(code).toMatch(new RegExp(`^node ${delegateBin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} approve --auth-port ${new URL(issuer).port} '`));
    const ran = shell(`cd / && ${code!.split(' approve ')[0]} --version`, bare);
    expect([ran.status, ran.stdout.trim()]).toEqual([0, version]);
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
