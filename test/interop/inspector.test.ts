// MCP Inspector's CLI (@modelcontextprotocol/inspector-cli, unmodified) lists
// and calls find_slot over Streamable HTTP with the header a person would
// give it: --header "Authorization: Bearer $(delegate token)".
import { execFile } from 'node:child_process';
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
