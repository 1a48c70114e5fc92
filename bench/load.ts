// `npm run load`: a bounded load test on loopback (issue 6). The built CLI's
// three servers run as child processes (bench/support/stack.ts), so
// CalendarAgent's memory is its own; LOAD_CLIENTS (default 50) MCP clients
// sign in through the real authorization code flow, each with its own grant
// and access token, and all of them call find_slot at once, one call after
// another, for LOAD_SECONDS (default 30). Every call goes the whole way: the
// agent verifies the token (JWKS signature, claims, revocation list, scope),
// exchanges it at the AS (RFC 8693; cached per token until near expiry, as
// the agent does), asks the calendar backend, which verifies the exchanged
// token, and both append to the audit log.
//
// Then the agent's memory across runs: LOAD_ROUNDS (default 3) more rounds of
// LOAD_ROUND_SECONDS (default 10) against the same servers, each with new SDK
// clients and transports, and CalendarAgent's heap after a forced GC (it runs
// with --expose-gc) before the first round and after each. Fails (exit 1) on
// any error or when that heap grows by more than LOAD_HEAP_TOLERANCE_MIB
// (default 2) plus 5 %. Tokens live 10 minutes: keep the whole run shorter.
import { mib, startStack, type BenchStack, type MemoryReading } from './support/stack.js';
import { connectMcp, percentile, runCalls, signInClients, type LoadResult } from './support/mcp-load.js';
import { report } from './support/measure.js';

const CLIENTS = positive('LOAD_CLIENTS', 50);
const SECONDS = positive('LOAD_SECONDS', 30);
const ROUNDS = positive('LOAD_ROUNDS', 3);
const ROUND_SECONDS = positive('LOAD_ROUND_SECONDS', 10);
const TOLERANCE_MIB = positive('LOAD_HEAP_TOLERANCE_MIB', 2);
const TOLERANCE_SHARE = 0.05;
const FIND_SLOT_ARGS = { duration: '30m' };

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`${name} must be a positive number, not ${raw}.`);
    process.exit(2);
  }
  return value;
}

