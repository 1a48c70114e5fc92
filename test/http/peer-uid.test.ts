// The owner of the other end of an accepted connection (peerUid, peerStanding
// in src/http/listener-owner.ts), read from /proc/net/tcp and tcp6: the CLI's
// loopback listener answers only its own user (and root). Fabricated lines as
// a little-endian machine writes them, then a real connection.
import { createServer, connect, type Socket } from 'node:net';
import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import { peerStanding, peerUid, type SocketTables } from '../../src/http/listener-owner.js';

const HEAD = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const line = (local: string, remote: string, state: string, uid: number) =>
  `   0: ${local} ${remote} ${state} 00000000:00000000 00:00000000 00000000  ${uid}        0 1079 1 0000000089867dc6 100 0 0 10 0`;
const tables = (tcp: string[], tcp6: string[] = []): SocketTables => ({ tcp: [HEAD, ...tcp].join('\n'), tcp6: [HEAD, ...tcp6].join('\n') });

const ME = 1000;
const OTHER = 1001;
// Our listener 127.0.0.1:8781 (0x224D); the peer's socket 127.0.0.1:40000 (0x9C40).
const ends = { localAddress: '127.0.0.1', localPort: 8781, remoteAddress: '127.0.0.1', remotePort: 40000 };
const OURS = '0100007F:224D';
const PEER = '0100007F:9C40';
const MAPPED_OURS = '0000000000000000FFFF00000100007F:224D';
const MAPPED_PEER = '0000000000000000FFFF00000100007F:9C40';

describe.skipIf(endianness() !== 'LE')('the owner of a connection’s other end (fabricated tables)', () => {
  it('reads the peer’s line, not ours', () => {
    const t = tables([line(OURS, PEER, '01', ME), line(PEER, OURS, '01', OTHER)]);
    expect(peerUid(ends, { tables: t })).toBe(OTHER);
    expect(peerStanding(ends, { tables: t, uid: ME })).toBe('theirs');
  });

  it('passes our own uid and root’s', () => {
    expect(peerStanding(ends, { tables: tables([line(PEER, OURS, '01', ME)]), uid: ME })).toBe('ours');
    expect(peerStanding(ends, { tables: tables([line(PEER, OURS, '01', 0)]), uid: ME })).toBe('ours');
  });

  it('finds a peer that connected from an IPv6 socket (IPv4-mapped) in tcp6', () => {
    const t = tables([], [line(MAPPED_PEER, MAPPED_OURS, '01', OTHER)]);
    expect(peerUid(ends, { tables: t })).toBe(OTHER);
    expect(peerUid({ ...ends, remoteAddress: '::ffff:127.0.0.1', localAddress: '::ffff:127.0.0.1' }, { tables: t })).toBe(OTHER);
  });

  it('keeps a half-closed peer’s owner, and ignores TIME_WAIT lines (uid 0 for everyone)', () => {
    expect(peerUid(ends, { tables: tables([line(PEER, OURS, '04', OTHER)]) })).toBe(OTHER); // FIN_WAIT1
    expect(peerUid(ends, { tables: tables([line(PEER, OURS, '06', 0)]) })).toBeUndefined();
    expect(peerStanding(ends, { tables: tables([line(PEER, OURS, '06', 0)]), uid: ME })).toBe('theirs');
  });

  it('matches both ends exactly: another port or address is someone else', () => {
    expect(peerUid(ends, { tables: tables([line('0100007F:9C41', OURS, '01', ME)]) })).toBeUndefined();
    expect(peerUid(ends, { tables: tables([line(PEER, '0100007F:224E', '01', ME)]) })).toBeUndefined();
    expect(peerUid(ends, { tables: tables([line('0200007F:9C40', OURS, '01', ME)]) })).toBeUndefined();
  });

  it('refuses a peer it cannot find while the tables can be read; says unknown without tables', () => {
    expect(peerStanding(ends, { tables: tables([]), uid: ME })).toBe('theirs');
    expect(peerStanding({}, { tables: tables([line(PEER, OURS, '01', ME)]), uid: ME })).toBe('theirs');
  });
});

describe.skipIf(process.platform !== 'linux')('the owner of a real connection', () => {
  const listen = async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, port: (server.address() as { port: number }).port };
  };

  it('is this process’s uid for our own connection', async () => {
    const { server, port } = await listen();
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const client = connect(port, '127.0.0.1');
    try {
      const socket = await accepted;
      expect(peerUid(socket)).toBe(process.getuid!());
      expect(peerStanding(socket)).toBe('ours');
    } finally {
      client.destroy();
      server.close();
    }
  });

  it.skipIf(process.getuid?.() !== 0)('is nobody’s for a connection from nobody’s process', async () => {
    const { spawn } = await import('node:child_process');
    const { server, port } = await listen();
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const child = spawn(process.execPath, ['-e', `const s = require('net').connect(${port}, '127.0.0.1'); setTimeout(() => s.destroy(), 5000)`], { uid: 65534, gid: 65534, cwd: '/' });
    try {
      const socket = await accepted;
      expect(peerUid(socket)).toBe(65534);
      expect(peerStanding(socket)).toBe('theirs');
    } finally {
      child.kill('SIGKILL');
      server.close();
    }
  });
});
