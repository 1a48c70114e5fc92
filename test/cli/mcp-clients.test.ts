// What `mcp-config` and README tell an MCP client's user to run, run as that
// client would take it (review "readme", findings 1-3):
// - `mcp-config --client claude-code | sh`, with a `claude` on PATH that parses
//   `claude mcp add` as Claude Code does (commander: `add <name> <commandOrUrl>
//   [args...]`, `-e, --env <env...>` variadic, "Invalid environment variable
//   format" for a value without `=`): the server's name, every env value, the
//   command after `--`;
// - README's claude-code example is exactly what the command prints;
// - claude-desktop does not send a loopback URL to a custom connector (Claude
//   reaches those from Anthropic's servers);
// - README's and `token --help`'s MCP Inspector command pin the Inspector that
//   runs on Node 20 and has --header (the interop test runs it).
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_HOST, DEFAULT_PORTS, packageRoot } from '../../src/config.js';
import { mcpConfigCommand } from '../../src/cli/commands/mcp-config.js';
import { runCli } from '../../src/cli/program.js';
import { fakeIo } from './fake-io.js';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const readme = () => readFile(new URL('../../README.md', import.meta.url), 'utf8');

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-mcp-clients-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Added {
  name: string;
  commandOrUrl: string;
  args: string[];
  env: string[];
  transport?: string;
}

