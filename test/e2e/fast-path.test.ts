// The fast path that start-up time is measured on: with the servers already
// running (`delegate serve`) and a valid cached token, find-slot loads none
// of the servers' code (fastify, better-sqlite3, pino) nor the sign-in
// machinery (jose, open), and sends no request to the authorization server.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { delegateBin, repoRoot } from './built.js';
import { approveInBrowser, killLeftovers, startCli } from './run.js';

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

describe('find-slot on the fast path', () => {
  it('loads neither the servers nor the sign-in code when the servers run and the token is cached', { timeout: 60_000 }, async () => {
    const serve = startCli(['serve', ...ports], home);
    while (!serve.stderr().includes('Press Ctrl-C')) {
      if (serve.child.exitCode !== null) throw new Error(`delegate serve exited:\n${serve.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
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
    expect(loaded.some((url) => url.includes('/dist/cli/main.js'))).toBe(true); // the trace works
    for (const heavy of ['/node_modules/fastify/', '/node_modules/better-sqlite3/', '/node_modules/pino/', '/node_modules/jose/', '/node_modules/open/']) {
      expect(loaded.filter((url) => url.includes(heavy))).toEqual([]);
    }
    for (const own of ['/dist/authz/', '/dist/store/', '/dist/agent/', '/dist/client/sign-in.js', '/dist/client/loopback.js']) {
      expect(loaded.filter((url) => url.includes(own))).toEqual([]);
    }
    expect(tokenRequests()).toBe(tokenRequestsBefore);
  });
});
