// The client metadata document fetcher (src/authz/client-document-fetch.ts)
// against what a client can aim it at: addresses in every special-use range
// (and public ones, which it must still reach), a development host resolving
// past loopback, more fetches at once than it takes (in all, and for one
// source), a name whose first address cannot be reached, an address with no
// route (which ended the process), name servers that never answer (which held
// every other fetch's lookup), answer one family and fail the other, or say
// the name does not exist (an answer, which ends serving a stored client). The
// last four run in a network namespace with only loopback
// (test/support/netns.ts): nothing they try can leave this machine.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fetchClientDocument as fetchFor,
  isSpecialUseAddress,
  MAX_CONCURRENT_FETCHES,
  MAX_FETCHES_PER_SOURCE,
  type DocumentFetchOptions,
  type ResolvedAddress,
} from '../../src/authz/client-document-fetch.js';
import { netnsUnavailable, runInNetns } from '../support/netns.js';

/** expect.poll's wait for held fetches to reach the server: vitest's default of 1 s is short on a loaded machine (s28flake). */
const POLL = { timeout: 10_000 };

describe('special-use addresses (RFC 6890: the IANA special-purpose registries)', () => {
  it('public IPv4 and IPv6 addresses are fetched from', () => {
    for (const address of ['8.8.8.8', '93.184.216.34', '1.1.1.1', '140.82.112.3', '2606:4700::1111', '2a00:1450::1', '2001:4860:4860::8888', '2606:2800:220:1:248:1893:25c8:1946']) {
      expect(isSpecialUseAddress(address), address).toBe(false);
    }
  });

  it('every IPv4 special-purpose entry, multicast and broadcast are refused', () => {
    const samples = [
      '0.0.0.0', '0.1.2.3', '10.0.0.1', '100.64.0.1', '100.127.255.254', '127.0.0.1', '127.255.255.254', '169.254.169.254', '172.16.0.1', '172.31.255.254',
      '192.0.0.8', '192.0.0.170', '192.0.2.1', '192.31.196.1', '192.52.193.1', '192.88.99.1', '192.168.1.1', '192.175.48.1', '198.18.0.1', '198.19.255.254',
      '198.51.100.1', '203.0.113.1', '224.0.0.1', '239.255.255.250', '240.0.0.1', '255.255.255.255',
    ];
    expect(samples.filter((a) => !isSpecialUseAddress(a))).toEqual([]);
  });

  it('every IPv6 special-purpose entry, the forms that carry an IPv4 address, site-local and reserved space are refused', () => {
    const samples = [
      '::', '::1', '::7f00:1', '::a00:1', '::8.8.8.8', '::ffff:127.0.0.1', '::ffff:8.8.8.8', '::ffff:0:a00:1', '::ffff:0:808:808', '64:ff9b::808:808', '64:ff9b:1::1',
      '100::1', '100:0:0:1::1', '2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001:2::1', '2001:3::1', '2001:4:112::1', '2001:10::1', '2001:20::1', '2001:30::1',
      '2001:db8::1', '2002:808:808::1', '2002:a00:1::1', '2620:4f:8000::1', '3fff::1', '3fff:fff::1', '5f00::1', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'fe80::1%eth0',
      'fec0::1', 'ff02::1', '4000::1', 'e000::1',
    ];
    expect(samples.filter((a) => !isSpecialUseAddress(a))).toEqual([]);
  });

  it('what is not an IP address is refused', () => {
    expect(isSpecialUseAddress('localhost')).toBe(true);
    expect(isSpecialUseAddress('')).toBe(true);
  });
});

let root: string;
let cert: Buffer;
let server: Server;
let port: number;
/** Requests the document server is holding, unanswered. */
const held = new Set<Socket>();

function document(clientId: string): string {
  return JSON.stringify({ client_id: clientId, client_name: 'Dev App', redirect_uris: ['http://127.0.0.1:33418/cb'], token_endpoint_auth_method: 'none' });
}

function options(resolve: (hostname: string) => Promise<ResolvedAddress[]>, extra: Partial<DocumentFetchOptions> = {}): DocumentFetchOptions {
  return { privateHosts: ['dev.test'], timeoutMs: 2_000, maxBytes: 5_120, ca: cert, resolve, ...extra };
}

/** Fetches as one source of requests; the tests of the fetch permits name theirs. */
const fetchClientDocument = (url: URL, fetchOptions: DocumentFetchOptions, source = 'address 203.0.113.7') => fetchFor(url, fetchOptions, source);

const answer = (...addresses: string[]) => async (): Promise<ResolvedAddress[]> => addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'delegate-docfetch-'));
  const [keyFile, certFile] = [join(root, 'key.pem'), join(root, 'cert.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=dev.test',
    '-addext', 'subjectAltName=DNS:dev.test,DNS:public.test'], { stdio: 'ignore' });
  cert = readFileSync(certFile);
  server = createServer({ key: readFileSync(keyFile), cert }, (req, res) => {
    if (req.url?.startsWith('/hold/')) {
      held.add(req.socket);
      return;
    }
    if (req.url === '/upgrade.json') {
      req.socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(document(`https://${req.headers.host}${req.url}`));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  port = (server.address() as { port: number }).port;
}, 30_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
  rmSync(root, { recursive: true, force: true });
});

