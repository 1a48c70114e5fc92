// A name server on 127.0.0.1:53 that answers A and AAAA queries as a test
// says (RFC 1035 §4.1), for tests run in a network namespace of their own
// (netns.ts), where resolv.conf names 127.0.0.1: records, none (NODATA),
// NXDOMAIN, SERVFAIL or nothing at all, per name and query.
import { createSocket, type Socket } from 'node:dgram';

/** How the name server answers one query: these addresses (none: NODATA), NXDOMAIN, SERVFAIL, or nothing at all. */
export type DnsAnswer = string[] | 'nxdomain' | 'servfail' | 'silence';
/** RFC 1035 §4.1.1 RCODE: 2 server failure, 3 name error. */
const RCODE = { nxdomain: 3, servfail: 2 } as const;

/** The 16 bytes of an IPv6 address written with `::`. */
function ipv6Bytes(address: string): Buffer {
  const [head = '', tail] = address.split('::');
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? front : [...front, ...Array<string>(8 - front.length - back.length).fill('0'), ...back];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

/** The question's name (lower case, without the root's dot) and where the question ends. */
function question(query: Buffer): { name: string; end: number } {
  const labels: string[] = [];
  let end = 12;
  while (query[end]! > 0) {
    labels.push(query.subarray(end + 1, end + 1 + query[end]!).toString('latin1'));
    end += query[end]! + 1;
  }
  return { name: labels.join('.').toLowerCase(), end };
}

/** A name server on 127.0.0.1:53 answering A (1) and AAAA (28) queries as `answerFor` says. */
export async function nameServer(answerFor: (type: 'A' | 'AAAA', name: string) => DnsAnswer): Promise<Socket> {
  const server = createSocket('udp4');
  server.on('message', (query, from) => {
    const asked = question(query);
    const qtype = query.readUInt16BE(asked.end + 1);
    const end = asked.end + 5;
    const answer = answerFor(qtype === 28 ? 'AAAA' : 'A', asked.name);
    if (answer === 'silence') return;
    const records = typeof answer === 'string' ? [] : answer;
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2);
    header.writeUInt16BE(0x8180 | (typeof answer === 'string' ? RCODE[answer] : 0), 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(records.length, 6);
    const rrs = records.map((address) => {
      const data = qtype === 28 ? ipv6Bytes(address) : Buffer.from(address.split('.').map(Number));
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(qtype, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(5, 6);
      rr.writeUInt16BE(data.length, 10);
      return Buffer.concat([rr, data]);
    });
    server.send(Buffer.concat([header, query.subarray(12, end), ...rrs]), from.port, from.address);
  });
  await new Promise<void>((done) => server.bind(53, '127.0.0.1', done));
  return server;
}
