// delegate's three servers as the load test and the HTTP benchmarks run them:
// the built CLI (`delegate serve-auth`, `serve-calendar`, `serve-agent`), one
// child process each on free loopback ports, sharing a fresh data directory,
// so that each server's memory is its own. Each child is started with
// bench/support/heap-probe.mjs preloaded (and CalendarAgent with --expose-gc
// when asked), through which the parent reads its memory; /proc gives the
// peak resident set size. Needs `npm run build` first.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JWK } from 'jose';
import { loadOrCreateOwnerKey } from '../../src/client/owner-login.js';
import { freePort } from '../../test/support/ports.js';
import { cleanUpOnSignal } from './on-signal.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const PROBE = join(ROOT, 'bench', 'support', 'heap-probe.mjs');
const READY_WITHIN_MS = 20_000;

export interface MemoryReading {
  /** Whether a GC was forced before `usage` was read. */
  collected: boolean;
  /** Highest heapUsed sampled since the last reset (bytes). */
  peakHeapUsed: number;
  usage: NodeJS.MemoryUsage;
  /** From /proc/<pid>/status: the resident set now and its high-water mark (bytes). */
  vmRss: number | undefined;
  vmHwm: number | undefined;
}

export interface ServerProcess {
  name: string;
  pid: number;
  /** Asks the process for its memory (after a forced GC when `gc` and it runs with --expose-gc). */
  memory(options?: { gc?: boolean; resetPeak?: boolean }): Promise<MemoryReading>;
  /** CPU time (user + system) the process has used so far, in seconds, from /proc; undefined elsewhere. */
  cpuSeconds(): number | undefined;
}

export interface BenchStack {
  home: string;
  issuer: string;
  calendarUrl: string;
  agentUrl: string;
  ownerJwk: JWK;
  auth: ServerProcess;
  calendar: ServerProcess;
  agent: ServerProcess;
  /** Stops the three (SIGINT, then SIGKILL after 5 s) and removes the data directory; SIGTERM or SIGINT to this process does the same, then exits. */
  close(): Promise<void>;
}

export interface StackOptions {
  /** Start CalendarAgent with --expose-gc, so `memory({ gc: true })` can measure what survives a collection. */
  exposeGcInAgent?: boolean;
}

export async function startStack(options: StackOptions = {}): Promise<BenchStack> {
  if (!existsSync(CLI)) throw new Error('dist/cli/main.js is missing: run `npm run build` first.');
  const home = mkdtempSync(join(tmpdir(), 'delegate-bench-'));
  const [authPort, calendarPort, agentPort] = [await freePort(), await freePort(), await freePort()];
  const issuer = `http://127.0.0.1:${authPort}`;
  const calendarUrl = `http://127.0.0.1:${calendarPort}`;
  const agentUrl = `http://127.0.0.1:${agentPort}/mcp`;
  const children: Child[] = [];
  // Once: a signal's cleanup and the benchmark's own `finally` may both call it.
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      release();
      for (const child of [...children].reverse()) await child.stop();
      rmSync(home, { recursive: true, force: true });
    })());
  // SIGTERM or Ctrl-C while the benchmark runs: the servers stop and the data directory goes, as in `close`.
  const release = cleanUpOnSignal(close);
  try {
    // The AS first: it bootstraps the data directory (owner, resources, CalendarAgent's key and registration).
    const auth = startChild('authorization server', home, ['serve-auth', '--port', String(authPort), '--calendar-url', calendarUrl, '--agent-url', agentUrl], false);
    children.push(auth);
    await auth.ready(`${issuer}/.well-known/oauth-authorization-server`);
    const calendar = startChild('calendar backend', home, ['serve-calendar', '--port', String(calendarPort), '--auth-url', issuer], false);
    children.push(calendar);
    const agent = startChild(
      'CalendarAgent',
      home,
      ['serve-agent', '--port', String(agentPort), '--auth-url', issuer, '--calendar-url', calendarUrl],
      options.exposeGcInAgent === true,
    );
    children.push(agent);
    await Promise.all([calendar.ready(`${calendarUrl}/.well-known/oauth-protected-resource`), agent.ready(`http://127.0.0.1:${agentPort}/.well-known/oauth-protected-resource/mcp`)]);
    // The owner's login key, as the CLI creates it (the AS reads its public half at sign-in).
    const ownerJwk = await loadOrCreateOwnerKey(join(home, 'owner-key.json'));
    return { home, issuer, calendarUrl, agentUrl, ownerJwk, auth, calendar, agent, close };
  } catch (error) {
    await close();
    throw error;
  }
}