describe('a development host (DELEGATE_CIMD_PRIVATE_HOSTS)', () => {
  it('is fetched from on loopback', async () => {
    const fetched = await fetchClientDocument(new URL(`https://dev.test:${port}/client.json`), options(answer('127.0.0.1')));
    expect(fetched.address).toBe('127.0.0.1');
    expect((fetched.body as { client_name: string }).client_name).toBe('Dev App');
  });

  it('is refused when it resolves to a private, link-local (a cloud metadata endpoint) or other special-use address', async () => {
    // Loopback first in each answer: the code before the fix took the listed host as exempt and connected to the
    // first address, so even that reached nothing but this machine. Refused now before any connection.
    for (const other of ['169.254.169.254', '10.0.0.7', '192.168.1.1', '100.64.0.1', 'fe80::1', 'fd00::1', '::ffff:169.254.169.254']) {
      await expect(fetchClientDocument(new URL(`https://dev.test:${port}/client.json`), options(answer('127.0.0.1', other))), other).rejects.toThrow(/special-use address/);
    }
  });

  // Found at stop 24 (the feeds' pinned GET hung on this, review s24new): node:http emits neither an answer nor an
  // error for an unasked 101, so the fetch waited out its whole deadline holding one of the few fetch permits.
  it('answering 101 Switching Protocols (no upgrade was asked for) fails at once as unfetchable, not at the deadline', async () => {
    const error = await fetchClientDocument(new URL(`https://dev.test:${port}/upgrade.json`), options(answer('127.0.0.1'), { timeoutMs: 20_000 })).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/could not be fetched \(the server switched protocols unasked\)/);
  });

  it('a host not listed is refused on loopback too', async () => {
    await expect(fetchClientDocument(new URL(`https://public.test:${port}/client.json`), options(answer('127.0.0.1')))).rejects.toThrow(/special-use address/);
  });
});

describe('fetches under way at once', () => {
  /**
   * Fetches of documents the server holds unanswered, `count` of them for each source; each ends with its message. They
   * wait 20 s: a fetch refused "at once" is told apart from one queued for their permits by a bound of 5 s, which a
   * loaded machine does not reach (a bound of 500 ms under their 2 s was short: s28flake).
   */
  const hold = (sources: string[], count: number) =>
    sources.flatMap((source) =>
      Array.from({ length: count }, (_, i) => fetchClientDocument(new URL(`https://dev.test:${port}/hold/${source}/${i}.json`), options(answer('127.0.0.1'), { timeoutMs: 20_000 }), source).catch((error: Error) => error.message)),
    );
  const release = () => {
    for (const socket of held) socket.destroy();
    held.clear();
  };

  it(`are at most ${MAX_CONCURRENT_FETCHES}: past that, refused at once; once they end, fetched again`, async () => {
    const sources = Array.from({ length: MAX_CONCURRENT_FETCHES / MAX_FETCHES_PER_SOURCE }, (_, i) => `address 198.51.100.${i}`);
    const holding = hold(sources, MAX_FETCHES_PER_SOURCE);
    const started = Date.now();
    await expect(fetchClientDocument(new URL(`https://dev.test:${port}/one-more.json`), options(answer('127.0.0.1')), 'address 192.0.2.99')).rejects.toThrow(
      'too many client metadata documents are being fetched; try again shortly',
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect.poll(() => held.size, POLL).toBe(MAX_CONCURRENT_FETCHES);
    release();
    expect(await Promise.all(holding)).toEqual(Array(MAX_CONCURRENT_FETCHES).fill('the document could not be fetched (ECONNRESET)'));
    const fetched = await fetchClientDocument(new URL(`https://dev.test:${port}/one-more.json`), options(answer('127.0.0.1')));
    expect(fetched.address).toBe('127.0.0.1');
  });

  it(`are at most ${MAX_FETCHES_PER_SOURCE} for one source of requests: past that, that source is refused at once, and others fetch`, async () => {
    // Found in review: one source could hold all 16 with documents that never answer, refusing everyone else's.
    const holding = hold(['address 203.0.113.66'], MAX_FETCHES_PER_SOURCE);
    await expect.poll(() => held.size, POLL).toBe(MAX_FETCHES_PER_SOURCE);
    const started = Date.now();
    await expect(fetchClientDocument(new URL(`https://dev.test:${port}/fifth.json`), options(answer('127.0.0.1')), 'address 203.0.113.66')).rejects.toThrow(
      'too many client metadata documents are being fetched for requests from this address; try again shortly',
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    const other = await fetchClientDocument(new URL(`https://dev.test:${port}/other.json`), options(answer('127.0.0.1')), 'address 198.51.100.200');
    expect(other.address).toBe('127.0.0.1');
    release();
    expect(await Promise.all(holding)).toEqual(Array(MAX_FETCHES_PER_SOURCE).fill('the document could not be fetched (ECONNRESET)'));
    expect((await fetchClientDocument(new URL(`https://dev.test:${port}/fifth.json`), options(answer('127.0.0.1')), 'address 203.0.113.66')).address).toBe('127.0.0.1');
  });
});

const v6Loopback = Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.address === '::1'));
if (!v6Loopback) console.log('test/authz/client-document-fetch.test.ts: the test with both address families is skipped: no ::1 here');

