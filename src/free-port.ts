// Free loopback ports for a caller that must know a server's URL before it
// listens (an issuer or a resource URL is part of every token): the tests,
// the benchmarks and `npm run conformance`.
//
// Chosen below the kernel's ephemeral range (Linux: 32768–60999 by default),
// from which listen(0) picks: between freeing a port found with listen(0) and
// listening on it, a server started alongside with listen(0) can be given the
// same port (EADDRINUSE, seen once in a full test run; the MCP conformance
// suite's scenario servers listen(0) on all addresses by the dozen while the
// authorization-server run waits to listen on its callback port). A
// connection's local port does not block a listener (tried on Linux). Below
// that range only another caller's choice can collide, and the choice is
// random. Two vitest workers choosing at the same moment could still pick the
// same port between one's check and its listen (EADDRINUSE, seen once in a
// full run with 155 files): each worker (VITEST_POOL_ID) draws from its own
// slice of the range, and a process never hands out a port it handed out
// recently.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOWEST = 20_000;
const ATTEMPTS = 50;

/** The first port of the kernel's ephemeral range, where this machine says; 32768 elsewhere. */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > LOWEST + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

const below = ephemeralStart();

function tryListen(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const { port: bound } = srv.address() as { port: number };
      srv.close(() => resolve(bound));
    });
  });
}

const SLICES = 8;

/** The part of the range this process draws from: a slice of its own under a vitest worker, else all of it. */
export function rangeOf(env: NodeJS.ProcessEnv): { from: number; size: number } {
  const pool = Number(env.VITEST_POOL_ID);
  if (!Number.isInteger(pool) || pool < 1) return { from: LOWEST, size: below - LOWEST };
  const size = Math.floor((below - LOWEST) / SLICES);
  return { from: LOWEST + ((pool - 1) % SLICES) * size, size };
}

/** Ports handed out lately by this process: the caller may not be listening on them yet. */
const handedOut: number[] = [];
const REMEMBERED = 256;

export async function freePort(): Promise<number> {
  const { from, size } = rangeOf(process.env);
  for (let i = 0; i < ATTEMPTS; i++) {
    const candidate = from + Math.floor(Math.random() * size);
    if (handedOut.includes(candidate)) continue;
    const port = await tryListen(candidate);
    if (port === undefined) continue;
    handedOut.push(port);
    if (handedOut.length > REMEMBERED) handedOut.shift();
    return port;
  }
  const any = await tryListen(0);
  if (any === undefined) throw new Error('no free loopback port');
  return any;
}