/** A `claude` on PATH whose `mcp add` parses its arguments as Claude Code's does, and records what it was given. */
async function fakeClaude(): Promise<{ path: string; added: () => Promise<Added[]> }> {
  const out = join(dir, 'added.jsonl');
  const script = `#!${process.execPath}
const { Command } = require(${JSON.stringify(require.resolve('commander'))});
const { appendFileSync } = require('node:fs');
const program = new Command('claude');
program
  .command('mcp')
  .command('add <name> <commandOrUrl> [args...]')
  .option('-s, --scope <scope>', 'scope', 'local')
  .option('-t, --transport <transport>', 'transport')
  .option('-e, --env <env...>', 'Set environment variables (e.g. -e KEY=value)')
  .option('-H, --header <header...>', 'headers')
  .action((name, commandOrUrl, args, options) => {
    for (const value of options.env ?? []) {
      if (!/^[^=]+=/.test(value)) {
        console.error('Invalid environment variable format: ' + value + ', environment variables should be added as: -e KEY1=value1 -e KEY2=value2');
        process.exit(1);
      }
    }
    appendFileSync(${JSON.stringify(out)}, JSON.stringify({ name, commandOrUrl, args, env: options.env ?? [], transport: options.transport }) + '\\n');
  });
program.parse();
`;
  await writeFile(join(dir, 'claude'), script);
  await chmod(join(dir, 'claude'), 0o755);
  return {
    path: `${dir}:${process.env.PATH ?? ''}`,
    added: async () => (await readFile(out, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Added),
  };
}

describe('mcp-config --client claude-code | sh, as Claude Code parses it', () => {
  const account = userInfo().homedir;
  it.each([
    ['DELEGATE_HOME, with a space and a quote in it', { HOME: account, DELEGATE_HOME: "/tmp/it's a home" }, ["DELEGATE_HOME=/tmp/it's a home"]],
    ['both XDG directories', { HOME: account, XDG_DATA_HOME: '/x data', XDG_CONFIG_HOME: '/y' }, ['XDG_DATA_HOME=/x data', 'XDG_CONFIG_HOME=/y']],
    ['nothing to pin', { HOME: account }, []],
  ] as const)('%s: the name first, one K=V per --env, the command after --', async (_name, env, expectedEnv) => {
    const io = fakeIo({ ...env });
    expect(await runCli(['--profile', 'work', 'mcp-config', '--client', 'claude-code', '--agent-port', '9412'], io)).toBe(0);
    const claude = await fakeClaude();
    const result = await run('sh', ['-c', io.out], { env: { PATH: claude.path } }).catch((error: { code?: number; stderr?: string }) => error);
    expect((result as { stderr?: string }).stderr ?? '').toBe('');
    const [stdio, http] = await claude.added();
    expect(stdio).toEqual({
      name: 'calendar-agent',
      commandOrUrl: process.execPath,
      args: [join(packageRoot(), 'bin', 'delegate'), 'serve-agent', '--stdio', '--agent-port', '9412', '--profile', 'work'],
      env: expectedEnv,
    });
    expect(http).toEqual({ name: 'calendar-agent-http', commandOrUrl: 'http://127.0.0.1:9412/mcp', args: [], env: [], transport: 'http' });
  });
});

// Found in review (regress16c): the stdio agent's advice quoted `'DELEGATE_HOME=/tmp/a b'` as one word, which a shell
// runs as a program instead of setting the variable.
describe('the `delegate login` the stdio agent advises, run by a shell', () => {
  it.each([
    ['DELEGATE_HOME with a space, a quote and a $', { DELEGATE_HOME: "/tmp/it's a $(home)" }, "/tmp/it's a $(home)"],
    ['nothing to pin', {}, ''],
  ] as const)('%s: sets the variables and passes the flags', async (_name, env, expectedHome) => {
    const { loginCommandLine } = await import('../../src/cli/commands/mcp-config.js');
    const io = fakeIo({ HOME: userInfo().homedir, ...env });
    const line = loginCommandLine({ ports: { ...DEFAULT_PORTS, agent: 9412 }, profile: 'work' }, io, ['--scope', 'busy:read']);
    // A stand-in `delegate` that says what it was started with.
    await writeFile(join(dir, 'delegate'), `#!/bin/sh\nprintf '%s\\n' "home=$DELEGATE_HOME" "$@"\n`);
    await chmod(join(dir, 'delegate'), 0o755);
    const { stdout } = await run('sh', ['-c', line], { env: { PATH: `${dir}:${process.env.PATH ?? ''}` } });
    expect(stdout.trim().split('\n')).toEqual([`home=${expectedHome}`, 'login', '--scope', 'busy:read', '--agent-port', '9412', '--profile', 'work']);
  });
});

describe('README, MCP clients', () => {
  it('shows exactly what mcp-config --client claude-code prints', async () => {
    const text = await readme();
    const example = /^ {6}\$ DELEGATE_HOME=(\S+) delegate mcp-config --client claude-code\n((?: {6}.*\n)+)/m.exec(text);
    expect(example, 'the claude-code example, with DELEGATE_HOME').not.toBeNull();
    const shown = example![2]!.replace(/^ {6}/gm, '');
    const io = fakeIo({ DELEGATE_HOME: example![1]! });
    expect(await mcpConfigCommand({ client: 'claude-code', ports: { ...DEFAULT_PORTS }, host: DEFAULT_HOST, nodePath: '/usr/bin/node' }, io)).toBe(0);
    expect(shown).toBe(io.out.replaceAll(join(packageRoot(), 'bin', 'delegate'), '/path/to/delegate/bin/delegate'));
  });

  it('does not offer the loopback URL as a Claude custom connector', async () => {
    const section = /## MCP clients\n([\s\S]*?)\n## /.exec(await readme())![1]!;
    for (const line of section.split('\n').filter((l) => /custom connector/i.test(l))) expect(line).not.toMatch(/Add custom connector/i);
  });
});

describe('mcp-config --client claude-desktop', () => {
  it('says the stdio config is the way, and that a custom connector cannot reach the loopback URL', async () => {
    const io = fakeIo({});
    expect(await runCli(['mcp-config', '--client', 'claude-desktop', '--agent-port', '9412'], io)).toBe(0);
    expect(io.err).toContain('claude_desktop_config.json');
    expect(io.err).not.toMatch(/Add custom connector/i);
    // Where the URL is named next to connectors, it is as one they cannot reach.
    for (const line of io.err.split('\n').filter((l) => l.includes('http://127.0.0.1:9412/mcp'))) {
      expect(line).toMatch(/custom connector/i);
      expect(line).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9412\/mcp/);
    }
  });
});

describe('MCP Inspector commands', () => {
  // The version the interop test runs (inspector-cli, a devDependency); `@modelcontextprotocol/inspector` of the same
  // version carries the same CLI. Unpinned, npm on Node 20 picks 0.15.0, which has no --header.
  const version = (require('@modelcontextprotocol/inspector-cli/package.json') as { version: string }).version;
  const pinned = `npx @modelcontextprotocol/inspector@${version} --cli `;

  it('README pins the version that runs on Node 20', async () => {
    // Its command lines (not the prose about them).
    const lines = (await readme()).split('\n').filter((l) => /^\s*npx\s+(-y\s+)?@modelcontextprotocol\/inspector/.test(l));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) expect(line.trim().startsWith(pinned), line).toBe(true);
  });

  it('`delegate token --help` shows the same command', async () => {
    const io = fakeIo({});
    expect(await runCli(['token', '--help'], io)).toBe(0);
    const lines = io.out.split('\n').filter((l) => l.includes('@modelcontextprotocol/inspector'));
    expect(lines).toHaveLength(1);
    expect(lines[0]!.trim().startsWith(pinned), lines[0]).toBe(true);
    expect(lines[0]).toContain('--header "Authorization: Bearer $(delegate token)"');
  });
});
