// A feed that is down while its last good copy stands in (found in review, s35logs): the answers said `stale`, but the
// backend's log said nothing (a debug line, only for a feed whose text was at fault). Now one warning a failure streak,
// naming the calendar, when its copy is from and why, never the feed's URL: not one a read. The loader is a stand-in
// whose feed goes down, stays down for two reads, comes back, and goes down again.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCalendarServer } from '../../src/calendar/server.js';
import { parseCalendar } from '../../src/calendar/ics.js';
import { CalendarSourceError } from '../../src/calendar/errors.js';
import type { StaleFeed } from '../../src/calendar/feeds.js';
import { createLogger } from '../../src/http/logging.js';

const ISSUER = 'http://127.0.0.1:8410';
const CALENDAR_URL = 'http://127.0.0.1:8411';
const NOW = Date.UTC(2022, 6, 1);
const FEED_URL = 'https://calendar.example/team.ics?key=FEED-SECRET';
const feed = { name: 'team', id: 'cal_feed', url: FEED_URL };
const newFeed = { name: 'new', id: 'cal_new', url: 'https://calendar.example/new.ics' };
const text = `BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:f\r\nDTSTART:20220705T200000Z\r\nDURATION:PT30M\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n`;

let key: CryptoKey;
let app: FastifyInstance;
let logged = '';
/** What the stand-in loader says of the feed: undefined while it is up. */
let stale: StaleFeed | undefined;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  key = pair.privateKey;
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const parsed = parseCalendar(text, 'team');
  app = await buildCalendarServer({
    resourceUrl: CALENDAR_URL,
    issuer: ISSUER,
    calendarsFor: async (sub) => ({ timeZone: 'UTC', calendars: [sub === 'waiting' ? newFeed : feed] }),
    now: () => NOW,
    keys: createLocalJWKSet({ keys: [publicJwk] }),
    revocations: false,
    logger: createLogger('info', new Writable({ write: (chunk, _e, done) => ((logged += String(chunk)), done()) })),
    loader: {
      load: async (ref) => {
        if (ref.name === 'new') throw new CalendarSourceError('ERR_CALENDAR_UNREADABLE', 'new', 'The feed could not be fetched: the server answered HTTP 503.');
        return parsed;
      },
      staleness: (ref) => (ref.name === 'team' ? stale : undefined),
    },
  });
});
afterAll(async () => app?.close());

async function search(sub = 'owner'): Promise<{ statusCode: number; headers: Record<string, unknown>; json: () => unknown }> {
  const iat = Math.floor(NOW / 1000);
  const token = await new SignJWT({
    iss: ISSUER, sub, aud: CALENDAR_URL, client_id: 'calendar-agent', scope: 'freebusy:read', iat, exp: iat + 300, jti: randomUUID(), grant_id: 'grt_1',
    act: { sub: 'calendar-agent' },
    authorization_details: [{ type: 'calendar', locations: [CALENDAR_URL], actions: ['freebusy:read'], datatypes: ['freebusy'] }],
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
    .sign(key);
  const res = await app.inject({ method: 'GET', url: '/freebusy?from=2022-07-01T00:00:00Z&to=2022-07-10T00:00:00Z', headers: { authorization: `Bearer ${token}`, host: '127.0.0.1:8411' } });
  return res;
}

const warnings = () =>
  logged
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.level === 40);

describe('a feed that is down while its last good copy stands in', () => {
  it('is warned of once a failure streak, by name, with when its copy is from and why; never its URL', async () => {
    expect((await search()).statusCode).toBe(200);
    expect(warnings()).toEqual([]);
    stale = { calendar: 'team', fetchedAt: Date.UTC(2022, 5, 30, 12), reason: 'The feed could not be fetched: the server did not answer.' };
    expect((await search()).statusCode).toBe(200);
    expect((await search()).statusCode).toBe(200);
    expect(warnings()).toEqual([
      expect.objectContaining({ calendar: 'team', fetchedAt: '2022-06-30T12:00:00Z', reason: 'The feed could not be fetched: the server did not answer.', reqId: expect.any(String) }),
    ]);
    // Back, then down again: a new streak, a new warning.
    stale = undefined;
    expect((await search()).statusCode).toBe(200);
    stale = { calendar: 'team', fetchedAt: Date.UTC(2022, 6, 1), reason: 'The feed could not be fetched: the server answered HTTP 503.' };
    expect((await search()).statusCode).toBe(200);
    expect((await search()).statusCode).toBe(200);
    expect(warnings().map((w) => w.fetchedAt)).toEqual(['2022-06-30T12:00:00Z', '2022-07-01T00:00:00Z']);
    expect(logged).not.toContain('calendar.example');
    expect(logged).not.toContain('FEED-SECRET');
  });

  // The 502 of a feed with no good copy yet is a refusal like any other on its access line (item 1 of the review).
  it('a feed with no good copy yet: the 502’s access line names calendar_unavailable and why', async () => {
    const res = await search('waiting');
    expect(res.statusCode).toBe(502);
    const body = res.json() as { error: string; error_description: string };
    const line = logged
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.reqId === res.headers['x-request-id'] && l.msg === 'request completed');
    expect(line).toMatchObject({ level: 50, error: 'calendar_unavailable', reason: body.error_description });
  });
});
