// A URL feed with no good copy whose answer is refused (here: an event
// without DTSTART, ERR_ICS_EVENT) read again and again at the real calendar
// backend. Found in review: it was fetched and parsed again at every read (a
// refused 20 MB feed cost about 1.5 s of CPU each time), so whoever could get
// a user to add such a feed, or make one turn bad, made every find_slot pay
// that again. The refusal is now remembered as a good copy is: reads within
// the refresh interval answer it with no request to the feed and no parse;
// past it the feed is asked with the refused answer's ETag (a 304 refuses it
// again unparsed), and a feed that has changed is fetched and used. The AS is
// the one `delegate serve` builds (stack.ts); the backend is built as
// buildCalendar builds it, with the feed loader's clock injected (as
// test/cli/calendar-commands.test.ts does) so that the interval can pass. The
// feed's host on 127.0.0.1 counts its requests; ical.js's parse counts parses.
// And a feed whose fetch fails with no copy (found in review, s24feeds: fetched
// again at every read): remembered for 30 s or its server's Retry-After, the
// 502s meanwhile saying when (Retry-After) with no request to the feed.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import ICAL from 'ical.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_FEED_REFRESH_MS } from '../../src/calendar/feeds.js';
import { buildCalendarServer } from '../../src/calendar/server.js';
import { calendarLoaderFor, userCalendarsFromStore } from '../../src/cli/calendar-backend.js';
import { storeAudit } from '../../src/cli/servers.js';
import { startStack, userAndCalendarToken, type Stack } from './stack.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/** Tomorrow, 00:00 UTC: the read's window starts there (inside the 30 days a delegation looks ahead), the event at 10:00. */
const tomorrow = Math.floor(Date.now() / DAY + 1) * DAY;
const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');
const START = `DTSTART:${iso(tomorrow + 10 * 60 * MINUTE).replace(/[-:]/g, '')}`;
const event = (uid: string, lines: string[]) => ['BEGIN:VEVENT', `UID:${uid}`, ...lines, 'END:VEVENT'];
const calendar = (...events: string[][]) => ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//test//EN', ...events.flat(), 'END:VCALENDAR', ''].join('\r\n');
const GOOD = calendar(event('a', [START, 'DURATION:PT1H']));
/** Its second event has no DTSTART: refused after ical.js has parsed the first (so the parse is counted). */
const REFUSED = calendar(event('a', [START, 'DURATION:PT1H']), event('b', ['SUMMARY:no start']));
const MESSAGE = "Calendar 'team', line 9: This event has no DTSTART.";

let stack: Stack;
let backend: FastifyInstance;
let backendPort: number;
let host: Server;
let hostBase: string;
let token: string;
let clock = Date.now();
/** What the feed's host answers, by path: a body and an ETag (none: no validators), or an HTTP error (and its Retry-After). */
const feeds = new Map<string, { body: string; etag?: string } | { status: number; retryAfter?: string }>();
const requests: Array<{ path: string; ifNoneMatch?: string }> = [];

beforeAll(async () => {
  stack = await startStack();
  host = createServer((req: IncomingMessage, res) => {
    const path = req.url ?? '';
    requests.push({ path, ...(req.headers['if-none-match'] ? { ifNoneMatch: String(req.headers['if-none-match']) } : {}) });
    const feed = feeds.get(path);
    if (!feed) return void res.writeHead(404).end();
    if ('status' in feed) return void res.writeHead(feed.status, feed.retryAfter ? { 'retry-after': feed.retryAfter } : {}).end();
    if (feed.etag && req.headers['if-none-match'] === feed.etag) return void res.writeHead(304, { etag: feed.etag }).end();
    res.writeHead(200, { 'content-type': 'text/calendar', ...(feed.etag ? { etag: feed.etag } : {}) }).end(feed.body);
  });
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
  hostBase = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
  const owner = (await stack.store.ownerUser())!;
  for (const name of ['team', 'plain', 'down', 'busy']) {
    await stack.store.addCalendar({ id: `cal_${name}`, userId: owner.id, name, kind: 'url', source: `${hostBase}/${name}.ics`, createdAt: Date.now() });
  }
  backend = await buildCalendarServer({
    resourceUrl: stack.calendarUrl,
    issuer: stack.issuer,
    calendarsFor: userCalendarsFromStore(stack.store, stack.paths),
    loader: calendarLoaderFor(stack.store, { now: () => clock }),
    audit: storeAudit(stack.store),
  });
  await backend.listen({ port: 0, host: '127.0.0.1' });
  backendPort = (backend.server.address() as AddressInfo).port;
  token = (await userAndCalendarToken(stack)).calendarToken;
}, 60_000);

afterAll(async () => {
  await backend?.close();
  await stack?.close();
  host?.closeAllConnections();
  await new Promise((resolve) => host?.close(resolve));
});