describe.skipIf(!v6Loopback)('a name with addresses of both families, the document server on one of them', () => {
  let v6Server: Server;
  beforeAll(async () => {
    v6Server = createServer({ key: readFileSync(join(root, 'key.pem')), cert }, (req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(document(`https://${req.headers.host}${req.url}`)));
    await new Promise<void>((done) => v6Server.listen(0, '::1', done));
  });
  afterAll(async () => {
    v6Server?.closeAllConnections();
    await new Promise<void>((done) => (v6Server ? v6Server.close(() => done()) : done()));
  });

  it('is fetched from the address that answers (Happy Eyeballs, RFC 8305): the other is tried when the first refuses', async () => {
    // Found in review: only the first address was given to the connection, so `localhost` answering ::1 first
    // (a dual-stack hosts file) failed with ECONNREFUSED while the document server listened on 127.0.0.1.
    const onV4 = await fetchClientDocument(new URL(`https://dev.test:${port}/both.json`), options(answer('::1', '127.0.0.1')));
    expect(onV4.address).toBe('127.0.0.1');
    const v6Port = (v6Server.address() as { port: number }).port;
    const onV6 = await fetchClientDocument(new URL(`https://dev.test:${v6Port}/both.json`), options(answer('127.0.0.1', '::1')));
    expect(onV6.address).toBe('::1');
  });
});

const unavailable = netnsUnavailable();
if (unavailable) console.log(`test/authz/client-document-fetch.test.ts: the network-namespace tests are skipped: ${unavailable}`);

describe.skipIf(unavailable !== undefined)('in a network namespace with only loopback', () => {
  const run = async (mode: string) => {
    const child = await runInNetns('test/authz/fixtures/document-fetch-netns.ts', [mode], { timeoutMs: 60_000, env: { UV_THREADPOOL_SIZE: '4' } });
    expect(child.status, child.stderr).toBe(0);
    return JSON.parse(child.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  };

  it('a document on an address with no route: invalid_client "could not be fetched (ENETUNREACH)", and the server stays up', async () => {
    const result = await run('unreachable');
    expect(result.status).toBe(400);
    expect(result.body).toMatchObject({ error: 'invalid_client' });
    expect(String((result.body as { error_description: string }).error_description)).toMatch(/could not be fetched \(ENETUNREACH\)/);
    expect(result.metadataAfter).toBe(200);
  }, 90_000);

  it('names whose name server never answers end within the deadline and hold up no other fetch', async () => {
    const result = (await run('slow-dns')) as { local: string; localMs: number; slow: Array<{ said: string; ms: number }>; queries: number };
    // The development host was resolved from the hosts file at once and the connection tried (nothing listens there).
    expect(result.local).toBe('the document could not be fetched (ECONNREFUSED)');
    expect(result.localMs).toBeLessThan(1_000);
    for (const slow of result.slow) {
      expect(slow.said).toMatch(/^the name n\d\.slow\.test could not be resolved$/);
      expect(slow.ms).toBeLessThan(2_500);
    }
    expect(result.queries).toBeGreaterThan(0);
  }, 90_000);

  it('a name whose A or AAAA query fails is fetched from the addresses of the other, all of them checked; one that cannot be reached is passed over', async () => {
    // A name server on 127.0.0.1:53 answering per case, and the document server on 1.2.3.4 and 2606:4700::1111,
    // public addresses put on the namespace's loopback. Found in review: a failed AAAA query (SERVFAIL, or no answer)
    // failed the whole name though its A record was public, and only the first address was ever tried.
    const result = (await run('dns')) as Record<string, string>;
    expect(result).toEqual({
      'A public, AAAA SERVFAIL': 'fetched from 1.2.3.4',
      'A public, AAAA never answered': 'fetched from 1.2.3.4',
      'A SERVFAIL, AAAA public': 'fetched from 2606:4700::1111',
      'A SERVFAIL, AAAA SERVFAIL': 'the name doc.test could not be resolved [unanswered]',
      'A private, AAAA SERVFAIL': expect.stringMatching(/special-use address/),
      'A public, AAAA private': expect.stringMatching(/special-use address/),
      'A with no route here, AAAA public': 'fetched from 2606:4700::1111',
      // Found in review (regress20f): taken as no answer, a deleted name kept its stored client served for a day.
      'A NXDOMAIN, AAAA NXDOMAIN': 'the name doc.test does not exist or has no address (no A or AAAA record) [refused]',
      'A none, AAAA none': 'the name doc.test does not exist or has no address (no A or AAAA record) [refused]',
      'A NXDOMAIN, AAAA SERVFAIL': 'the name doc.test could not be resolved [unanswered]',
    });
  }, 90_000);
});
