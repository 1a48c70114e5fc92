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
// look is not caught. `localhost` is both 127.0.0.1 and ::1, and another
// user's socket on either counts: a client may try either first. Elsewhere
// than Linux (no /proc/net), and for a host name other than `localhost`
// (which would need a DNS lookup), nothing is checked. An https URL is not
// checked: TLS says who answers.
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { endianness, networkInterfaces } from 'node:os';
import { isAnyLoopbackHost } from '../delegation/resource.js';

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
      `${heldBy(host, port, uid)}, not by delegate's servers; nothing was sent to it. ` +
        'Stop that program, or choose other ports with --auth-port, --calendar-port and --agent-port.',
    );
    this.name = 'ForeignListenerError';
  }
}

function heldBy(host: string, port: number, uid: number): string {
  return `Port ${port} on ${host} is held by a program of another user of this machine (uid ${uid})`;
}

/**
 * For a listen that found its port taken (EADDRINUSE): "Port N on HOST is held by a program of another user of this
 * machine (uid U)" when that is why, else undefined (found in review, s23local: `serve` asked "Is delegate serve
 * already running?" of another user's program). `host` as given to listen: `::1`, `127.0.0.1`, `0.0.0.0`.
 */
export function portHeldByAnotherUser(host: string, port: number): string | undefined {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const uid = foreignListenerAt(`http://${bare.includes(':') ? `[${bare}]` : bare}:${port}/`);
  return uid === undefined ? undefined : heldBy(host, port, uid);
}

/** `uid 65534`, or for several `uid 1001 or 65534`: the users foreignListenersAt found, as a message names them. */
export function uidsSaid(uids: readonly number[]): string {
  return `uid ${uids.join(' or ')}`;
}

/** The /proc/net files that list TCP sockets, by address family; tests give their own. */
export interface SocketTables {
  tcp: string;
  tcp6: string;
}

/** The tables of this machine, each read when first asked for; undefined without /proc/net. */
function procTables(): SocketTables | undefined {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'latin1');
    } catch {
      return undefined;
    }
  };
  const tcp = read('/proc/net/tcp');
  if (tcp === undefined) return undefined;
  let tcp6: string | undefined;
  return {
    tcp,
    get tcp6() {
      return (tcp6 ??= read('/proc/net/tcp6') ?? '');
    },
  };
}

const checkedUntil = new Map<string, number>();

/**
 * Throws ForeignListenerError when the socket listening for `url` on this
 * machine belongs to another user (neither this process's nor root). A port
 * found the user's is not looked at again for OURS_FOR_MS, unless `fresh`: for
 * what goes there once and is worth more than a request (the owner's sign-in
 * link the CLI's /start sends the browser on with).
 */
export function refuseForeignListener(url: string | URL, options: ListenerLookup & { now?: number; fresh?: boolean } = {}): void {
  const target = typeof url === 'string' ? new URL(url) : url;
  if (target.protocol !== 'http:') return;
  const host = target.hostname;
  const port = Number(target.port || 80);
  const key = `${host}:${port}`;
  const now = options.now ?? Date.now();
  // Cached for a URL found to be the user's, or another machine's (networkInterfaces() is not free either).
  if (options.tables === undefined && !options.fresh && (checkedUntil.get(key) ?? 0) > now) return;
  const owner = foreignListenerAt(target, options);
  if (owner !== undefined) {
    checkedUntil.delete(key);
    throw new ForeignListenerError(host, port, owner);
  }
  if (options.tables === undefined) {
    if (checkedUntil.size > 256) checkedUntil.clear();
    checkedUntil.set(key, now + OURS_FOR_MS);
  }
}

/** Where to look (tests give their own tables, uid and addresses), else this machine and this process's uid. */
export interface ListenerLookup {
  tables?: SocketTables;
  uid?: number;
  localAddresses?: string[];
}

/**
 * The uid of another user's program (neither this process's user nor root) listening where a request to the
 * plain-http `url` on this machine would go; undefined when there is none, or nothing can tell (not Linux, an
 * https URL, a host name, another machine). Looked up afresh each time, for a decision taken once: what a
 * consent page says, a code about to be sent, a port found taken.
 */
export function foreignListenerAt(url: string | URL, options: ListenerLookup = {}): number | undefined {
  return foreignListenersAt(url, options)[0];
}

/**
 * Every such uid, for a decision that must name them all (a consent page, Approve's check): a `localhost` URL may
 * reach a program of one user on 127.0.0.1 and of another on [::1]. Empty when there is none, or nothing can tell.
 */
