// Who holds the port a request is about to go to. delegate's servers listen
// on fixed ports of this machine, over plain HTTP; while none runs, any user
// of the machine may bind those ports, and other users are untrusted
// (SECURITY.md). A program of theirs on the agent's port would be handed the
// cached access token, on the authorization server's the refresh token, and a
// calendar backend or agent started alone would take its keys from whatever
// answers on the AS's port. So before a request goes to a plain-http address
// of this machine, this looks up the owner of the listening socket that would
// take the connection (Linux: /proc/net/tcp and tcp6, the `uid` column) and
// refuses one held by another user. Root's sockets pass: root can read the
// token cache anyway.
//
// Reading /proc/net/tcp costs about a millisecond (the kernel walks its whole
// hash table), so a port found to be ours is not looked up again for
// OURS_FOR_MS: a listener that changes hands within that time after the last
// look is not caught. Elsewhere than Linux (no /proc/net), and for a host
// name other than `localhost` (which would need a DNS lookup), nothing is
// checked. An https URL is not checked: TLS says who answers.
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { endianness } from 'node:os';

const OURS_FOR_MS = 2000;
const TCP_LISTEN = '0A';

export class ForeignListenerError extends Error {
  readonly code = 'FOREIGN_LISTENER';
  constructor(
    readonly host: string,
    readonly port: number,
    readonly uid: number,
  ) {
    super(
      `Port ${port} on ${host} is held by a program of another user of this machine (uid ${uid}), not by delegate's servers; nothing was sent to it. ` +
        'Stop that program, or choose other ports with --auth-port, --calendar-port and --agent-port.',
    );
    this.name = 'ForeignListenerError';
  }
}

/** The /proc/net files that list TCP sockets, by address family; tests give their own. */
export interface SocketTables {
  tcp: string;
  tcp6: string;
}

function procTables(): SocketTables | undefined {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'latin1');
    } catch {
      return undefined;
    }
  };
  const tcp = read('/proc/net/tcp');
  const tcp6 = read('/proc/net/tcp6');
  if (tcp === undefined && tcp6 === undefined) return undefined;
  return { tcp: tcp ?? '', tcp6: tcp6 ?? '' };
}

const checkedUntil = new Map<string, number>();

/**
 * Throws ForeignListenerError when the socket listening for `url` on this
 * machine belongs to another user (neither this process's nor root).
 */
export function refuseForeignListener(url: string | URL, options: { tables?: SocketTables; uid?: number; now?: number } = {}): void {
  const target = typeof url === 'string' ? new URL(url) : url;
  if (target.protocol !== 'http:') return;
  const uid = options.uid ?? process.getuid?.();
  if (uid === undefined || (options.tables === undefined && process.platform !== 'linux')) return;
  const host = target.hostname;
  const port = Number(target.port || 80);
  const key = `${host}:${port}`;
  const now = options.now ?? Date.now();
  if (options.tables === undefined && (checkedUntil.get(key) ?? 0) > now) return;
  const tables = options.tables ?? procTables();
  if (tables === undefined) return;
  const owner = foreignOwner(tables, host, port, uid);
  if (owner !== undefined) {
    checkedUntil.delete(key);
    throw new ForeignListenerError(host, port, owner);
  }
  if (options.tables === undefined) {
    if (checkedUntil.size > 256) checkedUntil.clear();
    checkedUntil.set(key, now + OURS_FOR_MS);
  }
}

/** The uid of another user's socket listening where a connection to host:port would go, if any. */
export function foreignOwner(tables: SocketTables, host: string, port: number, uid: number): number | undefined {
  const wanted = listenAddresses(host);
  if (wanted === undefined) return undefined;
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const [table, addresses] of [
    [tables.tcp, wanted.v4],
    [tables.tcp6, wanted.v6],
  ] as const) {
    for (const line of table.split('\n')) {
      // "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid …"
      const fields = line.trim().split(/\s+/);
      if (fields.length < 8 || fields[3] !== TCP_LISTEN) continue;
      const [address, lineport] = fields[1]!.split(':');
      if (lineport !== portHex || !addresses.has(address!)) continue;
      const owner = Number(fields[7]);
      if (Number.isInteger(owner) && owner !== uid && owner !== 0) return owner;
    }
  }
  return undefined;
}

/**
 * The local addresses, as /proc/net/tcp{,6} write them, of the sockets that
 * would take a connection to `host`: the address itself, the wildcard of each
 * family (an IPv6 one takes IPv4 too unless it is IPv6-only, which the table
 * does not say), and the IPv4-mapped IPv6 form. Undefined for a host name.
 */
function listenAddresses(host: string): { v4: Set<string>; v6: Set<string> } | undefined {
  const v4 = new Set<string>();
  const v6 = new Set<string>([procHex(new Array<number>(16).fill(0))]);
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const targets = bare === 'localhost' ? ['127.0.0.1', '::1'] : [bare];
  for (const target of targets) {
    const four = ipv4Bytes(target === '0.0.0.0' ? '127.0.0.1' : target);
    if (four) {
      v4.add(procHex(four));
      v4.add(procHex([0, 0, 0, 0]));
      v6.add(procHex([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...four]));
      continue;
    }
    const six = ipv6Bytes(target === '::' ? '::1' : target);
    if (!six) return undefined;
    v6.add(procHex(six));
    const mapped = six.slice(0, 12).every((b, i) => b === (i < 10 ? 0 : 0xff));
    if (mapped) {
      v4.add(procHex(six.slice(12)));
      v4.add(procHex([0, 0, 0, 0]));
    }
  }
  return { v4, v6 };
}

/** An address as the kernel prints it there: each 32-bit word in the machine's byte order, in hex. */
function procHex(bytes: number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    const word = bytes.slice(i, i + 4);
    if (endianness() === 'LE') word.reverse();
    out += word.map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join('');
  }
  return out;
}

function ipv4Bytes(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.map(Number);
}

function ipv6Bytes(text: string): number[] | undefined {
  if (!isIPv6(text)) return undefined;
  let rest = text;
  let tail: number[] = [];
  if (text.includes('.')) {
    // A trailing dotted IPv4 address stands for the last two groups.
    const colon = text.lastIndexOf(':');
    tail = ipv4Bytes(text.slice(colon + 1)) ?? [];
    rest = `${text.slice(0, colon + 1)}0:0`;
  }
  const [head, back] = rest.split('::') as [string, string | undefined];
  const split = (part: string) => (part === '' ? [] : part.split(':'));
  const groups = back === undefined ? split(head) : [...split(head), ...new Array<string>(8 - split(head).length - split(back).length).fill('0'), ...split(back)];
  const bytes = groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/**
 * Makes every fetch of this process refuse a plain-http address of this
 * machine held by another user: the CLI's entry point asks for it, so that
 * no request of the client or of the servers it runs can miss the check.
 * (node:http requests check for themselves: mcp-post.ts, calendar-client.ts.)
 */
let fetchGuarded = false;

export function guardProcessFetch(): void {
  if (fetchGuarded) return;
  fetchGuarded = true;
  const original = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    try {
      refuseForeignListener(typeof input === 'string' || input instanceof URL ? input : input.url);
    } catch (error) {
      // As a connection that failed: callers that look again (the CLI's probe of its servers) find the cause.
      return Promise.reject(new TypeError('fetch failed', { cause: error }));
    }
    return original(input, init);
  };
}
