// How many connections a server holds, and for how long an idle one: another
// user of the machine may open thousands of TCP connections to the loopback
// ports and send nothing (found in review, s27web: the `serve` process reached
// its open-file limit, and all three servers, one process, stopped answering).
//
// - At most `max` connections per server (Node's server.maxConnections: one
//   more is accepted and closed at once), set from the process's open-file
//   limit (RLIMIT_NOFILE's soft value, from /proc/self/limits) so that three
//   servers at their limit leave most of it to SQLite, outgoing calls and the
//   owner: an eighth of it each, at least 64 and at most 1,024.
// - Past `othersMax` (three quarters of max) open connections, a new
//   connection is kept only if its other end is the owner's uid or root's
//   (as peerStanding says, from /proc/net/tcp), so that another user's flood
//   leaves the last quarter to the owner. It is decided as the connection is
//   accepted, before the next one (a decision put off lets the flood fill the
//   owner's quarter meanwhile); a burst accepted in one turn of the event
//   loop is looked up in one reading of the tables (each a pass over every
//   socket of the machine). Where the tables cannot be read (not Linux),
//   only `max` applies.
// - A connection that has not sent its request's headers within
//   HEADERS_TIMEOUT_MS, or its whole request within REQUEST_TIMEOUT_MS, gets
//   408 and is closed (Node checks every CHECK_INTERVAL_MS); an idle
//   keep-alive connection is closed after KEEP_ALIVE_TIMEOUT_MS.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { peerOwnerIndex } from './listener-owner.js';

export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;
export const KEEP_ALIVE_TIMEOUT_MS = 10_000;
export const CHECK_INTERVAL_MS = 2_000;

export interface ConnectionLimits {
  /** The most connections the server holds at once. */
  max: number;
  /** Open connections past which a new one is kept only if it is the owner's (or root's). */
  othersMax: number;
}

let defaults: ConnectionLimits | undefined;

/** The limits for a server of this process, from its open-file limit (read once). */
export function defaultConnectionLimits(): ConnectionLimits {
  return (defaults ??= limitsFor(openFileLimit()));
}

export function limitsFor(openFiles: number | undefined): ConnectionLimits {
  const max = Math.min(1024, Math.max(64, Math.floor((openFiles ?? 8192) / 8)));
  return { max, othersMax: max - Math.floor(max / 4) };
}

/** RLIMIT_NOFILE's soft value (Node raises it to the hard one at start), or undefined: not Linux, or unlimited. */
function openFileLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    return line ? Number(line[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Applies `limits` to a server not yet listening. */
export function limitConnections(server: Server, limits: ConnectionLimits): void {
  server.maxConnections = limits.max;
  const uid = process.getuid?.();
  let open = 0;
  // One reading of the tables serves every connection accepted in the same turn of the event loop (a burst); a
  // connection it does not hold (made after it) gets a fresh one.
  let reading: ((socket: Socket) => number | undefined) | undefined;
  const ownerOf = (socket: Socket): number | undefined => {
    const owner = reading?.(socket);
    if (owner !== undefined) return owner;
    if (reading === undefined) setImmediate(() => (reading = undefined));
    reading = peerOwnerIndex();
    return reading?.(socket);
  };
  server.on('connection', (socket: Socket) => {
    open++;
    socket.once('close', () => open--);
    if (open <= limits.othersMax || uid === undefined || process.platform !== 'linux') return;
    const owner = ownerOf(socket);
    // Not found while the tables can be read: nothing proves it is the owner's (as peerStanding says).
    if (owner !== uid && owner !== 0) socket.destroy();
  });
}
