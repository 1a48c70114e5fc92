// One GET that connects only to addresses already checked: a host name is
// resolved once by the caller, its addresses judged, and the connection made to
// exactly those, so a second answer from DNS (DNS rebinding: public to the
// check, 127.0.0.1 to the connect) cannot move it. The request still names the
// host: the Host header, TLS's SNI and the certificate check are the name's.
// Answers as fetch does (a Response), without following redirects; the body is
// decoded (gzip, deflate, br) as fetch's would be.
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { pipeline, Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** A GET of `url` connected to one of `addresses` (checked by the caller), with these headers, until `signal`. */
export type PinnedGet = (url: string, addresses: readonly ResolvedAddress[], init: { headers: Record<string, string>; signal: AbortSignal }) => Promise<Response>;

/** An address as a ResolvedAddress; undefined for what is no IP address. */
export function resolvedAddress(address: string): ResolvedAddress | undefined {
  const family = isIP(address);
  return family === 0 ? undefined : { address, family: family === 6 ? 6 : 4 };
}

/**
 * A lookup that answers every question with the addresses given, already checked: the connection cannot go elsewhere.
 * Asked for all (Happy Eyeballs, RFC 8305, as Node's autoSelectFamily asks), it gives them all, so an address of the
 * other family is tried when the first cannot be reached (found in review of client metadata documents: given only
 * the first, an AS on an IPv6-only network could not fetch from a host with A and AAAA records). It answers on the
 * next tick, as dns.lookup does: answered at once, an error of a connection tried inside request() (ENETUNREACH,
 * EMFILE) was emitted before the request listened for errors, which ended the process. Also used by
 * src/authz/client-document-fetch.ts.
 */
export function pinnedLookup(addresses: readonly ResolvedAddress[]): LookupFunction {
  return ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    process.nextTick(() => {
      if (options?.all) callback(null, addresses.map((a) => ({ ...a })));
      else callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  }) as unknown as LookupFunction;
}

/** Statuses whose response has no body (RFC 9110 §6.4.1); a Response refuses one for them. */
const NO_BODY = new Set([204, 205, 304]);

/** The body as fetch hands it over: decoded per Content-Encoding (one coding, as servers send); undefined for a coding it does not know. */
function decoded(res: IncomingMessage): Readable | undefined {
  const coding = (res.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (coding === 'identity' || coding === '') return res;
  const decoder = coding === 'gzip' || coding === 'x-gzip' ? createGunzip() : coding === 'deflate' ? createInflate() : coding === 'br' ? createBrotliDecompress() : undefined;
  if (!decoder) return undefined;
  // pipeline: the response is destroyed with the decoder (a body cancelled, or cut at its limit), its socket closed.
  return pipeline(res, decoder, () => undefined);
}

/** The response as fetch gives it; throws for what fetch would refuse (a status outside 200-599, an unknown content coding). */
function responseOf(res: IncomingMessage): Response {
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 599) throw new Error(`status ${status} is no HTTP status`);
  const headers = new Headers();
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
  if (NO_BODY.has(status)) {
    res.resume();
    return new Response(null, { status, headers });
  }
  const body = decoded(res);
  if (!body) throw new Error('the body is in a content coding this client does not read');
  return new Response(Readable.toWeb(body) as ReadableStream<Uint8Array>, { status, headers });
}

/** A PinnedGet over node:http and node:https; `ca`: certificates trusted besides the system's (tests with a private CA). */
export function pinnedGet(options: { ca?: string | Buffer } = {}): PinnedGet {
  return (url, addresses, init) => {
    const target = new URL(url);
    const https = target.protocol === 'https:';
    if (addresses.length === 0) return Promise.reject(new TypeError('fetch failed', { cause: Object.assign(new Error('no address to connect to'), { code: 'ENOTFOUND' }) }));
    const requestOptions: RequestOptions = {
      method: 'GET',
      hostname: target.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: target.port === '' ? (https ? 443 : 80) : Number(target.port),
      path: `${target.pathname}${target.search}`,
      headers: { 'Accept-Encoding': 'gzip, deflate, br', ...init.headers },
      lookup: pinnedLookup(addresses),
      agent: false,
      signal: init.signal,
      ...(https && options.ca !== undefined ? { ca: options.ca } : {}),
    };
    return new Promise<Response>((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(requestOptions, (res) => {
        // Thrown here (a header Headers will not hold), an error would end the process: it fails this request instead.
        try {
          resolve(responseOf(res));
        } catch (error) {
          res.destroy();
          reject(new TypeError('fetch failed', { cause: error }));
        }
      });
      req.on('error', (error) => reject(new TypeError('fetch failed', { cause: error })));
      // Found in review (s24new): a 101 Switching Protocols to a GET that asked for no upgrade (RFC 9110 §7.8) made
      // node:http drop the socket with neither 'response' nor 'error', and the request, already destroyed, ignored
      // the abort: every read of the calendar waited for ever. fetch fails such an answer; so does this.
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        reject(new TypeError('fetch failed', { cause: new Error(`the server switched protocols (HTTP ${res.statusCode}) though none was asked for`) }));
      });
      // Whatever else ends the request without an answer ends the promise too (after an answer, this does nothing).
      req.on('close', () => reject(new TypeError('fetch failed', { cause: new Error('the connection closed before an answer') })));
      req.end();
    });
  };
}
