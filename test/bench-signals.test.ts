// A benchmark stopped by SIGTERM (or Ctrl-C) cleans up before it exits: an
// exit by signal runs no `finally`, so `npm run bench -- startup` and
// `npm run load` left their data directory (the owner's key, tokens, the
// database) in /tmp, and the startup benchmark its `delegate serve`. Each is
// started shortened, as `npm run …` runs it (without npm), and stopped once
// its servers are up. Needs the build (`npm run build`), as they do.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { repoRoot } from './e2e/built.js';

/** The processes below `pid` now (from /proc's parent links), with their command lines. */
function descendants(pid: number): Map<number, string> {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const found = new Map<number, string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const [child, parent] of parentOf) {
      if (!found.has(child) && (parent === pid || found.has(parent))) {
        found.set(child, cmdline(child));
        grew = true;
      }
    }
  }
  return found;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Whether `pid` is alive with the same command line (not a reused pid). */
function alive(pid: number, was: string): boolean {
  return existsSync(`/proc/${pid}`) && cmdline(pid) === was;
}

async function stopOnceReady(script: string[], env: Record<string, string>, ready: RegExp): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...script], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
  const directory = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const m = ready.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`it exited before it was ready:\n${out}`)));
  });
  expect(existsSync(directory)).toBe(true);
  const below = descendants(child.pid!);
  expect([...below.values()].some((c) => c.includes('dist/cli/main.js') || c.includes('bin/delegate'))).toBe(true);
  child.kill('SIGTERM');
  expect(await exited, out).toEqual([143, null]);
  expect(existsSync(directory)).toBe(false);
  // What it started is gone: it waited for its servers. (esbuild's service, tsx's, ends when its parent has, so give
  // the process table a moment, bounded, before naming what is left.)
  for (let i = 0; i < 100 && [...below].some(([pid, was]) => alive(pid, was)); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  expect([...below].filter(([pid, was]) => alive(pid, was)).map(([, was]) => was)).toEqual([]);
}

it('npm run bench -- startup, stopped by SIGTERM once delegate serve is up: its data directory and serve are gone, exit 143', async () => {
  await stopOnceReady(['bench/run.ts', 'startup'], { BENCH_RUNS: '3', BENCH_WARMUPS: '0' }, /data directory (\S+)\), token cached/);
}, 90_000);

it('npm run load, stopped by SIGTERM once its servers are up: its data directory and servers are gone, exit 143', async () => {
  await stopOnceReady(['bench/load.ts'], { LOAD_CLIENTS: '2', LOAD_SECONDS: '1', LOAD_ROUNDS: '1', LOAD_ROUND_SECONDS: '1' }, /data directory (\S+)\n/);
}, 90_000);