/** /freebusy at the backend for the week of the feed's event: status, body and Retry-After. */
async function readWithRetry(name: string): Promise<{ status: number; body: Record<string, unknown>; retryAfter: string | null }> {
  const week = new URLSearchParams({ from: iso(tomorrow), to: iso(tomorrow + 7 * DAY), calendar: name });
  const res = await fetch(`http://127.0.0.1:${backendPort}/freebusy?${week}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, retryAfter: res.headers.get('retry-after') };
}

/** /freebusy at the backend for the week of the feed's event: status and body. */
async function read(name: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const { status, body } = await readWithRetry(name);
  return { status, body };
}

const REFUSAL = { status: 502, body: { error: 'calendar_unavailable', error_description: MESSAGE, calendar: 'team' } };

describe('a feed with no good copy whose answer is refused', () => {
  it('is fetched and parsed once for reads within the refresh interval, each answered with the same error; past it, a 304 refuses it again unparsed; changed, it is fetched and used', async () => {
    const parses = vi.spyOn(ICAL, 'parse');
    try {
      feeds.set('/team.ics', { body: REFUSED, etag: '"bad1"' });
      expect(await read('team')).toEqual(REFUSAL);
      const parsedOnce = parses.mock.calls.length;
      expect(parsedOnce).toBeGreaterThan(0);
      for (let i = 0; i < 10; i++) {
        clock += 20_000;
        expect(await read('team')).toEqual(REFUSAL);
      }
      expect(requests.filter((r) => r.path === '/team.ics')).toEqual([{ path: '/team.ics' }]);
      expect(parses.mock.calls.length).toBe(parsedOnce);

      // Past the interval: asked with the refused answer's ETag; unchanged, refused again with no body to parse.
      clock += DEFAULT_FEED_REFRESH_MS;
      expect(await read('team')).toEqual(REFUSAL);
      expect(requests.filter((r) => r.path === '/team.ics')).toEqual([{ path: '/team.ics' }, { path: '/team.ics', ifNoneMatch: '"bad1"' }]);
      expect(parses.mock.calls.length).toBe(parsedOnce);

      // Mended (a new ETag): within the interval still the remembered refusal, then fetched at the next check and used.
      feeds.set('/team.ics', { body: GOOD, etag: '"good1"' });
      clock += MINUTE;
      expect(await read('team')).toEqual(REFUSAL);
      clock += DEFAULT_FEED_REFRESH_MS;
      expect(await read('team')).toMatchObject({ status: 200, body: { busy: [{ start: iso(tomorrow + 10 * 60 * MINUTE), end: iso(tomorrow + 11 * 60 * MINUTE) }] } });
      expect(requests.filter((r) => r.path === '/team.ics')).toHaveLength(3);
      expect(await stack.store.calendarFeed('cal_team')).toMatchObject({ body: GOOD, etag: '"good1"', error: null });
    } finally {
      parses.mockRestore();
    }
  }, 60_000);

  it('without validators from its server, is fetched again once per refresh interval', async () => {
    feeds.set('/plain.ics', { body: REFUSED });
    const refusal = { status: 502, body: { error: 'calendar_unavailable', error_description: MESSAGE.replace('team', 'plain'), calendar: 'plain' } };
    for (let i = 0; i < 5; i++) expect(await read('plain')).toEqual(refusal);
    expect(requests.filter((r) => r.path === '/plain.ics')).toHaveLength(1);
    clock += DEFAULT_FEED_REFRESH_MS;
    for (let i = 0; i < 5; i++) expect(await read('plain')).toEqual(refusal);
    expect(requests.filter((r) => r.path === '/plain.ics')).toEqual([{ path: '/plain.ics' }, { path: '/plain.ics' }]);
  }, 60_000);
});

describe('a feed with no good copy whose fetch fails', () => {
  const unavailable = (name: string, status: number) => ({
    status: 502,
    body: { error: 'calendar_unavailable', error_description: `Calendar '${name}': The feed could not be fetched: the server answered HTTP ${status}.`, calendar: name },
  });

  it('is fetched once for the reads of the next 30 s, each a 502 saying when it is asked again (Retry-After); then again', async () => {
    feeds.set('/down.ics', { status: 503 });
    const answers = [];
    for (let i = 0; i < 4; i++, clock += 7_000) answers.push(await readWithRetry('down'));
    expect(answers).toEqual([30, 23, 16, 9].map((seconds) => ({ ...unavailable('down', 503), retryAfter: String(seconds) })));
    expect(requests.filter((r) => r.path === '/down.ics')).toHaveLength(1);
    clock += 2_000;
    expect(await readWithRetry('down')).toEqual({ ...unavailable('down', 503), retryAfter: '30' });
    expect(requests.filter((r) => r.path === '/down.ics')).toHaveLength(2);
  }, 60_000);

  it("waits for its server's Retry-After when it gave one of an hour or less", async () => {
    feeds.set('/busy.ics', { status: 429, retryAfter: '600' });
    expect(await readWithRetry('busy')).toEqual({ ...unavailable('busy', 429), retryAfter: '600' });
    clock += 599_000;
    expect(await readWithRetry('busy')).toEqual({ ...unavailable('busy', 429), retryAfter: '1' });
    expect(requests.filter((r) => r.path === '/busy.ics')).toHaveLength(1);
    feeds.set('/busy.ics', { body: GOOD });
    clock += 1_000;
    expect(await read('busy')).toMatchObject({ status: 200 });
    expect(requests.filter((r) => r.path === '/busy.ics')).toHaveLength(2);
  }, 60_000);
});