interface Child extends ServerProcess {
  ready(url: string): Promise<void>;
  stop(): Promise<void>;
}

function startChild(name: string, home: string, args: string[], exposeGc: boolean): Child {
  // The server's logs go to a file in the data directory: a pipe nobody reads would stall it.
  const log = openSync(join(home, `${args[0]}.log`), 'a');
  // BENCH_CPU_PROF=<dir>: each server writes a V8 CPU profile there when it stops (to find where a benchmark's time goes).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, `--cpu-prof-name=${args[0]}.cpuprofile`] : [];
  const nodeArgs = [...(exposeGc ? ['--expose-gc'] : []), ...profile, '--import', PROBE, CLI, ...args];
  const child: ChildProcess = spawn(process.execPath, nodeArgs, {
    cwd: ROOT,
    env: { ...process.env, DELEGATE_HOME: home },
    stdio: ['ignore', log, log, 'ipc'],
  });
  closeSync(log);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  let nextId = 0;
  const pending = new Map<number, (reading: Omit<MemoryReading, 'vmRss' | 'vmHwm'>) => void>();
  child.on('message', (m: { type?: string; id?: number } & Omit<MemoryReading, 'vmRss' | 'vmHwm'>) => {
    if (m.type === 'memory' && typeof m.id === 'number') pending.get(m.id)?.(m);
  });
  const pid = child.pid!;
  return {
    name,
    pid,
    async memory(options = {}) {
      const id = nextId++;
      const answer = new Promise<Omit<MemoryReading, 'vmRss' | 'vmHwm'>>((resolve, reject) => {
        const timer = setTimeout(() => (pending.delete(id), reject(new Error(`${name} did not report its memory`))), 10_000);
        pending.set(id, (reading) => (clearTimeout(timer), pending.delete(id), resolve(reading)));
      });
      child.send({ type: 'memory', id, gc: options.gc === true, resetPeak: options.resetPeak === true });
      const reading = await answer;
      return { ...reading, ...procStatus(pid) };
    },
    cpuSeconds: () => procCpuSeconds(pid),
    async ready(url) {
      const deadline = Date.now() + READY_WITHIN_MS;
      for (;;) {
        if (exited) throw new Error(`the ${name} exited while starting; see ${join(home, `${args[0]}.log`)}`);
        const ok = await fetch(url, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
        if (ok) return;
        if (Date.now() > deadline) throw new Error(`the ${name} did not answer ${url} within ${READY_WITHIN_MS} ms`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async stop() {
      if (exited) return;
      child.kill('SIGINT');
      const killed = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exit;
      clearTimeout(killed);
    },
  };
}

/** utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat, in clock ticks of 1/100 s on Linux). */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are plain.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** VmRSS and VmHWM of a process, from /proc (Linux); undefined elsewhere. */
function procStatus(pid: number): { vmRss: number | undefined; vmHwm: number | undefined } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) * 1024 : undefined;
    };
    return { vmRss: kb('VmRSS'), vmHwm: kb('VmHWM') };
  } catch {
    return { vmRss: undefined, vmHwm: undefined };
  }
}

export function mib(bytes: number | undefined): string {
  return bytes === undefined ? 'n/a' : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
