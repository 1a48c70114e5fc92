// A feed's redirects, with real servers on 127.0.0.1 (found in review,
// s23feeds: fetch followed up to 20 of them wherever they led, and the check
// of the port's owner saw only the first URL, so a feed redirecting to a port
// held by `nobody` was fetched from it and added). Each hop is followed by
// hand and checked: at most 5; http(s) without credentials; never to another
// user's port; and from a feed on a public address, never into loopback or a
// private or link-local network. Public addresses are played by host names
// that a test resolver answers for and a test fetch sends to a loopback
// server, so nothing leaves this machine.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CalendarSourceError } from '../../src/calendar/errors.js';
import { createFeedLoader, MAX_FEED_REDIRECTS, type FeedCache, type FeedCacheRecord, type FeedLoaderOptions } from '../../src/calendar/feeds.js';
import { pinnedGet, type PinnedGet } from '../../src/http/pinned-get.js';

const ICS = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//test//EN', 'BEGIN:VEVENT', 'UID:a', 'DTSTART:20261201T100000Z', 'DURATION:PT1H', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');

/** What a request asked for, with the validators it sent. */
interface Seen {
  path: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
}

/** The Location of /moving, which the test changes. */
const moving = { location: '/ok' };
const CAL_TAG = '"cal-v1"';
const CAL_DATE = 'Tue, 01 Dec 2026 08:00:00 GMT';

/**
 * Serves the calendar at /ok, and at /cal with validators (304 when they match); redirects /to?u=<Location>,
 * /moving to moving.location, and /hop/<n> to /hop/<n-1> down to /ok; notes every path asked for, and in `seen`
 * with the validators sent.
 */
async function feedServer(): Promise<{ server: Server; base: string; paths: string[]; seen: Seen[] }> {
  const paths: string[] = [];
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    paths.push(url.pathname);
    const ifNoneMatch = req.headers['if-none-match'];
    const ifModifiedSince = req.headers['if-modified-since'];
    seen.push({ path: url.pathname, ...(ifNoneMatch ? { ifNoneMatch } : {}), ...(ifModifiedSince ? { ifModifiedSince } : {}) });
    if (url.pathname === '/ok') return void res.writeHead(200, { 'Content-Type': 'text/calendar' }).end(ICS);
    if (url.pathname === '/cal') {
      if (ifNoneMatch === CAL_TAG) return void res.writeHead(304, { ETag: CAL_TAG }).end();
      return void res.writeHead(200, { 'Content-Type': 'text/calendar', ETag: CAL_TAG, 'Last-Modified': CAL_DATE }).end(ICS);
    }
    if (url.pathname === '/moving') return void res.writeHead(302, { Location: moving.location }).end();
    if (url.pathname === '/to') return void res.writeHead(302, url.searchParams.get('u') ? { Location: url.searchParams.get('u')! } : {}).end();
    const hop = /^\/hop\/(\d+)$/.exec(url.pathname);
    if (hop) return void res.writeHead(307, { Location: Number(hop[1]) > 1 ? `/hop/${Number(hop[1]) - 1}` : '/ok' }).end();
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, paths, seen };
}

let origin: Awaited<ReturnType<typeof feedServer>>;
let other: Awaited<ReturnType<typeof feedServer>>;

beforeAll(async () => {
  origin = await feedServer();
  other = await feedServer();
});

