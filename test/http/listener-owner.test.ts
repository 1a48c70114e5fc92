// The owner of the socket a request would reach (src/http/listener-owner.ts),
// read from /proc/net/tcp and tcp6 as Linux writes them (addresses as 32-bit
// words in the machine's byte order; these tables are a little-endian
// machine's). test/e2e/port-squatting.test.ts runs the attack itself.
import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ForeignListenerError, foreignListenersAt, foreignOwner, foreignOwners, refuseForeignListener, type SocketTables } from '../../src/http/listener-owner.js';

const HEAD = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const v4 = (local: string, state: string, uid: number) => `   0: ${local} 00000000:0000 ${state} 00000000:00000000 00:00000000 00000000  ${uid}        0 1079 1 0000000089867dc6 100 0 0 10 0`;
const v6 = (local: string, state: string, uid: number) => `   0: ${local} 00000000000000000000000000000000:0000 ${state} 00000000:00000000 00:00000000 00000000  ${uid}        0 2079 1 0000000089867dc6 100 0 0 10 0`;
const tables = (tcp: string[], tcp6: string[] = []): SocketTables => ({ tcp: [HEAD, ...tcp].join('\n'), tcp6: [HEAD, ...tcp6].join('\n') });

const ME = 1000;
const OTHER = 1001;
const THIRD = 1002;
// Port 8781 is 0x224D.
const LOOPBACK_8781 = '0100007F:224D';

