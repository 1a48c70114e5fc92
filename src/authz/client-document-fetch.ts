// Fetching a Client ID Metadata Document (draft-ietf-oauth-client-id-metadata-
// document: Client Information Discovery, SSRF, Maximum Response Size) without letting a client aim this server at its own
// network: the name is resolved once, every address checked against the
// special-use ranges (RFC 6890), and the connection made to the address
// checked, so a second answer from DNS cannot move it (DNS rebinding). One GET
// over https, no redirects followed, a deadline for the whole exchange and a
// cap on the bytes read.
import { lookup as dnsLookup } from 'node:dns/promises';
import { request, type RequestOptions } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export interface DocumentFetchOptions {
  /**
   * Host names (as in the URL, lower case) that may resolve to special-use addresses: for development and tests on
   * loopback or a private network (the draft's SSRF section lets an AS for development relax the rule). Empty in production.
   */
  privateHosts: readonly string[];
  /** Whole exchange, from resolving the name to the last byte. */
  timeoutMs: number;
  /** Bytes read at most; a longer document is refused (the draft's Maximum Response Size recommends 5 KB). */
  maxBytes: number;
  /** Certificates trusted besides the system's (tests with a private CA). */
  ca?: string | Buffer;
  /** Name resolution (tests inject one); by default the system resolver, every address. */
  resolve?: (hostname: string) => Promise<ResolvedAddress[]>;
}

export interface FetchedDocument {
  body: unknown;
  /** The address the document came from (the one checked). */
  address: string;
  /** The Cache-Control max-age, in seconds, when the response gave one; 0 for no-store or no-cache. */
  maxAgeSec: number | undefined;
}

/** Why a document could not be fetched: said to the client (invalid_client) and on the /authorize page. */
export class DocumentFetchError extends Error {
  override readonly name = 'DocumentFetchError';
}

/**
 * RFC 6890 and its updates: addresses that are not one host on the public Internet. IPv4-mapped (::ffff:0:0/96),
 * NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and 6to4 (2002::/16) are refused whole: each can reach an IPv4 address
 * behind it, and a metadata document has no reason to be served from one.
 */
const SPECIAL_USE = (() => {
  const list = new BlockList();
  const v4: Array<[string, number]> = [
    ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
    ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
    ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
  ];
  const v6: Array<[string, number]> = [
    ['::', 128], ['::1', 128], ['::ffff:0:0', 96], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23],
    ['2001:db8::', 32], ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8],
  ];
  for (const [net, prefix] of v4) list.addSubnet(net, prefix, 'ipv4');
  for (const [net, prefix] of v6) list.addSubnet(net, prefix, 'ipv6');
  return list;
})();

export function isSpecialUseAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return SPECIAL_USE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

async function systemResolve(hostname: string): Promise<ResolvedAddress[]> {
  return (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
}

/** The one address a connection may go to: the name's resolution, checked. */
async function checkedAddress(url: URL, options: DocumentFetchOptions): Promise<ResolvedAddress> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const literal = isIP(host);
  let addresses: ResolvedAddress[];
  if (literal !== 0) addresses = [{ address: host, family: literal === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await (options.resolve ?? systemResolve)(host);
    } catch {
      throw new DocumentFetchError(`the name ${host} could not be resolved`);
    }
  }
  if (addresses.length === 0) throw new DocumentFetchError(`the name ${host} could not be resolved`);
  // Every address, not only the one used: a name that answers with both a public and a private address is someone
  // pointing this server inward.
  if (addresses.some((a) => isSpecialUseAddress(a.address)) && !options.privateHosts.includes(url.hostname)) {
    throw new DocumentFetchError(`${host} resolves to a loopback, private or other special-use address (RFC 6890), which this server does not fetch from`);
  }
  return addresses[0]!;
}

/** A lookup that answers every question with the address already checked: the connection cannot go elsewhere. */
function pinnedLookup(target: ResolvedAddress): LookupFunction {
  return ((_hostname: string, opts: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (opts?.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  }) as unknown as LookupFunction;
}

/** Cache-Control's max-age (RFC 9111 §5.2.2.1), 0 for no-store or no-cache, undefined when it says neither. */
export function maxAgeOf(cacheControl: string | undefined): number | undefined {
  if (!cacheControl) return undefined;
  const directives = cacheControl.toLowerCase().split(',').map((d) => d.trim());
  if (directives.some((d) => d === 'no-store' || d === 'no-cache')) return 0;
  const maxAge = directives.find((d) => d.startsWith('max-age='));
  const seconds = maxAge ? Number(maxAge.slice('max-age='.length).replace(/^"|"$/g, '')) : NaN;
  return Number.isInteger(seconds) && seconds >= 0 ? seconds : undefined;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** GETs the document at `url` (a checked Client Identifier URL) and parses it, or throws DocumentFetchError. */
export async function fetchClientDocument(url: URL, options: DocumentFetchOptions): Promise<FetchedDocument> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const timedOut = new Promise<never>((_, reject) => {
    deadline.addEventListener('abort', () => reject(new DocumentFetchError(`the document did not arrive within ${options.timeoutMs} ms`)), { once: true });
  });
  timedOut.catch(() => {});
  const target = await Promise.race([checkedAddress(url, options), timedOut]);
  const fetched = await Promise.race([get(url, target, options, deadline), timedOut]);
  return { ...fetched, address: target.address };
}

function get(url: URL, target: ResolvedAddress, options: DocumentFetchOptions, signal: AbortSignal): Promise<Omit<FetchedDocument, 'address'>> {
  const requestOptions: RequestOptions = {
    method: 'GET',
    protocol: 'https:',
    hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 443 : Number(url.port),
    path: `${url.pathname}${url.search}`,
    headers: { Accept: 'application/json' },
    lookup: pinnedLookup(target),
    agent: false,
    signal,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
  };
  return new Promise<Omit<FetchedDocument, 'address'>>((resolve, reject) => {
    const req = request(requestOptions, (res) => {
      const fail = (reason: string) => {
        res.destroy();
        reject(new DocumentFetchError(reason));
      };
      // The draft's Client Information Discovery: 200 only, and redirects are never followed (a redirect would fetch a URL the client_id does not name).
      if (res.statusCode !== 200) {
        const moved = res.statusCode !== undefined && res.statusCode >= 300 && res.statusCode < 400;
        return fail(moved ? `the document URL answered with a redirect (${res.statusCode}), which this server does not follow` : `the document URL answered ${res.statusCode}, not 200`);
      }
      if (!JSON_TYPE.test(res.headers['content-type'] ?? '')) return fail('the document is not served as JSON (Content-Type application/json)');
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > options.maxBytes) return fail(`the document is larger than ${options.maxBytes} bytes`);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBytes) return fail(`the document is larger than ${options.maxBytes} bytes`);
        chunks.push(chunk);
      });
      res.on('error', () => reject(new DocumentFetchError('the document could not be read')));
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return reject(new DocumentFetchError('the document is not valid JSON'));
        }
        resolve({ body, maxAgeSec: maxAgeOf(res.headers['cache-control']) });
      });
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (signal.aborted) return; // the deadline's own error is the one reported
      reject(new DocumentFetchError(`the document could not be fetched (${error.code ?? 'connection failed'})`));
    });
    req.end();
  });
}
