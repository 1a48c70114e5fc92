// The fast path that start-up time is measured on: with the servers already
// running (`delegate serve`) and a valid cached token, find-slot loads none
// of the servers' code (fastify, better-sqlite3, pino) nor the sign-in
// machinery (jose, open), and sends no request to the authorization server.
// Nor does it load the MCP SDK: the quick call speaks the three messages
// itself. bin/delegate runs the bundle (dist/bundle/, scripts/bundle.mjs): the
// files it loads are mapped to the sources they hold through esbuild's metafile.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { delegateBin, repoRoot } from './built.js';
import { approveInBrowser, killLeftovers, startCli, startServer } from './run.js';

const traceHook = fileURLToPath(new URL('./module-trace/register.mjs', import.meta.url));
let dir: string;
let home: string;
let ports: string[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-e2e-fast-'));
  home = join(dir, 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
});

afterEach(async () => {
  killLeftovers();
  await rm(dir, { recursive: true, force: true });
});

/** The sources (as esbuild names them, e.g. src/client/session.ts) that the loaded files of the bundle hold. */
async function bundledSources(loaded: string[]): Promise<string[]> {
  const meta = JSON.parse(await readFile(join(repoRoot, 'dist/bundle/meta.json'), 'utf8')) as { outputs: Record<string, { inputs: Record<string, unknown> }> };
  const sources = new Set<string>();
  for (const url of loaded) {
    if (!url.startsWith('file:')) continue;
    const output = relative(repoRoot, fileURLToPath(url)).split(sep).join('/');
    for (const input of Object.keys(meta.outputs[output]?.inputs ?? {})) sources.add(input);
  }
  return [...sources];
}

describe('find-slot on the fast path', () => {
  it('loads neither the servers nor the sign-in code when the servers run and the token is cached', { timeout: 60_000 }, async () => {
    const serve = await startServer(['serve', ...ports], home);
    const first = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
    await approveInBrowser(await first.loginUrl);
    expect((await first.done).code).toBe(0);
    const tokenRequests = () => serve.stderr().split('\n').filter((l) => l.includes('"path":"/token"')).length;
    const tokenRequestsBefore = tokenRequests();
    expect(tokenRequestsBefore).toBeGreaterThan(0); // the count works

    const trace = join(dir, 'modules.txt');
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, ['--import', traceHook, delegateBin, 'find-slot', '--duration', '30m', '--json', ...ports], {
        cwd: repoRoot,
        env: { ...process.env, DELEGATE_HOME: home, MODULE_TRACE: trace },
        stdio: 'ignore',
      });
      child.on('exit', resolve);
    });
    expect(code).toBe(0);
    const loaded = (await readFile(trace, 'utf8')).split('\n').filter(Boolean);
    expect(loaded.some((url) => url.endsWith('/dist/bundle/delegate.mjs'))).toBe(true); // the trace works, on the bundle
    expect(loaded.filter((url) => url.includes('/dist/') && !url.includes('/dist/bundle/'))).toEqual([]); // nothing from tsc's output
    for (const heavy of ['/node_modules/fastify/', '/node_modules/better-sqlite3/', '/node_modules/pino/', '/node_modules/jose/', '/node_modules/open/']) {
      expect(loaded.filter((url) => url.includes(heavy))).toEqual([]);
    }
    const sources = await bundledSources(loaded);
    expect(sources).toContain('src/client/quick-call.ts'); // the mapping works
    for (const own of ['src/authz/', 'src/store/', 'src/agent/', 'src/calendar/server.ts', 'src/cli/stack.ts', 'src/cli/servers.ts', 'src/client/sign-in.ts', 'src/client/loopback.ts']) {
      expect(sources.filter((source) => source.startsWith(own))).toEqual([]);
    }
    // Nor the MCP SDK (and its zod schemas): a cached token takes the quick call (src/client/quick-call.ts).
    expect(sources.filter((source) => source.includes('/@modelcontextprotocol/sdk/') || source.includes('/zod/'))).toEqual([]);
    expect(sources).not.toContain('src/client/session.ts');
    expect(tokenRequests()).toBe(tokenRequestsBefore);
  });
});