describe.skipIf(endianness() !== 'LE')('the owner of the listening socket', () => {
  it('names another user’s listener on the address and port', () => {
    expect(foreignOwner(tables([v4(LOOPBACK_8781, '0A', OTHER)]), '127.0.0.1', 8781, ME)).toBe(OTHER);
  });

  it('passes the user’s own listener, and root’s', () => {
    expect(foreignOwner(tables([v4(LOOPBACK_8781, '0A', ME)]), '127.0.0.1', 8781, ME)).toBeUndefined();
    expect(foreignOwner(tables([v4(LOOPBACK_8781, '0A', 0)]), '127.0.0.1', 8781, ME)).toBeUndefined();
  });

  it('looks only at listening sockets on that port', () => {
    expect(foreignOwner(tables([v4(LOOPBACK_8781, '01', OTHER)]), '127.0.0.1', 8781, ME)).toBeUndefined(); // an established connection
    expect(foreignOwner(tables([v4('0100007F:224E', '0A', OTHER)]), '127.0.0.1', 8781, ME)).toBeUndefined();
    expect(foreignOwner(tables([v4('0500000A:224D', '0A', OTHER)]), '127.0.0.1', 8781, ME)).toBeUndefined(); // 10.0.0.5
  });

  it('counts the wildcards and the IPv4-mapped address, which take loopback connections too', () => {
    expect(foreignOwner(tables([v4('00000000:224D', '0A', OTHER)]), '127.0.0.1', 8781, ME)).toBe(OTHER);
    expect(foreignOwner(tables([], [v6('00000000000000000000000000000000:224D', '0A', OTHER)]), '127.0.0.1', 8781, ME)).toBe(OTHER);
    expect(foreignOwner(tables([], [v6('0000000000000000FFFF00000100007F:224D', '0A', OTHER)]), '127.0.0.1', 8781, ME)).toBe(OTHER);
  });

  it('reads IPv6 targets and localhost (both loopbacks)', () => {
    const sixLoopback = tables([], [v6('00000000000000000000000001000000:224D', '0A', OTHER)]);
    expect(foreignOwner(sixLoopback, '[::1]', 8781, ME)).toBe(OTHER);
    expect(foreignOwner(sixLoopback, 'localhost', 8781, ME)).toBe(OTHER);
    expect(foreignOwner(tables([v4(LOOPBACK_8781, '0A', OTHER)]), 'localhost', 8781, ME)).toBe(OTHER);
    expect(foreignOwner(sixLoopback, '127.0.0.1', 8781, ME)).toBeUndefined(); // ::1 does not take IPv4
  });

  // Found in review: another user's IPv6-only wildcard beside our 127.0.0.1 listener (Linux allows both) takes no
  // connection of ours, yet it refused every command while the servers ran.
  it('lets the most specific listener decide: the address itself, then the IPv4 wildcard, then the IPv6 one', () => {
    const any6 = '00000000000000000000000000000000:224D';
    expect(foreignOwner(tables([v4(LOOPBACK_8781, '0A', ME)], [v6(any6, '0A', OTHER)]), '127.0.0.1', 8781, ME)).toBeUndefined();
    expect(foreignOwner(tables([v4(LOOPBACK_8781, '0A', ME), v4('00000000:224D', '0A', OTHER)]), '127.0.0.1', 8781, ME)).toBeUndefined();
    expect(foreignOwner(tables([v4('00000000:224D', '0A', ME)], [v6(any6, '0A', OTHER)]), '127.0.0.1', 8781, ME)).toBeUndefined();
    expect(foreignOwner(tables([v4('00000000:224D', '0A', OTHER)], [v6(any6, '0A', ME)]), '127.0.0.1', 8781, ME)).toBe(OTHER);
    expect(foreignOwner(tables([], [v6('00000000000000000000000001000000:224D', '0A', ME), v6(any6, '0A', OTHER)]), '[::1]', 8781, ME)).toBeUndefined();
  });

  // Found in review (s23new): the owner's server on 127.0.0.1:P settled `localhost:P`, so nobody's program on [::1]:P
  // went unseen, and Chromium, which tries ::1 first, took a consent's code to it.
  it('counts every address of localhost: one of ours on 127.0.0.1 says nothing of who holds [::1]', () => {
    const any6 = '00000000000000000000000000000000:224D';
    const loop6 = '00000000000000000000000001000000:224D';
    const split = tables([v4(LOOPBACK_8781, '0A', ME)], [v6(loop6, '0A', OTHER)]);
    expect(foreignOwner(split, 'localhost', 8781, ME)).toBe(OTHER);
    expect(() => refuseForeignListener('http://localhost:8781/', { tables: split, uid: ME, localAddresses: [] })).toThrow(`Port 8781 on localhost is held by a program of another user of this machine (uid ${OTHER})`);
    expect(foreignOwner(tables([v4(LOOPBACK_8781, '0A', 0)], [v6(any6, '0A', OTHER)]), 'localhost', 8781, ME)).toBe(OTHER); // an IPv6-only wildcard takes ::1
    expect(foreignOwner(tables([v4('00000000:224D', '0A', ME)], [v6(loop6, '0A', OTHER)]), 'localhost', 8781, ME)).toBe(OTHER);
    // Ours on both loopbacks, or one dual-stack wildcard of ours: nothing to say. One address alone is decided as before.
    expect(foreignOwner(tables([v4(LOOPBACK_8781, '0A', ME)], [v6(loop6, '0A', ME)]), 'localhost', 8781, ME)).toBeUndefined();
    expect(foreignOwner(tables([], [v6(any6, '0A', ME)]), 'localhost', 8781, ME)).toBeUndefined();
    expect(foreignOwner(split, '127.0.0.1', 8781, ME)).toBeUndefined();
  });

  it('names every other user a connection to localhost may reach, each once', () => {
    const loop6 = '00000000000000000000000001000000:224D';
    const two = tables([v4(LOOPBACK_8781, '0A', OTHER)], [v6(loop6, '0A', THIRD)]);
    expect(foreignOwners(two, 'localhost', 8781, ME)).toEqual([OTHER, THIRD]);
    expect(foreignListenersAt('http://localhost:8781/cb', { tables: two, uid: ME, localAddresses: [] })).toEqual([OTHER, THIRD]);
    expect(foreignListenersAt('http://[::1]:8781/cb', { tables: two, uid: ME, localAddresses: [] })).toEqual([THIRD]);
    expect(foreignOwners(tables([v4(LOOPBACK_8781, '0A', OTHER)], [v6(loop6, '0A', OTHER)]), 'localhost', 8781, ME)).toEqual([OTHER]);
  });

  // Found in review: a request to another machine's address was refused for another user's wildcard listener here.
  it('looks only at addresses of this machine', () => {
    const held = tables([v4('00000000:224D', '0A', OTHER)]);
    expect(() => refuseForeignListener('http://192.0.2.10:8781/', { tables: held, uid: ME, localAddresses: ['10.1.2.3'] })).not.toThrow();
    expect(() => refuseForeignListener('http://192.0.2.10:8781/', { tables: held, uid: ME, localAddresses: ['192.0.2.10'] })).toThrow(ForeignListenerError);
    expect(() => refuseForeignListener('http://127.0.0.2:8781/', { tables: held, uid: ME, localAddresses: [] })).toThrow(ForeignListenerError);
    // Found in review: IPv4-mapped loopback, which the URL parser writes [::ffff:7f00:1], was taken for another machine's address.
    expect(() => refuseForeignListener('http://[::ffff:127.0.0.1]:8781/', { tables: held, uid: ME, localAddresses: [] })).toThrow(ForeignListenerError);
    expect(() => refuseForeignListener('http://[::ffff:127.0.0.2]:8781/', { tables: held, uid: ME, localAddresses: [] })).toThrow(ForeignListenerError);
  });

  it('does not guess at other host names', () => {
    expect(foreignOwner(tables([v4('00000000:224D', '0A', OTHER)]), 'calendar.example', 8781, ME)).toBeUndefined();
  });

  it('refuses a plain-http URL held by another user, and leaves https to TLS', () => {
    const held = tables([v4(LOOPBACK_8781, '0A', OTHER)]);
    expect(() => refuseForeignListener('http://127.0.0.1:8781/mcp', { tables: held, uid: ME })).toThrow(ForeignListenerError);
    expect(() => refuseForeignListener('http://127.0.0.1:8781/mcp', { tables: held, uid: ME })).toThrow(`Port 8781 on 127.0.0.1 is held by a program of another user of this machine (uid ${OTHER})`);
    expect(() => refuseForeignListener('https://127.0.0.1:8781/mcp', { tables: held, uid: ME })).not.toThrow();
    expect(() => refuseForeignListener('http://127.0.0.1:8781/mcp', { tables: held, uid: OTHER })).not.toThrow();
  });
});

