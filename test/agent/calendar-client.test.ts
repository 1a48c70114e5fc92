// The agent's free/busy request against a calendar stand-in on a loopback
// port: what it sends, and a named error for every way the calendar can fail,
// both over node:http (what the agent uses) and through a fetch (what tests
// put in its way). (The end-to-end tests run it against the real calendar
// backend.)
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/http/app.js';
import { fetchFreeBusy, CalendarError } from '../../src/agent/calendar-client.js';
import { listen } from './support.js';

const window = { start: Date.parse('2026-12-01T00:00:00Z'), end: Date.parse('2026-12-08T00:00:00Z') };
let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function calendar(answer: (query: Record<string, string>, auth: string | undefined) => Promise<{ status: number; body: unknown }> | { status: number; body: unknown }): Promise<string> {
  app = createApp();
  app.get('/freebusy', async (req, reply) => {
    const { status, body } = await answer(req.query as Record<string, string>, req.headers.authorization);
    return reply.code(status).send(body);
  });
  return listen(app);
}

describe.each([
  ['node:http', undefined],
  ['a fetch', fetch],
] as const)('fetchFreeBusy over %s', (_transport, fetchFn) => {
  const request = (calendarUrl: string, timeoutMs = 2_000) => ({ calendarUrl, accessToken: 'calendar-token', window, timeoutMs, ...(fetchFn ? { fetchFn } : {}) });

  it('asks for the window with the calendar token and reads busy intervals', async () => {
    let seen: { query: Record<string, string>; auth: string | undefined } | undefined;
    const url = await calendar((query, auth) => {
      seen = { query, auth };
      return { status: 200, body: { timeZone: 'Europe/Berlin', busy: [{ start: '2026-12-01T09:00:00Z', end: '2026-12-01T10:00:00Z' }] } };
    });
    const result = await fetchFreeBusy(request(url));
    expect(seen).toEqual({ query: { from: '2026-12-01T00:00:00.000Z', to: '2026-12-08T00:00:00.000Z' }, auth: 'Bearer calendar-token' });
    expect(result).toEqual({ timeZone: 'Europe/Berlin', busy: [{ start: Date.parse('2026-12-01T09:00:00Z'), end: Date.parse('2026-12-01T10:00:00Z') }] });
  });

  it.each([
    [401, 'refused'],
    [403, 'refused'],
    [400, 'rejected'],
    [500, 'failed'],
    [503, 'failed'],
  ])('names HTTP %i as %s, with the calendar\'s own description', async (status, code) => {
    const url = await calendar(() => ({ status, body: { error: 'x', error_description: 'Outside the window your grant allows.' } }));
    const error = await fetchFreeBusy(request(url)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CalendarError);
    expect(error).toMatchObject({ code, status });
    expect((error as Error).message).toContain('Outside the window your grant allows.');
  });

  it.each([
    [{ busy: [] }],
    [{ timeZone: 'Nowhere/Special', busy: [] }],
    [{ timeZone: 'UTC', busy: [{ start: 'soon', end: 'later' }] }],
    [{ timeZone: 'UTC', busy: [{ start: '2026-12-02T00:00:00Z', end: '2026-12-01T00:00:00Z' }] }],
    ['busy'],
  ])('refuses an answer that is not free/busy data: %j', async (body) => {
    const url = await calendar(() => ({ status: 200, body }));
    await expect(fetchFreeBusy(request(url))).rejects.toMatchObject({ code: 'invalid_response' });
  });

  it('reports a calendar that is down as unreachable', async () => {
    await expect(fetchFreeBusy(request('http://127.0.0.1:9'))).rejects.toMatchObject({ code: 'unreachable' });
  });

  it('gives up on a slow calendar within the timeout', async () => {
    const url = await calendar(() => new Promise((resolve) => setTimeout(() => resolve({ status: 200, body: { timeZone: 'UTC', busy: [] } }), 3_000)));
    const started = Date.now();
    await expect(fetchFreeBusy(request(url, 300))).rejects.toMatchObject({ code: 'timeout', message: 'The calendar did not answer within 300 ms.' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('does not follow a redirect: the calendar token goes to the calendar backend only', async () => {
    let elsewhereHit = false;
    const elsewhere = createApp();
    elsewhere.get('/freebusy', async () => {
      elsewhereHit = true;
      return { timeZone: 'UTC', busy: [] };
    });
    const elsewhereUrl = await listen(elsewhere);
    try {
      app = createApp();
      app.get('/freebusy', async (_req, reply) => reply.code(307).header('location', `${elsewhereUrl}/freebusy`).send({ error: 'moved' }));
      const url = await listen(app);
      await expect(fetchFreeBusy(request(url))).rejects.toMatchObject({ code: 'rejected', status: 307 });
      expect(elsewhereHit).toBe(false);
    } finally {
      await elsewhere.close();
    }
  });
});
