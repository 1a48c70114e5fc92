// `npm run load`: a bounded load test on loopback (issue 6). The built CLI's
// three servers run as child processes (bench/support/stack.ts), so
// CalendarAgent's memory is its own; LOAD_CLIENTS (default 50) MCP clients
// sign in through the real authorization code flow, each with its own grant
// and access token, and all of them call find_slot at once, one call after
// another, for LOAD_SECONDS (default 30). Every call goes the whole way: the
// agent verifies the token (JWKS signature, claims, revocation list, scope),
// asks the calendar backend with a token it got by exchanging the caller's at
// the AS (RFC 8693; once per token, then cached until near expiry), the
// backend verifies that token, and both append to the audit log. A call
// counts only when it finds a slot.
//
// Then the agent's memory across runs: LOAD_ROUNDS (default 3) more rounds of
// LOAD_ROUND_SECONDS (default 10) against the same servers, each with
// LOAD_CLIENTS clients signed in anew (a new registration, grant and token
// each: what the agent keeps per token or client meets new keys every round)
// and new SDK clients and transports, and CalendarAgent's heap after a forced
// GC (it runs with --expose-gc) before the first round and after each. The
// first round is a warm-up, which also passes LOAD_FILL_TOKENS (default: the
// agent's exchanged-token cache's capacity and 10 % more) distinct tokens
// through the agent, one call each, so that what it keeps per token has
// reached its bound; the verdict is the slope of that heap against the
// calls of the rounds after it (bench/support/heap-verdict.ts: at most
// MAX_BYTES_PER_CALL, and no PASS below MIN_JUDGED_CALLS calls). Fails (exit
// 1) on any error, on a MISS, or when the rounds are too short to judge.
// Tokens live 10 minutes: keep the whole run shorter.
import { DEFAULT_EXCHANGE_CACHE_CAPACITY } from '../src/agent/exchange.js';
import { MAX_BYTES_PER_CALL, MIN_JUDGED_CALLS, heapVerdict } from './support/heap-verdict.js';
import { percentile, signInClients, throughput, type LoadResult } from './support/mcp-load.js';
import { report } from './support/measure.js';
import { exit } from './support/on-signal.js';
import { FIND_SLOT_ARGS, callRound, memoryRounds } from './support/memory-rounds.js';
import { mib, startStack } from './support/stack.js';

const CLIENTS = positive('LOAD_CLIENTS', 50);
const SECONDS = positive('LOAD_SECONDS', 30);
const ROUNDS = positive('LOAD_ROUNDS', 3);
const ROUND_SECONDS = positive('LOAD_ROUND_SECONDS', 10);
const FILL_TOKENS = Math.round(positive('LOAD_FILL_TOKENS', Math.ceil(DEFAULT_EXCHANGE_CACHE_CAPACITY * 1.1), true));

function positive(name: string, fallback: number, zeroAllowed = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !zeroAllowed)) {
    console.error(`${name} must be a ${zeroAllowed ? 'non-negative' : 'positive'} number, not ${raw}.`);
    process.exit(2);
  }
  return value;
}

function describe(result: LoadResult): Array<readonly [string, string, string?]> {
  return [
    ['calls that found a slot', String(result.ok), `of ${result.calls} made`],
    ['throughput', `${throughput(result).toFixed(1)} calls/s`],
    ['latency p50', `${percentile(result.latenciesMs, 50).toFixed(1)} ms`],
    ['latency p99', `${percentile(result.latenciesMs, 99).toFixed(1)} ms`],
    ['latency max', `${(result.latenciesMs.length > 0 ? Math.max(...result.latenciesMs) : Number.NaN).toFixed(1)} ms`],
    ['errors', String(result.errors), `target 0 ${result.errors === 0 ? 'PASS' : 'MISS'}`],
  ];
}