// The same with real sockets: ours on 127.0.0.1, another user's (nobody's) IPv6-only wildcard on the same port.
describe.skipIf(process.getuid?.() !== 0 || process.platform !== 'linux')('real listeners', () => {
  /** Ours: a listener of this process on 127.0.0.1, on a port of its own. */
  const ours = async () => {
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as { port: number }).port, close: () => new Promise((resolve) => server.close(resolve)) };
  };
  /** Another user's (nobody's) listener on host and port. */
  const listen = async (host: string, v6only: boolean, p: number) => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen({ port: ${p}, host: '${host}', ipv6Only: ${v6only} }, () => console.log('up'))`], { uid: 65534, gid: 65534, cwd: '/' });
    return new Promise<typeof child>((resolve, reject) => {
      child.stdout!.once('data', () => resolve(child));
      child.once('exit', (code) => reject(new Error(`listener exited ${code}`)));
    });
  };

  it('passes our 127.0.0.1 listener beside another user’s IPv6-only wildcard, and refuses that user’s own 127.0.0.1 one', async () => {
    const mine = await ours();
    const port = mine.port;
    const beside = await listen('::', true, port);
    try {
      expect(() => refuseForeignListener(`http://127.0.0.1:${port}/`, { now: Date.now() + 60_000 })).not.toThrow();
    } finally {
      beside.kill('SIGKILL');
      await mine.close();
    }
    const theirs = await listen('127.0.0.1', false, port);
    try {
      expect(() => refuseForeignListener(`http://127.0.0.1:${port}/`, { now: Date.now() + 120_000 })).toThrow(ForeignListenerError);
    } finally {
      theirs.kill('SIGKILL');
    }
  });

  it('refuses localhost when ours holds 127.0.0.1 and another user’s [::1] (s23new)', async () => {
    const mine = await ours();
    const theirs = await listen('::1', false, mine.port);
    try {
      expect(() => refuseForeignListener(`http://127.0.0.1:${mine.port}/`, { now: Date.now() + 180_000 })).not.toThrow();
      expect(() => refuseForeignListener(`http://localhost:${mine.port}/`, { now: Date.now() + 180_000 })).toThrow(`Port ${mine.port} on localhost is held by a program of another user of this machine (uid 65534)`);
    } finally {
      theirs.kill('SIGKILL');
      await mine.close();
    }
  });
});
