// The find_slot load loop (bench/support/mcp-load.ts, runCalls) counts only
// calls that found a slot. It pushed every call's latency, failed or not, and
// took calls = latencies, so the benchmarks' throughput and percentiles
// counted fast failures as calls, and an answer was never checked to be a
// slot. Against the benchmark's bare route (bench/support/bare-route.ts) on
// loopback, replaying a tool error, a "no slot found" answer, and a slot.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { connectMcp, runCalls, throughput } from '../bench/support/mcp-load.js';

const scratch = mkdtempSync(join(tmpdir(), 'delegate-mcp-load-test-'));
const routes: ChildProcess[] = [];
afterAll(() => {
  for (const child of routes) child.kill('SIGTERM');
  rmSync(scratch, { recursive: true, force: true });
});

const initialize = { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'recorded', version: '1' } };

/** The bare route in its own process, answering every tools/call with `toolResult`; resolves with its URL. */
async function bareRoute(name: string, toolResult: unknown): Promise<string> {
  const recorded = join(scratch, `${name}.json`);
  writeFileSync(recorded, JSON.stringify({ initialize, toolResult }));
  const script = fileURLToPath(new URL('../bench/support/bare-route.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, recorded], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  routes.push(child);
  let out = '';
  for await (const chunk of child.stdout!) {
    out += String(chunk);
    if (out.includes('\n')) break;
  }
  return out.trim();
}

async function callFor(url: string, seconds: number, more?: { minCalls: number; capSeconds: number }) {
  const clients = await Promise.all([0, 1].map((i) => connectMcp(url, undefined, `c${i}`)));
  try {
    return await runCalls(clients, 'find_slot', { duration: '30m' }, seconds, undefined, more);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

it.each([
  ['a tool error', { content: [{ type: 'text', text: 'calendar unavailable' }], isError: true }],
  ['no slot found', { content: [{ type: 'text', text: 'No free slot' }], structuredContent: { found: false, timeZone: 'UTC', slots: [] } }],
])('%s, answered fast, is no call: 0 ok, throughput 0, no latency', async (name, toolResult) => {
  const result = await callFor(await bareRoute(name.replace(/ /g, '-'), toolResult), 0.3);
  expect(result.calls).toBeGreaterThan(0);
  expect([result.ok, result.errors, throughput(result), result.latenciesMs]).toEqual([0, result.calls, 0, []]);
}, 30_000);

it('a slot found is an ok call, with its latency', async () => {
  const slot = { start: '2026-12-08T09:00:00+00:00', end: '2026-12-08T09:30:00+00:00', timeZone: 'UTC' };
  const toolResult = { content: [{ type: 'text', text: 'First free slot' }], structuredContent: { found: true, ...slot, slots: [slot] } };
  const result = await callFor(await bareRoute('found', toolResult), 0.3);
  expect(result.errors).toBe(0);
  expect(result.ok).toBe(result.calls);
  expect(result.latenciesMs).toHaveLength(result.ok);
}, 30_000);

it('goes on past its seconds until minCalls calls are made (a slow machine judges as many calls), and stops at capSeconds', async () => {
  const slot = { start: '2026-12-08T09:00:00+00:00', end: '2026-12-08T09:30:00+00:00', timeZone: 'UTC' };
  const url = await bareRoute('found-more', { content: [{ type: 'text', text: 'First free slot' }], structuredContent: { found: true, ...slot, slots: [slot] } });
  // 0 seconds: without minCalls no call is made at all; with it, at least 40 (the two clients finish the calls in flight).
  expect((await callFor(url, 0)).calls).toBe(0);
  const more = await callFor(url, 0, { minCalls: 40, capSeconds: 20 });
  expect(more.calls).toBeGreaterThanOrEqual(40);
  expect(more.calls).toBeLessThanOrEqual(41);
  // The cap ends it before minCalls when the calls do not come.
  expect((await callFor(url, 0, { minCalls: 1_000_000_000, capSeconds: 0 })).calls).toBe(0);
}, 30_000);
