// freePort (src/free-port.ts): the ports the tests, the benchmarks and
// `npm run conformance` hand to servers before they listen come from below the
// kernel's ephemeral range, where no listen(0) alongside can be given them, and
// are free to listen on.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, rangeOf } from '../src/free-port.js';

const ephemeralStart = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 32_768;
  }
})();
/** Where the kernel's range leaves no room below it (some containers start it at 1024), freePort keeps below 32768. */
const bound = ephemeralStart > 21_000 ? ephemeralStart : 32_768;

function listenOn(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

describe('freePort', () => {
  it('gives ports below the ephemeral range that a server can listen on', async () => {
    const ports = [];
    for (let i = 0; i < 20; i++) ports.push(await freePort());
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(20_000);
      expect(port).toBeLessThan(bound);
      await listenOn(port);
    }
  });

  it('under vitest, draws from this worker’s own slice, disjoint from the other workers’ (found in a full run: two workers picked one port)', async () => {
    expect(process.env.VITEST_POOL_ID).toMatch(/^\d+$/);
    const mine = rangeOf(process.env);
    const slices = [1, 2, 3, 4, 5, 6, 7, 8].map((id) => rangeOf({ VITEST_POOL_ID: String(id) }));
    for (const [i, a] of slices.entries()) {
      expect(a.from + a.size).toBeLessThanOrEqual(bound);
      for (const b of slices.slice(i + 1)) expect(a.from + a.size <= b.from || b.from + b.size <= a.from).toBe(true);
    }
    for (let i = 0; i < 20; i++) {
      const port = await freePort();
      expect(port).toBeGreaterThanOrEqual(mine.from);
      expect(port).toBeLessThan(mine.from + mine.size);
    }
  });

  it('never hands out a port it handed out lately (the caller may not listen on it yet)', async () => {
    const ports = [];
    for (let i = 0; i < 100; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(100);
  });
});