export function foreignListenersAt(url: string | URL, options: ListenerLookup = {}): number[] {
  const target = typeof url === 'string' ? new URL(url) : url;
  if (target.protocol !== 'http:') return [];
  const uid = options.uid ?? process.getuid?.();
  if (uid === undefined || (options.tables === undefined && process.platform !== 'linux')) return [];
  const host = target.hostname;
  if (!onThisMachine(host, options.localAddresses)) return [];
  const tables = options.tables ?? procTables();
  return tables === undefined ? [] : foreignOwners(tables, host, Number(target.port || 80), uid);
}

/** The uid of another user's socket listening where a connection to host:port may go, if any (foreignOwners' first). */
export function foreignOwner(tables: SocketTables, host: string, port: number, uid: number): number | undefined {
  return foreignOwners(tables, host, port, uid)[0];
}

/**
 * The uids of other users' sockets listening where a connection to host:port may go, each once, in the order of
 * the host's addresses. A host with several (`localhost`: 127.0.0.1 and ::1) counts every one: a client may try
 * either, and Chromium tries ::1 first, so one of ours on 127.0.0.1 says nothing of who holds [::1] (found in
 * review, s23new: the owner's server on 127.0.0.1:P, `nobody` on [::1]:P, and a `localhost` redirect URI's code
 * went to nobody's program while the consent page said the app ran on this computer).
 */
export function foreignOwners(tables: SocketTables, host: string, port: number, uid: number): number[] {
  const targets = connectTargets(host);
  if (targets === undefined) return [];
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  // Each table is read only when a tier needs it (each read costs about a millisecond, on find-slot's fast path).
  const parsed = new Map<'tcp' | 'tcp6', Array<{ address: string; owner: number }>>();
  const listening = (table: 'tcp' | 'tcp6') => {
    let rows = parsed.get(table);
    if (!rows) {
      rows = [];
      for (const line of tables[table].split('\n')) {
        // "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid …"
        const fields = line.trim().split(/\s+/);
        if (fields.length < 8 || fields[3] !== TCP_LISTEN) continue;
        const [address, lineport] = fields[1]!.split(':');
        const owner = Number(fields[7]);
        if (lineport === portHex && Number.isInteger(owner)) rows.push({ address: address!, owner });
      }
      parsed.set(table, rows);
    }
    return rows;
  };
  const foreign = new Set<number>();
  for (const tiers of targets) {
    // Linux gives a connection to the socket bound to its very address, else to a wildcard one (IPv4's before a
    // dual-stack IPv6 one): for each address, the first tier that has a socket decides. One bound beside ours (an
    // IPv6-only wildcard next to our 127.0.0.1, found in review) takes nothing sent to 127.0.0.1, and is not counted
    // for it; it does take what is sent to ::1. A socket bound to an IPv4 address and one bound to its IPv4-mapped
    // IPv6 form cannot both hold a port, so an IPv4 one found settles it.
    for (const tier of tiers) {
      const first = tier[0]!;
      const exact = listening(first.table).filter((l) => l.address === first.address);
      const holders = exact.length > 0 ? exact : tier.slice(1).flatMap((t) => listening(t.table).filter((l) => l.address === t.address));
      if (holders.length === 0) continue;
      for (const h of holders) if (h.owner !== uid && h.owner !== 0) foreign.add(h.owner);
      break;
    }
  }
  return [...foreign];
}

type Tier = Array<{ table: 'tcp' | 'tcp6'; address: string }>;

/**
 * For each address a connection to `host` may go to, the listening addresses
 * (as /proc/net/tcp{,6} write them) that would take it, most specific first:
 * the address itself (and its IPv4-mapped IPv6 form), then the IPv4
 * wildcard, then the IPv6 one (dual-stack unless IPv6-only, which the table
 * does not say). Undefined for a host name.
 */
function connectTargets(host: string): Tier[][] | undefined {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const targets = bare === 'localhost' ? ['127.0.0.1', '::1'] : [bare];
  const any6 = procHex(new Array<number>(16).fill(0));
  const out: Tier[][] = [];
  for (const target of targets) {
    let six = ipv6Bytes(target === '::' ? '::1' : target);
    const mapped = six !== undefined && six.slice(0, 12).every((b, i) => b === (i < 10 ? 0 : 0xff));
    const four = ipv4Bytes(target === '0.0.0.0' ? '127.0.0.1' : target) ?? (mapped ? six!.slice(12) : undefined);
    if (four) {
      six = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...four];
      out.push([
        [
          { table: 'tcp', address: procHex(four) },
          { table: 'tcp6', address: procHex(six) },
        ],
        [{ table: 'tcp', address: procHex([0, 0, 0, 0]) }],
        [{ table: 'tcp6', address: any6 }],
      ]);
      continue;
    }
    if (!six) return undefined;
    out.push([[{ table: 'tcp6', address: procHex(six) }], [{ table: 'tcp6', address: any6 }]]);
  }
  return out;
}