async function round(stack: BenchStack, tokens: readonly string[], seconds: number): Promise<LoadResult> {
  const clients = await Promise.all(tokens.map((t, i) => connectMcp(stack.agentUrl, t, `load-client-${i}`)));
  try {
    return await runCalls(clients, 'find_slot', FIND_SLOT_ARGS, seconds);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

function describe(result: LoadResult): Array<readonly [string, string, string?]> {
  return [
    ['calls', String(result.calls)],
    ['throughput', `${(result.calls / result.seconds).toFixed(1)} calls/s`],
    ['latency p50', `${percentile(result.latenciesMs, 50).toFixed(1)} ms`],
    ['latency p99', `${percentile(result.latenciesMs, 99).toFixed(1)} ms`],
    ['latency max', `${Math.max(...result.latenciesMs).toFixed(1)} ms`],
    ['errors', String(result.errors), `target 0 ${result.errors === 0 ? 'PASS' : 'MISS'}`],
  ];
}

const stack = await startStack({ exposeGcInAgent: true });
let failed = false;
try {
  console.log(`servers: AS pid ${stack.auth.pid}, calendar backend pid ${stack.calendar.pid}, CalendarAgent pid ${stack.agent.pid} (each its own process, on 127.0.0.1)`);
  const signInStarted = Date.now();
  const signedIn = await signInClients(stack, CLIENTS);
  console.log(`${CLIENTS} MCP clients signed in through /register, the owner's sign-in link, /authorize, /consent and /token (code + PKCE) in ${((Date.now() - signInStarted) / 1000).toFixed(1)} s; each has its own grant and token`);
  const tokens = signedIn.map((c) => c.accessToken);

  const before = await stack.agent.memory({ gc: true, resetPeak: true });
  console.log(`\nload: ${CLIENTS} clients calling find_slot ${JSON.stringify(FIND_SLOT_ARGS)} concurrently for ${SECONDS} s`);
  const servers = [stack.agent, stack.calendar, stack.auth];
  const cpuBefore = servers.map((s) => s.cpuSeconds() ?? Number.NaN);
  const ownCpuBefore = process.cpuUsage();
  const main = await round(stack, tokens, SECONDS);
  const ownCpu = process.cpuUsage(ownCpuBefore);
  const cpuUsed = servers.map((s, i) => (s.cpuSeconds() ?? Number.NaN) - cpuBefore[i]!);
  const during = await stack.agent.memory({ resetPeak: true });
  const others = await Promise.all([stack.auth.memory(), stack.calendar.memory()]);
  report([
    ...describe(main),
    ['CalendarAgent heap used after GC, before', mib(before.usage.heapUsed)],
    ['CalendarAgent peak heap used (sampled every 50 ms)', mib(during.peakHeapUsed)],
    ['CalendarAgent peak RSS (VmHWM)', mib(during.vmHwm)],
    ['authorization server peak RSS (VmHWM)', mib(others[0].vmHwm)],
    ['calendar backend peak RSS (VmHWM)', mib(others[1].vmHwm)],
    ...servers.map((server, i): readonly [string, string, string] => [
      `${server.name} CPU time`,
      `${cpuUsed[i]!.toFixed(1)} s`,
      `${((cpuUsed[i]! / Math.max(main.calls, 1)) * 1000).toFixed(2)} ms per call`,
    ]),
    ['load generator (this process) CPU time', `${((ownCpu.user + ownCpu.system) / 1e6).toFixed(1)} s`, `${((ownCpu.user + ownCpu.system) / 1e3 / Math.max(main.calls, 1)).toFixed(2)} ms per call`],
  ]);
  if (main.errors > 0) {
    failed = true;
    console.log(`  first errors: ${main.errorSamples.join(' | ')}`);
  }

  console.log(`\nmemory across runs: ${ROUNDS} rounds of ${ROUND_SECONDS} s, new SDK clients each round; CalendarAgent heap used after a forced GC`);
  const heaps: MemoryReading[] = [await stack.agent.memory({ gc: true })];
  if (!heaps[0]!.collected) throw new Error('CalendarAgent did not run with --expose-gc');
  const rows: Array<readonly [string, string, string?]> = [['after the main run', mib(heaps[0]!.usage.heapUsed), `RSS ${mib(heaps[0]!.vmRss)}`]];
  let roundCalls = 0;
  for (let r = 1; r <= ROUNDS; r++) {
    const result = await round(stack, tokens, ROUND_SECONDS);
    roundCalls += result.calls;
    if (result.errors > 0) {
      failed = true;
      console.log(`  round ${r}: ${result.errors} errors: ${result.errorSamples.join(' | ')}`);
    }
    const reading = await stack.agent.memory({ gc: true });
    heaps.push(reading);
    rows.push([
      `after round ${r}`,
      mib(reading.usage.heapUsed),
      `RSS ${mib(reading.vmRss)}; ${result.calls} calls, ${(result.calls / result.seconds).toFixed(1)} calls/s, p99 ${percentile(result.latenciesMs, 99).toFixed(1)} ms, ${result.errors} errors`,
    ]);
  }
  const first = heaps[0]!.usage.heapUsed;
  const last = heaps[heaps.length - 1]!.usage.heapUsed;
  const growth = last - first;
  const allowed = TOLERANCE_MIB * 1024 * 1024 + TOLERANCE_SHARE * first;
  rows.push([
    'growth, main run → last round',
    `${(growth / 1024 / 1024).toFixed(2)} MiB`,
    `${(growth / Math.max(roundCalls, 1)).toFixed(1)} bytes per call over ${roundCalls} calls; tolerance ${(allowed / 1024 / 1024).toFixed(2)} MiB (${TOLERANCE_MIB} MiB + ${TOLERANCE_SHARE * 100} %) ${growth <= allowed ? 'PASS' : 'MISS'}`,
  ]);
  report(rows);
  if (growth > allowed) failed = true;
} finally {
  await stack.close();
}
process.exit(failed ? 1 : 0);
