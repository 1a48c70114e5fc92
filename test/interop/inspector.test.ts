// MCP Inspector's CLI (@modelcontextprotocol/inspector-cli, unmodified) lists
// and calls find_slot over Streamable HTTP with the header a person would
// give it: --header "Authorization: Bearer $(delegate token)".
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approveInBrowser, runCli, startCli } from '../e2e/run.js';
import { startServers, type Servers } from './support.js';

const run = promisify(execFile);
const inspectorCli = join(dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/inspector-cli/package.json')), 'build', 'index.js');
let servers: Servers;
let token: string;

beforeAll(async () => {
  servers = await startServers();
  const login = startCli(['login', '--no-browser', ...servers.ports], servers.home);
  await approveInBrowser(await login.loginUrl);
  if ((await login.done).code !== 0) throw new Error('login failed');
  token = (await runCli(['token', ...servers.ports], servers.home)).stdout.trim();
}, 60_000);

afterAll(async () => {
  await servers?.stop();
});

/** Runs the inspector; its working directory is its own build/ (it finds its package.json from there). */
async function inspector(args: string[], withToken = true): Promise<unknown> {
  const header = withToken ? ['--header', `Authorization: Bearer ${token}`] : [];
  try {
    const { stdout } = await run(process.execPath, [inspectorCli, servers.agentUrl, '--transport', 'http', ...header, ...args], {
      timeout: 30_000,
      cwd: dirname(inspectorCli),
    });
    return JSON.parse(stdout);
  } catch (error) {
    // The command line carries the token: say what failed without it.
    const { code, stderr } = error as { code?: unknown; stderr?: string };
    throw new Error(`inspector-cli ${args.join(' ')} failed (${String(code)}): ${String(stderr ?? '').replaceAll(token, '<token>').slice(0, 500)}`);
  }
}

describe('MCP Inspector CLI with $(delegate token)', () => {
  it('lists find_slot', async () => {
    const listed = (await inspector(['--method', 'tools/list'])) as { tools: Array<{ name: string }> };
    expect(listed.tools.map((t) => t.name)).toEqual(['find_slot', 'list_busy']);
  });

  it('calls find_slot', async () => {
    const called = (await inspector(['--method', 'tools/call', '--tool-name', 'find_slot', '--tool-arg', 'duration=45m'])) as {
      isError?: boolean;
      structuredContent: { found: boolean; start: string; end: string };
    };
    expect(called.isError).toBeFalsy();
    expect(called.structuredContent.found).toBe(true);
    expect(Date.parse(called.structuredContent.end) - Date.parse(called.structuredContent.start)).toBe(45 * 60_000);
  });

  it('is refused without the token', async () => {
    await expect(inspector(['--method', 'tools/list'], false)).rejects.toThrow(/invalid_token/);
  });
});

/**
 * README's MCP Inspector command lines (continuations joined), as words, with
 * `$(delegate token)` given the token: what the shell hands npx.
 */
function readmeInspectorCommands(): string[][] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').replace(/\\\n\s*/g, '');
  return readme
    .split('\n')
    .filter((line) => /^\s*npx\s+@modelcontextprotocol\/inspector/.test(line))
    .map((line) => [...line.trim().matchAll(/"([^"]*)"|(\S+)/g)].map((m) => (m[1] ?? m[2]!).replaceAll('$(delegate token)', token)));
}

describe("README's MCP Inspector commands, as written", () => {
  const version = (createRequire(import.meta.url)('@modelcontextprotocol/inspector-cli/package.json') as { version: string }).version;

  it('list the tools and call find_slot with the Inspector CLI of the pinned version', async () => {
    const commands = readmeInspectorCommands();
    expect(commands.map((words) => words[words.indexOf('--method') + 1])).toEqual(['tools/list', 'tools/call']);
    const answers: unknown[] = [];
    for (const words of commands) {
      // npx @modelcontextprotocol/inspector@<version> --cli <url> …: that version's CLI, given the rest, with the URL of this test's servers.
      expect(words.slice(0, 3)).toEqual(['npx', `@modelcontextprotocol/inspector@${version}`, '--cli']);
      expect(words[3]).toBe('http://127.0.0.1:8412/mcp');
      const args = [servers.agentUrl, ...words.slice(4)];
      try {
        const { stdout } = await run(process.execPath, [inspectorCli, ...args], { timeout: 30_000, cwd: dirname(inspectorCli) });
        answers.push(JSON.parse(stdout));
      } catch (error) {
        const { code, stderr } = error as { code?: unknown; stderr?: string };
        throw new Error(`README's inspector command failed (${String(code)}): ${String(stderr ?? '').replaceAll(token, '<token>').slice(0, 500)}`);
      }
    }
    const [listed, called] = answers as [{ tools: Array<{ name: string }> }, { isError?: boolean; structuredContent: { found: boolean; start: string; end: string } }];
    expect(listed.tools.map((t) => t.name)).toContain('find_slot');
    expect(called.isError).toBeFalsy();
    expect(called.structuredContent.found).toBe(true);
    expect(Date.parse(called.structuredContent.end) - Date.parse(called.structuredContent.start)).toBe(30 * 60_000);
  });
});