/**
 * Whether `host` names this machine: a loopback or unspecified address, or one
 * of its interfaces'. A request to another machine's address is not looked up
 * (found in review: another user's wildcard listener on the same port number
 * refused a request to a remote calendar backend).
 */
function onThisMachine(host: string, local: readonly string[] | undefined): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  // Any loopback address as the URL parser writes it: IPv4-mapped is [::ffff:7f00:1] there, which a dotted-form test missed.
  if (isAnyLoopbackHost(host) || bare === '0.0.0.0' || bare === '::') return true;
  const addresses = local ?? Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
  const six = ipv6Bytes(bare);
  return addresses.some((a) => a === bare || (six !== undefined && ipv6Bytes(a)?.every((b, i) => b === six[i]) === true));
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

/** The two ends of an accepted connection, as node:net's Socket names them. */
export interface ConnectionEnds {
  localAddress?: string | undefined;
  localPort?: number | undefined;
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
}

const TCP_TIME_WAIT = '06';

/**
 * The uid that owns the other end of an accepted connection from this
 * machine: the connecting socket's line in /proc/net/tcp (or tcp6, for an
 * IPv6 or IPv4-mapped one), the one whose local address is the peer's
 * address and port and whose remote address is ours. Any state but
 * TIME_WAIT (whose line says uid 0 for every socket): a peer that has sent
 * its request and half-closed is still its owner's. Undefined when the
 * tables cannot be read (not Linux) or hold no such line.
 */
export function peerUid(socket: ConnectionEnds, options: { tables?: SocketTables } = {}): number | undefined {
  const tables = options.tables ?? (process.platform === 'linux' ? procTables() : undefined);
  if (tables === undefined) return undefined;
  return peerUidIn(tables, socket);
}

/**
 * Whether the other end of an accepted connection may act for this
 * process's user: 'ours' (this uid or root's), 'theirs' (another user's, or
 * not found while the tables can be read: nothing proves it is ours), or
 * 'unknown' (no tables to read: elsewhere than Linux).
 */
export function peerStanding(socket: ConnectionEnds, options: { tables?: SocketTables; uid?: number } = {}): 'ours' | 'theirs' | 'unknown' {
  const uid = options.uid ?? process.getuid?.();
  const tables = options.tables ?? (process.platform === 'linux' ? procTables() : undefined);
  if (uid === undefined || tables === undefined) return 'unknown';
  const owner = peerUidIn(tables, socket);
  return owner !== undefined && (owner === uid || owner === 0) ? 'ours' : 'theirs';
}

function peerUidIn(tables: SocketTables, socket: ConnectionEnds): number | undefined {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (localAddress === undefined || remoteAddress === undefined || localPort === undefined || remotePort === undefined) return undefined;
  const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, '0');
  const forms = (address: string): { tcp?: string; tcp6?: string } | undefined => {
    const four = ipv4Bytes(address);
    const six = ipv6Bytes(address);
    const mapped = six !== undefined && six.slice(0, 12).every((b, i) => b === (i < 10 ? 0 : 0xff));
    const v4 = four ?? (mapped ? six!.slice(12) : undefined);
    if (v4) return { tcp: procHex(v4), tcp6: procHex([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4]) };
    return six ? { tcp6: procHex(six) } : undefined;
  };
  const peer = forms(remoteAddress);
  const ours = forms(localAddress);
  if (!peer || !ours) return undefined;
  for (const table of ['tcp', 'tcp6'] as const) {
    const peerEnd = peer[table];
    const ourEnd = ours[table];
    if (peerEnd === undefined || ourEnd === undefined) continue;
    const wantLocal = `${peerEnd}:${hexPort(remotePort)}`;
    const wantRemote = `${ourEnd}:${hexPort(localPort)}`;
    for (const line of tables[table].split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 8 || fields[1] !== wantLocal || fields[2] !== wantRemote || fields[3] === TCP_TIME_WAIT) continue;
      const owner = Number(fields[7]);
      if (Number.isInteger(owner)) return owner;
    }
  }
  return undefined;
}
