// Fetching a Client ID Metadata Document (draft-ietf-oauth-client-id-metadata-
// document: Client Information Discovery, SSRF, Maximum Response Size) without letting a client aim this server at its own
// network: the name is resolved once, every address checked against the
// special-use ranges (RFC 6890), and the connection made to the address
// checked, so a second answer from DNS cannot move it (DNS rebinding). One GET
// over https, no redirects followed, a deadline for the whole exchange, a cap
// on the bytes read, and a cap on the fetches under way at once: in all and
// for each source of the requests that ask for them, and, for re-fetches of
// clients already stored, in a pool of their own capped per document host.
import { lookup as dnsLookup, Resolver } from 'node:dns/promises';
import { request, type RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import { pinnedLookup, type ResolvedAddress } from '../http/pinned-get.js';
import { isLoopbackAddress, isSpecialUseAddress } from '../http/special-use.js';

export { isSpecialUseAddress };
export type { ResolvedAddress };

export interface DocumentFetchOptions {
  /**
   * Host names (as in the URL, lower case) whose documents may come from a loopback address: for development and
   * tests on this computer (the draft's SSRF section lets an AS for development relax the rule for loopback, and for
   * nothing else). Their names are resolved by the system (the hosts file). Empty in production.
   */
  privateHosts: readonly string[];
  /** Whole exchange, from resolving the name to the last byte. */
  timeoutMs: number;
  /** Bytes read at most; a longer document is refused (the draft's Maximum Response Size recommends 5 KB). */
  maxBytes: number;
  /** Certificates trusted besides the system's (tests with a private CA). */
  ca?: string | Buffer;
  /** Name resolution (tests inject one); by default DNS (A and AAAA), or the system's resolver for `privateHosts`. */
  resolve?: (hostname: string) => Promise<ResolvedAddress[]>;
}

export interface FetchedDocument {
  body: unknown;
  /** The address the document came from (one of those checked). */
  address: string;
  /** The Cache-Control max-age, in seconds, when the response gave one; 0 for no-store or no-cache. */
  maxAgeSec: number | undefined;
}

/**
 * What became of a fetch that gave no document:
 * - `busy`: not started, too many fetches under way (in all, for this source, or re-fetches of this document's
 *   host), or this source's too many failures lately (client-documents.ts);
 * - `unanswered`: started and not answered by the document's host: its name servers failed or did not answer in
 *   time, the connection failed or broke, the deadline passed, or the server said it cannot answer now (5xx, 429);
 * - `refused`: answered (or resolved) with what this server does not take: a name that does not exist or has no
 *   address (NXDOMAIN, or no A and no AAAA record), a special-use address, another status, not JSON, too large.
 * Only `unanswered` is the host's own silence: client-documents.ts serves a stored client through it, for a while.
 * `busy` is this server's state, which requesters can bring about (found in review: a requester that burned its own
 * failure budget, or four sources holding every permit, had a removed or changed document ignored for a day).
 */
export type DocumentFetchFailure = 'busy' | 'unanswered' | 'refused';

/** Why a document could not be fetched: said to the client (invalid_client) and on the /authorize page. */
export class DocumentFetchError extends Error {
  override readonly name = 'DocumentFetchError';

  constructor(
    message: string,
    readonly failure: DocumentFetchFailure,
  ) {
    super(message);
  }
}

/**
 * Fetches under way at once, in this process, at most: each holds a socket and up to `maxBytes` for up to
 * `timeoutMs`, and anyone can start one (a /token request naming a URL is enough), so past this a fetch is refused
 * at once rather than queued.
 */
export const MAX_CONCURRENT_FETCHES = 16;
/**
 * Of those, at most this many for one source of requests (request-source.ts): found in review, one source holding
 * all 16 with documents that never answer (or names whose DNS never answers) refused every other client's first
 * use, and the refresh of every stored one whose freshness had lapsed, for as long as it kept asking.
 */
export const MAX_FETCHES_PER_SOURCE = 4;
/**
 * Re-fetches of clients already stored (their freshness lapsed) under way at once, and of those for one document
 * host: a pool apart, not charged to whoever asks. Found in review: charged to the requester's permits, four sources
 * holding all 16 made every stored client whose freshness lapsed unusable (or, before, served it stale). To hold
 * this pool one needs stored clients of its own on as many hosts, whose documents answered once.
 */
export const MAX_CONCURRENT_REFRESHES = 8;
export const MAX_REFRESHES_PER_HOST = 2;

/** Fetch permits: `limit` under way in all, `perKey` for one key (a source, a document host). */
class Permits {
  #underWay = 0;
  readonly #ofKey = new Map<string, number>();

  constructor(
    readonly limit: number,
    readonly perKey: number,
    readonly full: string,
    readonly keyFull: string,
  ) {}

  /** Takes one for `key`, or throws `busy`; the function returned gives it back. */
  take(key: string): () => void {
    const held = this.#ofKey.get(key) ?? 0;
    if (this.#underWay >= this.limit) throw new DocumentFetchError(this.full, 'busy');
    if (held >= this.perKey) throw new DocumentFetchError(this.keyFull, 'busy');
    this.#underWay++;
    this.#ofKey.set(key, held + 1);
    return () => {
      this.#underWay--;
      const left = (this.#ofKey.get(key) ?? 1) - 1;
      if (left > 0) this.#ofKey.set(key, left);
      else this.#ofKey.delete(key);
    };
  }
}

const fetches = new Permits(
  MAX_CONCURRENT_FETCHES,
  MAX_FETCHES_PER_SOURCE,
  'too many client metadata documents are being fetched; try again shortly',
  'too many client metadata documents are being fetched for requests from this address; try again shortly',
);
const refreshes = new Permits(
  MAX_CONCURRENT_REFRESHES,
  MAX_REFRESHES_PER_HOST,
  'too many stored clients\' metadata documents are being fetched again; try again shortly',
  'too many metadata documents on this host are being fetched again; try again shortly',
);

/**
 * DNS through c-ares, on the event loop: the system's resolver (dns.lookup) runs getaddrinfo on libuv's threadpool,
 * where slow lookups hold the few slots for slow I/O, so two requests naming names whose servers never answer
 * stalled every other fetch's lookup for seconds. Each try waits a fifth of the deadline, two tries per server;
 * the deadline cancels what is left. A and AAAA both, every address kept: all of them are checked, and those are
 * the only ones a connection may go to. When one query fails (SERVFAIL, no answer in time) and the other answers,
 * that answer is used: found in review, a name with a public A record whose AAAA query failed could not be fetched
 * from. Nothing is unchecked that way: the addresses not learned are not connected to.
 */
async function resolveByDns(hostname: string, timeoutMs: number, deadline: AbortSignal): Promise<ResolvedAddress[]> {
  const resolver = new Resolver({ timeout: Math.max(100, Math.floor(timeoutMs / 5)), tries: 2 });
  const cancel = () => resolver.cancel();
  deadline.addEventListener('abort', cancel, { once: true });
  try {
    const [v4, v6] = await Promise.allSettled([answers(resolver.resolve4(hostname), 4), answers(resolver.resolve6(hostname), 6)]);
    const found = [v4, v6].flatMap((family) => (family.status === 'fulfilled' ? family.value : []));
    const failed = [v4, v6].find((family): family is PromiseRejectedResult => family.status === 'rejected');
    if (found.length === 0 && failed) throw failed.reason;
    return found;
  } finally {
    deadline.removeEventListener('abort', cancel);
  }
}

/** One record type's addresses; none when the name has none of that type (NODATA) or does not exist (NXDOMAIN), any other failure thrown. */
async function answers(query: Promise<string[]>, family: 4 | 6): Promise<ResolvedAddress[]> {
  try {
    return (await query).map((address) => ({ address, family }));
  } catch (error) {
    if (saysNoSuchName(error)) return [];
    throw error;
  }
}

/** The system's resolver, hosts file first: only for the operator's own development host names. */
async function resolveBySystem(hostname: string): Promise<ResolvedAddress[]> {
  return (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
}

/** Whether a resolver's error says the name does not exist or has no address: ENOTFOUND (NXDOMAIN; getaddrinfo's EAI_NONAME) or ENODATA. */
function saysNoSuchName(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOTFOUND' || code === 'ENODATA';
}

/** The URL's host as a name or an address: an IPv6 literal without its brackets. */
function bareHost(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** The addresses a connection may go to: the name's resolution, every address checked. */
async function checkedAddresses(url: URL, options: DocumentFetchOptions, deadline: AbortSignal): Promise<ResolvedAddress[]> {
  const host = bareHost(url);
  const literal = isIP(host);
  const development = options.privateHosts.includes(url.hostname);
  let addresses: ResolvedAddress[];
  if (literal !== 0) addresses = [{ address: host, family: literal === 6 ? 6 : 4 }];
  else {
    try {
      if (options.resolve) addresses = await options.resolve(host);
      else addresses = development ? await resolveBySystem(host) : await resolveByDns(host, options.timeoutMs, deadline);
    } catch (error) {
      if (!saysNoSuchName(error)) throw new DocumentFetchError(`the name ${host} could not be resolved`, 'unanswered');
      addresses = [];
    }
  }
  // An answer, as a 404 is: the owner deleted the name or let the domain lapse, or it never had an address. Found in
  // review: taken as no answer, it had a stored client served as stored for a day. SERVFAIL and silence are no answer.
  if (addresses.length === 0) throw new DocumentFetchError(`the name ${host} does not exist or has no address (no A or AAAA record)`, 'refused');
  // Every address, not only the one used: a name that answers with both a public and a private address is someone
  // pointing this server inward. A development host may be on loopback (the draft's SSRF section), never on a private
  // network, link-local (a cloud's metadata endpoint at 169.254.169.254) or any other special-use range.
  const refused = (a: ResolvedAddress) => isSpecialUseAddress(a.address) && !(development && isLoopbackAddress(a.address));
  if (addresses.some(refused)) {
    throw new DocumentFetchError(`${host} resolves to a loopback, private or other special-use address (RFC 6890), which this server does not fetch from`, 'refused');
  }
  return addresses;
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

/**
 * GETs the document at `url` (a checked Client Identifier URL) and parses it, or throws DocumentFetchError.
 * `source`: who asks (request-source.ts), whose share of the fetch permits it takes; unless `refresh`, a stored
 * client's document fetched again, which takes a permit of the re-fetch pool for its host instead.
 */
export async function fetchClientDocument(url: URL, options: DocumentFetchOptions, source: string, refresh = false): Promise<FetchedDocument> {
  const release = refresh ? refreshes.take(url.hostname) : fetches.take(source);
  try {
    return await fetchWithinDeadline(url, options);
  } finally {
    release();
  }
}

async function fetchWithinDeadline(url: URL, options: DocumentFetchOptions): Promise<FetchedDocument> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const timedOut = new Promise<never>((_, reject) => {
    deadline.addEventListener('abort', () => reject(new DocumentFetchError(`the document did not arrive within ${options.timeoutMs} ms`, 'unanswered')), { once: true });
  });
  timedOut.catch(() => {});
  const targets = await Promise.race([checkedAddresses(url, options, deadline), timedOut]);
  return Promise.race([get(url, targets, options, deadline), timedOut]);
}

function get(url: URL, targets: readonly ResolvedAddress[], options: DocumentFetchOptions, signal: AbortSignal): Promise<FetchedDocument> {
  const requestOptions: RequestOptions = {
    method: 'GET',
    protocol: 'https:',
    hostname: bareHost(url),
    port: url.port === '' ? 443 : Number(url.port),
    path: `${url.pathname}${url.search}`,
    headers: { Accept: 'application/json' },
    lookup: pinnedLookup(targets),
    agent: false,
    signal,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
  };
  return new Promise<FetchedDocument>((resolve, reject) => {
    const req = request(requestOptions, (res) => {
      const from = res.socket?.remoteAddress ?? targets[0]!.address;
      const fail = (reason: string, failure: DocumentFetchFailure = 'refused') => {
        res.destroy();
        reject(new DocumentFetchError(reason, failure));
      };
      // The draft's Client Information Discovery: 200 only, and redirects are never followed (a redirect would fetch a URL the client_id does not name).
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        if (status >= 300 && status < 400) return fail(`the document URL answered with a redirect (${status}), which this server does not follow`);
        // 5xx and 429 (RFC 6585 §4) say the server cannot answer now, not what the document is.
        return fail(`the document URL answered ${status}, not 200`, status >= 500 || status === 429 ? 'unanswered' : 'refused');
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
      res.on('error', () => reject(new DocumentFetchError('the document could not be read', 'unanswered')));
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return reject(new DocumentFetchError('the document is not valid JSON', 'refused'));
        }
        resolve({ body, address: from, maxAgeSec: maxAgeOf(res.headers['cache-control']) });
      });
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (signal.aborted) return; // the deadline's own error is the one reported
      reject(new DocumentFetchError(`the document could not be fetched (${error.code ?? 'connection failed'})`, 'unanswered'));
    });
    // An unasked 101 (RFC 9110 §7.8): node:http drops the socket with neither an answer nor an error, and the fetch
    // waited out its deadline holding a fetch permit (found at stop 24 for feeds). Refused at once.
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      reject(new DocumentFetchError('the document could not be fetched (the server switched protocols unasked)', 'refused'));
    });
    req.end();
  });
}