afterAll(async () => {
  for (const { server } of [origin, other]) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

function memoryCache(): FeedCache {
  const records = new Map<string, FeedCacheRecord>();
  return { feedCache: async (id) => records.get(id), saveFeedCache: async (r) => void records.set(r.calendarId, r) };
}

/** Loads `url` once with a fresh cache; the calendar's event count, or the refusal's reason. */
async function load(url: string, options: Partial<FeedLoaderOptions> = {}): Promise<number | string> {
  const feeds = createFeedLoader({ cache: memoryCache(), timeoutMs: 5_000, ...options });
  try {
    return (await feeds.load({ name: 'work', id: 'cal_1', url })).series.length;
  } catch (error) {
    if (error instanceof CalendarSourceError) return error.reason;
    throw error;
  }
}

/**
 * Public host names for the test: `feeds.example` and `cdn.example` resolve to public addresses and are served by
 * the loopback servers (`origin`, `other`); `intranet.example` resolves to a private address. A request to any
 * other host than those and 127.0.0.1 fails without a connection: nothing leaves this machine.
 */
const PUBLIC_NAMES: Record<string, string[]> = { 'feeds.example': ['8.8.8.8'], 'cdn.example': ['2001:4860:4860::8888'], 'intranet.example': ['8.8.4.4', '10.0.0.5'] };
const resolve = async (host: string) => PUBLIC_NAMES[host] ?? Promise.reject(Object.assign(new Error('no such name'), { code: 'ENOTFOUND' }));
const offMachine: string[] = [];
const LOOPBACK = [{ address: '127.0.0.1', family: 4 as const }];
const viaLoopback: PinnedGet = (input, addresses, init) => {
  const url = new URL(input);
  const served = { 'feeds.example': origin.base, 'cdn.example': other.base }[url.hostname];
  if (served) return pinnedGet()(`${served}${url.pathname}${url.search}`, LOOPBACK, init);
  if (addresses.some((a) => a.address !== '127.0.0.1')) {
    offMachine.push(url.hostname);
    return Promise.reject(new TypeError('fetch failed', { cause: Object.assign(new Error('kept on loopback'), { code: 'ETESTONLY' }) }));
  }
  return pinnedGet()(input, addresses, init);
};
const publicly = { resolve, get: viaLoopback };
const to = (base: string, location: string) => `${base}/to?u=${encodeURIComponent(location)}`;

describe('a feed that redirects', () => {
  it(`follows up to ${MAX_FEED_REDIRECTS} redirects, relative ones resolved, and refuses the next one`, async () => {
    expect(await load(`${origin.base}/hop/${MAX_FEED_REDIRECTS}`)).toBe(1);
    origin.paths.length = 0;
    expect(await load(`${origin.base}/hop/${MAX_FEED_REDIRECTS + 1}`)).toBe(`The feed redirected more than ${MAX_FEED_REDIRECTS} times; the last redirect was not followed.`);
    expect(origin.paths).not.toContain('/ok');
  });

  it('refuses a redirect to another scheme, or to a URL with a user name or password, naming no URL', async () => {
    const refusal = 'The feed redirected to an address that is not http or https, or that holds a user name or password; the redirect was not followed.';
    for (const location of ['file:///etc/passwd', 'ftp://127.0.0.1/x.ics', `http://user:secret@${other.base.slice('http://'.length)}/ok`, 'data:text/calendar,BEGIN']) {
      other.paths.length = 0;
      expect(await load(to(origin.base, location)), location).toBe(refusal);
      expect(other.paths).toEqual([]);
    }
  });

  it('refuses a redirect without a Location', async () => {
    expect(await load(to(origin.base, ''))).toBe('The feed could not be fetched: the server answered HTTP 302 without a Location.');
  });

  it('lets a feed on loopback (a local server the user added) redirect to another port of this machine', async () => {
    other.paths.length = 0;
    expect(await load(to(origin.base, `${other.base}/ok`))).toBe(1);
    expect(other.paths).toEqual(['/ok']);
  });

  it('lets a feed on a public address redirect to another public one', async () => {
    other.paths.length = 0;
    expect(await load(to('http://feeds.example', 'http://cdn.example/ok'), publicly)).toBe(1);
    expect(other.paths).toEqual(['/ok']);
  });

  it('refuses a redirect from https to plain http, and follows one from https to https or from http to https', async () => {
    other.paths.length = 0;
    expect(await load(to('https://feeds.example', 'http://cdn.example/ok'), publicly)).toBe(
      'The feed redirected from https to plain http, where the calendar could be read or changed on the way; the redirect was not followed.',
    );
    expect(other.paths).toEqual([]);
    expect(await load(to('https://feeds.example', 'https://cdn.example/ok'), publicly)).toBe(1);
    expect(await load(to('http://feeds.example', 'https://cdn.example/ok'), publicly)).toBe(1);
    expect(other.paths).toEqual(['/ok', '/ok']);
  });

  it('refuses a feed on a public address redirecting into loopback, a private network, link-local or a name that resolves there', async () => {
    const refusal = 'The feed redirected to a loopback, private or other special-use address (RFC 6890), where a feed on a public address may not send delegate; the redirect was not followed.';
    offMachine.length = 0;
    for (const location of [`${other.base}/ok`, `http://localhost:${new URL(other.base).port}/ok`, 'http://[::1]:8410/', 'http://169.254.169.254/latest/meta-data/', 'http://10.0.0.7/', 'http://[fd00::1]/', 'http://[::ffff:127.0.0.1]/', 'http://intranet.example/x.ics', 'http://x.localhost/']) {
      other.paths.length = 0;
      expect(await load(to('http://feeds.example', location), publicly), location).toBe(refusal);
      expect(other.paths).toEqual([]);
    }
    expect(await load(to('http://feeds.example', 'http://unknown.example/'), publicly)).toBe('The feed redirected to a host whose name could not be resolved; the redirect was not followed.');
    expect(offMachine).toEqual([]);
  });

  // Found in review (s24feeds): the copy's If-None-Match and If-Modified-Since went to every hop, whoever served it.
  it('sends the validators of its copy only to the URL they came from: not to the hops before it, nor to another URL', async () => {
    let now = Date.UTC(2026, 10, 30, 8);
    const feeds = createFeedLoader({ cache: memoryCache(), timeoutMs: 5_000, now: () => now, refreshAfterMs: 60_000 });
    const ref = { name: 'work', id: 'cal_moving', url: `${origin.base}/moving` };
    const validators = { ifNoneMatch: CAL_TAG, ifModifiedSince: CAL_DATE };
    const fresh = async () => {
      origin.seen.length = 0;
      other.seen.length = 0;
      now += 2 * 60_000;
      return (await feeds.load(ref)).series.length;
    };
    moving.location = `${other.base}/cal`;
    expect(await fresh()).toBe(1);
    // Revalidated where the copy came from (a 304); the redirect before it is asked without them.
    expect(await fresh()).toBe(1);
    expect(origin.seen).toEqual([{ path: '/moving' }]);
    expect(other.seen).toEqual([{ path: '/cal', ...validators }]);
    // The feed now redirects to another URL (here on the first server): it is asked without them, and its copy taken.
    moving.location = `${origin.base}/cal`;
    expect(await fresh()).toBe(1);
    expect(origin.seen).toEqual([{ path: '/moving' }, { path: '/cal' }]);
    expect(other.seen).toEqual([]);
    expect(await fresh()).toBe(1);
    expect(origin.seen).toEqual([{ path: '/moving' }, { path: '/cal', ...validators }]);
  });

  it('says nothing of the URLs in its reasons', async () => {
    const reasons = [await load(`${origin.base}/hop/9?secret=s3cr3t`), await load(to('http://feeds.example', 'http://10.0.0.7/s3cr3t'), publicly)];
    for (const reason of reasons) expect(reason).not.toMatch(/s3cr3t|127\.0\.0\.1|10\.0\.0\.7|feeds\.example/);
  });
});

// The review's case: a port held by another user (nobody), reached by a redirect from a feed of our own.
describe.skipIf(process.getuid?.() !== 0 || process.platform !== 'linux')('a feed redirecting to another user’s port', () => {
  let theirs: ChildProcess;
  let theirPort: number;
  let theirRequests = 0;

  beforeAll(async () => {
    const program = `require('http').createServer((q, s) => { console.log('request'); s.writeHead(200, { 'Content-Type': 'text/calendar' }).end(${JSON.stringify(ICS)}); }).listen(0, '127.0.0.1', function () { console.log('port ' + this.address().port); })`;
    theirs = spawn(process.execPath, ['-e', program], { uid: 65534, gid: 65534, cwd: '/' });
    theirPort = await new Promise<number>((resolve, reject) => {
      theirs.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        const port = /port (\d+)/.exec(chunk);
        if (port) resolve(Number(port[1]));
        theirRequests += (chunk.match(/request/g) ?? []).length;
      });
      theirs.once('exit', (code) => reject(new Error(`nobody's server exited ${code}`)));
    });
  });

  afterAll(() => {
    theirs.kill('SIGKILL');
  });

  it('is refused before anything is sent there, saying why without the URL', async () => {
    const reason = await load(to(origin.base, `http://127.0.0.1:${theirPort}/ok`));
    expect(reason).toBe('The feed redirected to a port of this machine that is held by a program of another user (uid 65534); nothing was sent to it.');
    // Their port straight away, as a feed's own URL, is refused as before (now saying so).
    expect(await load(`http://127.0.0.1:${theirPort}/ok`)).toBe("The feed's port on this machine is held by a program of another user (uid 65534); nothing was sent to it.");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(theirRequests).toBe(0);
  });
});
