// find_slot's buffers through the real calendar backend (fastify inject) and
// the real handler: the backend answers only the busy time inside the window
// it is asked for, so the agent must ask for the buffers around the window's
// edges too, and, under a lookahead, no further than the delegation allows.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JSONWebKeySet } from 'jose';
import { buildCalendarServer } from '../../src/calendar/server.js';
import { createCalendarLoader } from '../../src/calendar/sources.js';
import { createFindSlotHandler, type FindSlotInput, type FindSlotOutput, type ToolExtra } from '../../src/agent/tool.js';

const ISSUER = 'http://127.0.0.1:8410';
const CALENDAR_URL = 'http://127.0.0.1:8411';
const NOW = Date.parse('2026-11-30T07:00:00Z'); // Monday 08:00 in Berlin
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

const event = (uid: string, start: string, end: string) =>
  ['BEGIN:VEVENT', `UID:${uid}`, 'DTSTAMP:20261101T000000Z', `DTSTART;TZID=Europe/Berlin:${start}`, `DTEND;TZID=Europe/Berlin:${end}`, 'END:VEVENT'];
/** Meetings 09:00–10:00 and 12:00–13:00 in Berlin on Monday 30 November 2026. */
const ICS = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', ...event('a', '20261130T090000', '20261130T100000'), ...event('b', '20261130T120000', '20261130T130000'), 'END:VCALENDAR', ''].join('\r\n');

async function findSlot(input: Partial<FindSlotInput>, lookaheadDays?: number) {
  const detail = lookaheadDays === undefined ? {} : { authorization_details: [{ type: 'calendar', locations: [CALENDAR_URL], actions: ['freebusy:read'], lookahead_days: lookaheadDays }] };
  // The exchange always issues a calendar detail for the backend (which takes no token without one), with the lookahead if any.
  const exchanged = { authorization_details: [{ type: 'calendar', locations: [CALENDAR_URL], actions: ['freebusy:read'], ...(lookaheadDays === undefined ? {} : { lookahead_days: lookaheadDays }) }] };
  const pair = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const app = await buildCalendarServer({
    resourceUrl: CALENDAR_URL,
    issuer: ISSUER,
    calendarsFor: async () => ({ timeZone: 'Europe/Berlin', calendars: [{ name: 'work', path: 'work' }] }),
    now: () => NOW,
    keys: createLocalJWKSet({ keys: [publicJwk] } as JSONWebKeySet),
    revocations: false,
    fetchFn: () => Promise.reject(new Error('no network')),
    loader: createCalendarLoader({ readText: async () => ICS, statFile: async () => ({ mtimeMs: 1, size: ICS.length }) }),
  });
  const asked: URL[] = [];
  const exchanger = {
    exchange: async () => {
      const iat = Math.floor(NOW / 1000) - 10;
      const claims = { iss: ISSUER, sub: 'owner', aud: CALENDAR_URL, client_id: 'calendar-agent', scope: 'freebusy:read', iat, exp: iat + 300, jti: randomUUID(), grant_id: 'grt_1', act: { sub: 'calendar-agent', act: { sub: 'delegate-cli' } }, ...exchanged };
      const accessToken = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' }).sign(pair.privateKey);
      return { accessToken, expiresAt: NOW + 300_000, scope: 'freebusy:read' };
    },
    forget() {},
    cacheSize: 0,
  };
  const fetchFn = (async (url: URL | string, init?: RequestInit) => {
    const u = new URL(String(url));
    asked.push(u);
    const res = await app.inject({ method: 'GET', url: u.pathname + u.search, headers: (init?.headers ?? {}) as Record<string, string> });
    return new Response(res.body, { status: res.statusCode, headers: { 'Content-Type': String(res.headers['content-type'] ?? 'application/json') } });
  }) as typeof fetch;
  const userToken = `${b64({ alg: 'ES256', typ: 'at+jwt' })}.${b64({ sub: 'owner', grant_id: 'grt_1', client_id: 'delegate-cli', scope: 'slots:find', ...detail })}.c2ln`;
  const handler = createFindSlotHandler({ calendarUrl: CALENDAR_URL, exchanger, callerToken: () => userToken, now: () => NOW, fetchFn, calendarTimeoutMs: 5000 });
  try {
    const result = await handler({ duration: '30m', ...input } as FindSlotInput, {} as ToolExtra);
    const text = (result.content[0] as { text: string }).text;
    const out = result.structuredContent as FindSlotOutput | undefined;
    return { result, text, asked, starts: out?.slots.map((s) => s.start) };
  } finally {
    await app.close();
  }
}

describe('find_slot buffers against the real calendar backend', () => {
  it('keeps a buffer before a window starting at the minimum notice clear of a meeting that ends then', async () => {
    expect((await findSlot({ limit: 1, minNotice: '2h', bufferBefore: '15m' })).starts).toEqual(['2026-11-30T10:15:00+01:00']);
  });

  it.each(['2026-11-30T10:00', '2026-11-30T10:00:00+01:00'])('keeps a buffer before a window from %s in a given zone clear', async (from) => {
    expect((await findSlot({ limit: 1, from, timeZone: 'Europe/Berlin', bufferBefore: '15m' })).starts).toEqual(['2026-11-30T10:15:00+01:00']);
  });

  it('keeps a buffer after a window ending at a meeting clear of it', async () => {
    const { starts } = await findSlot({ limit: 5, from: '2026-11-30T10:00', to: '2026-11-30T12:00', timeZone: 'Europe/Berlin', bufferAfter: '15m' });
    expect(starts).toEqual(['2026-11-30T10:00:00+01:00', '2026-11-30T10:30:00+01:00', '2026-11-30T11:00:00+01:00']);
  });

  it('under a lookahead, a window ending at the limit with a buffer after is not refused; the buffer past the limit is not assumed free', async () => {
    // One day ahead: until Tuesday 08:00 Berlin, which a search to 08:00 with every hour working reaches.
    const input = { limit: 5, from: '2026-12-01T07:00', to: '2026-12-01T08:00', timeZone: 'Europe/Berlin', workingHours: 'mon-fri 00:00-24:00' };
    const { result, text, asked, starts } = await findSlot({ ...input, bufferAfter: '15m' }, 1);
    expect(result.isError, text).toBeUndefined();
    expect(asked.map((u) => u.searchParams.get('to'))).toEqual(['2026-12-01T07:00:00.000Z']);
    expect(starts).toEqual(['2026-12-01T07:00:00+01:00']);
    // And a buffer before a window starting now reads from now (the backend refuses a window that starts before it).
    const early = await findSlot({ limit: 1, workingHours: 'mon-fri 00:00-24:00', bufferBefore: '15m' }, 1);
    expect(early.result.isError, early.text).toBeUndefined();
    expect(early.asked.map((u) => u.searchParams.get('from'))).toEqual(['2026-11-30T07:00:00.000Z']);
    expect(early.starts).toEqual(['2026-11-30T08:15:00+01:00']);
  });
});
