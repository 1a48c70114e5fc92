// Benchmark 1 of issue 6: the start-up of `delegate find-slot --json` with a
// valid cached token and the servers already running, against `node -e 0`
// measured in the same run. Starts `delegate serve` on ephemeral loopback
// ports with a temporary DELEGATE_HOME, signs in once as a person would (the
// CLI prints the link, a plain HTTP client follows it and approves the
// consent form), then times whole processes, interleaved so that a busy
// machine colours all of them alike. Target: at most 2.5×.
// Needs the build (`npm run build`): it runs the CLI as installed, bin/delegate.
// BENCH_RUNS (default 20) and BENCH_WARMUPS (default 3) change the counts;
// BENCH_COMPARE_BIN=<path to another build's bin/delegate> (e.g. an older
// commit's, built) times that one too, against the same servers and token.
// SIGTERM or Ctrl-C stops `delegate serve` and removes the data directory
// before the benchmark exits (at the end of the run being timed).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { delegateBin, repoRoot } from '../test/e2e/built.js';
import { approveInBrowser, killLeftovers, startCli } from '../test/e2e/run.js';
import { freePort } from '../test/support/ports.js';
import { formatMs, median, report } from './support/measure.js';
import { betweenRuns, cleanUpOnSignal } from './support/on-signal.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const WARMUPS = Number(process.env.BENCH_WARMUPS ?? 3);
const TARGET = 2.5;
/** No single run may take longer than this; the whole benchmark stays well under 2 minutes. */
const RUN_TIMEOUT_MS = 15_000;
const SERVE_TIMEOUT_MS = 30_000;

interface Variant {
  name: string;
  args: string[];
  /** Checks the run's output, so that a failing command is not timed as a fast one. */
  check?: (stdout: string) => boolean;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function timeRun(variant: Variant, env: NodeJS.ProcessEnv): number {
  const start = performance.now();
  const result = spawnSync(process.execPath, variant.args, { cwd: repoRoot, env, encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
  const ms = performance.now() - start;
  if (result.status !== 0 || (variant.check && !variant.check(result.stdout))) {
    throw new Error(`${variant.name} failed (${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`);
  }
  return ms;
}

function isSlotJson(stdout: string): boolean {
  try {
    const slot = JSON.parse(stdout) as { start?: unknown; end?: unknown; timeZone?: unknown };
    return typeof slot.start === 'string' && typeof slot.end === 'string' && typeof slot.timeZone === 'string';
  } catch {
    return false;
  }
}

if (!existsSync(join(repoRoot, 'dist/cli/main.js'))) {
  console.error('startup.bench: dist/ is missing; run `npm run build` first.');
  process.exit(2);
}

const dir = await mkdtemp(join(tmpdir(), 'delegate-bench-startup-'));
const home = join(dir, 'home');
const ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
const serve = startCli(['serve', ...ports], home);
const stop = async () => {
  serve.child.kill('SIGTERM');
  await Promise.race([serve.done, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  killLeftovers();
  await rm(dir, { recursive: true, force: true });
};
const release = cleanUpOnSignal(stop);
try {
  const deadline = Date.now() + SERVE_TIMEOUT_MS;
  while (!serve.stderr().includes('Press Ctrl-C')) {
    if (serve.child.exitCode !== null || Date.now() > deadline) throw new Error(`delegate serve did not start:\n${serve.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // Sign in once: the CLI prints the link (--no-browser), "the browser" approves, the token is cached.
  const first = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
  await approveInBrowser(await first.loginUrl);
  const signedIn = await first.done;
  if (signedIn.code !== 0) throw new Error(`the first find-slot (sign-in) failed:\n${signedIn.stderr}`);

  const env = { ...process.env, DELEGATE_HOME: home, NO_COLOR: '1' };
  const findSlot = ['find-slot', '--duration', '30m', '--json', ...ports];
  const variants: Variant[] = [
    { name: 'node -e 0', args: ['-e', '0'] },
    { name: 'delegate find-slot --json', args: [delegateBin, ...findSlot], check: isSlotJson },
    // Breakdown: the tsc output, module by module, on the same fast path; and the launcher's start-up alone.
    { name: '  same, unbundled (dist/cli/main.js)', args: [join(repoRoot, 'dist/cli/main.js'), ...findSlot], check: isSlotJson },
    { name: '  delegate --version (no request)', args: [delegateBin, '--version'] },
  ];
  const compare = process.env.BENCH_COMPARE_BIN;
  if (compare) variants.push({ name: `  same, ${compare}`, args: [compare, ...findSlot], check: isSlotJson });
  const times = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  console.log(`delegate serve ready (pid ${serve.child.pid}, data directory ${dir}), token cached; timing`);
  for (let round = 0; round < WARMUPS + RUNS; round++) {
    // Rotate the order each round, so that no variant always follows the same one.
    for (let i = 0; i < variants.length; i++) {
      const variant = variants[(round + i) % variants.length]!;
      const ms = timeRun(variant, env);
      if (round >= WARMUPS) times.get(variant.name)!.push(ms);
      // Between runs (never during one), a turn of the event loop: a SIGTERM's cleanup runs there.
      await betweenRuns();
    }
  }

  const baseline = median(times.get('node -e 0')!);
  const rows: Array<readonly [string, string, string?]> = [];
  for (const variant of variants) {
    const values = times.get(variant.name)!;
    const ratio = median(values) / baseline;
    rows.push([variant.name, formatMs(median(values)), `p90 ${formatMs(percentile(values, 90))}; ${ratio.toFixed(2)}× node -e 0`]);
  }
  const ratio = median(times.get('delegate find-slot --json')!) / baseline;
  rows.push(['find-slot / node -e 0', `${ratio.toFixed(2)}×`, `target ≤ ${TARGET}× ${ratio <= TARGET ? 'PASS' : 'MISS'}`]);
  console.log(`start-up: whole processes, median and p90 of ${RUNS} runs each after ${WARMUPS} warm-ups, interleaved; servers running, token cached`);
  report(rows);
} finally {
  release();
  await stop();
}