const stack = await startStack({ exposeGcInAgent: true });
let failed = false;
try {
  console.log(`servers: AS pid ${stack.auth.pid}, calendar backend pid ${stack.calendar.pid}, CalendarAgent pid ${stack.agent.pid} (each its own process, on 127.0.0.1); data directory ${stack.home}`);
  const signInStarted = Date.now();
  const signedIn = await signInClients(stack, CLIENTS);
  console.log(`${CLIENTS} MCP clients signed in through /register, the owner's sign-in link, /authorize, /consent and /token (code + PKCE) in ${((Date.now() - signInStarted) / 1000).toFixed(1)} s; each has its own grant and token`);
  const tokens = signedIn.map((c) => c.accessToken);

  const before = await stack.agent.memory({ gc: true, resetPeak: true });
  console.log(`\nload: ${CLIENTS} clients calling find_slot ${JSON.stringify(FIND_SLOT_ARGS)} concurrently for ${SECONDS} s`);
  const servers = [stack.agent, stack.calendar, stack.auth];
  const cpuBefore = servers.map((s) => s.cpuSeconds() ?? Number.NaN);
  const ownCpuBefore = process.cpuUsage();
  const main = await callRound(stack.agentUrl, tokens, SECONDS);
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
      `${((cpuUsed[i]! / Math.max(main.ok, 1)) * 1000).toFixed(2)} ms per call`,
    ]),
    ['load generator (this process) CPU time', `${((ownCpu.user + ownCpu.system) / 1e6).toFixed(1)} s`, `${((ownCpu.user + ownCpu.system) / 1e3 / Math.max(main.ok, 1)).toFixed(2)} ms per call`],
  ]);
  if (main.errors > 0) {
    failed = true;
    console.log(`  first errors: ${main.errorSamples.join(' | ')}`);
  }

  console.log(
    `\nmemory across runs: ${ROUNDS} rounds of ${ROUND_SECONDS} s, each with ${CLIENTS} clients signed in anew (registration, grant, token) and new SDK clients; ` +
      `CalendarAgent heap used after a forced GC; round 1 is a warm-up, which also passes ${FILL_TOKENS} more distinct tokens through the agent ` +
      `(its exchanged-token cache holds ${DEFAULT_EXCHANGE_CACHE_CAPACITY}), one call each; the rounds after it are judged`,
  );
  const phase = await memoryRounds({
    target: stack,
    clients: CLIENTS,
    rounds: ROUNDS,
    roundSeconds: ROUND_SECONDS,
    fill: FILL_TOKENS,
    // On a slower or busier machine a round of ROUND_SECONDS makes fewer calls: the judged rounds go on until they
    // have made MIN_JUDGED_CALLS between them, for at most six times as long.
    judged: { minCalls: ROUNDS > 1 ? Math.ceil(MIN_JUDGED_CALLS / (ROUNDS - 1)) : 0, capSeconds: ROUND_SECONDS * 6 },
    read: async () => {
      const reading = await stack.agent.memory({ gc: true });
      if (!reading.collected) throw new Error('CalendarAgent did not run with --expose-gc');
      return reading;
    },
  });
  const rows: Array<readonly [string, string, string?]> = [['after the main run', mib(phase.before.usage.heapUsed), `RSS ${mib(phase.before.vmRss)}`]];
  phase.rounds.forEach(({ result, after }, i) => {
    if (result.errors > 0) {
      failed = true;
      console.log(`  round ${i + 1}: ${result.errors} errors: ${result.errorSamples.join(' | ')}`);
    }
    rows.push([
      `after round ${i + 1}${i === 0 ? ' (warm-up)' : ''}`,
      mib(after.usage.heapUsed),
      `RSS ${mib(after.vmRss)}; ${result.ok} calls, ${throughput(result).toFixed(1)} calls/s, p99 ${percentile(result.latenciesMs, 99).toFixed(1)} ms, ${result.errors} errors`,
    ]);
  });
  const verdict = heapVerdict(
    [phase.before.usage.heapUsed, ...phase.rounds.map((r) => r.after.usage.heapUsed)],
    phase.rounds.map((r) => r.result.ok),
  );
  const slope = verdict.bytesPerCall === undefined ? 'n/a' : `${verdict.bytesPerCall.toFixed(1)} bytes per call`;
  rows.push([
    'heap growth after the warm-up (least-squares slope)',
    slope,
    `over ${verdict.judgedCalls} calls in rounds 2–${ROUNDS}; bound ${MAX_BYTES_PER_CALL} bytes per call, judged from ${MIN_JUDGED_CALLS} calls: ${verdict.result}`,
  ]);
  report(rows);
  if (verdict.result !== 'PASS') failed = true;
} finally {
  await stack.close();
}
exit(failed ? 1 : 0);
