// find_slot's issue-4 parameters, through the tool handler with a stub
// exchanger and a stub calendar backend: what the backend is asked for
// (calendars, tentative, on_calendar_error), working hours from the owner's
// settings or the call, within, min-notice, buffers, step and limit, the
// clear non-error answer when no slot fits, and calendars skipped or stale.
import { describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createFindSlotHandler, type FindSlotInput, type FindSlotOutput, type ToolExtra } from '../../src/agent/tool.js';
import type { TokenExchanger } from '../../src/agent/exchange.js';
import { clipIntervals } from '../../src/calendar/intervals.js';

const CALENDAR_URL = 'http://127.0.0.1:8411';
const NOW = Date.parse('2026-11-30T07:00:00Z'); // Monday 08:00 in Berlin
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const USER_TOKEN = `${b64({ alg: 'ES256', typ: 'at+jwt' })}.${b64({ sub: 'usr_1', grant_id: 'grt_1', client_id: 'delegate-cli', scope: 'slots:find' })}.c2ln`;

const exchanger: TokenExchanger = {
  exchange: async () => ({ accessToken: 'calendar-token', expiresAt: NOW + 300_000, scope: 'freebusy:read' }),
  forget() {},
  cacheSize: 0,
};

interface Call {
  url: URL;
  result: CallToolResult;
  out: FindSlotOutput;
  text: string;
}

/**
 * Runs find_slot against a backend that answers `body` (busy intervals in UTC) and records what it was asked.
 * Like the real backend, it answers only the busy time inside the window it is asked for.
 */
async function call(input: Partial<FindSlotInput>, body: Record<string, unknown> = {}, userToken = USER_TOKEN): Promise<Call> {
  let asked: URL | undefined;
  const fetchFn = (async (url: URL | string) => {
    asked = new URL(String(url));
    const window = { start: Date.parse(asked.searchParams.get('from')!), end: Date.parse(asked.searchParams.get('to')!) };
    const all = ((body.busy ?? []) as Array<{ start: string; end: string }>).map((b) => ({ start: Date.parse(b.start), end: Date.parse(b.end) }));
    const busy = clipIntervals(all, window).map((b) => ({ start: new Date(b.start).toISOString(), end: new Date(b.end).toISOString() }));
    return new Response(JSON.stringify({ timeZone: 'Europe/Berlin', ...body, busy }), { status: 200, headers: { 'Content-Type': 'application/json' } });
  }) as typeof fetch;
  const handler = createFindSlotHandler({ calendarUrl: CALENDAR_URL, exchanger, callerToken: () => userToken, now: () => NOW, fetchFn, calendarTimeoutMs: 1000 });
  const result = await handler({ duration: '30m', ...input } as FindSlotInput, {} as ToolExtra);
  const text = (result.content[0] as { text: string }).text;
  return { url: asked!, result, out: result.structuredContent as FindSlotOutput, text };
}

const starts = (out: FindSlotOutput) => out.slots.map((s) => s.start);

describe('find_slot options', () => {
  // Found in review: the answer named the zone as typed, a name that is not in the time zone database.
  it('names the time zone as the database spells it, however the call wrote it', async () => {
    const { out, text } = await call({ timeZone: 'europe/berlin' });
    expect(out.timeZone).toBe('Europe/Berlin');
    expect(text).toContain('(Europe/Berlin)');
  });

  // Found in review: two wall-clock bounds that end before they start were refused only after the calendar was read.
  it('refuses wall-clock bounds that end before they start without reading the calendar', async () => {
    let asked = 0;
    const fetchFn = (async () => {
      asked++;
      return new Response('{}', { status: 500 });
    }) as unknown as typeof fetch;
    let exchanged = 0;
    const counting: TokenExchanger = { ...exchanger, exchange: async (...args) => (exchanged++, exchanger.exchange(...args)) };
    const handler = createFindSlotHandler({ calendarUrl: CALENDAR_URL, exchanger: counting, callerToken: () => USER_TOKEN, now: () => NOW, fetchFn, calendarTimeoutMs: 1000 });
    const result = await handler({ duration: '30m', from: '2026-12-08', to: '2026-12-07' } as FindSlotInput, {} as ToolExtra);
    expect(result.isError).toBe(true);
    expect((result.content[0] as { text: string }).text).toContain('"to" must be later than "from"');
    expect([asked, exchanged]).toEqual([0, 0]);
  });

  it('asks the backend for the calendars named and how to count tentative events and broken calendars', async () => {
    const { url } = await call({ calendars: ['work', 'home'], tentative: 'free', onCalendarError: 'skip' });
    expect(url.pathname).toBe('/freebusy');
    expect(url.searchParams.getAll('calendar')).toEqual(['work', 'home']);
    expect(url.searchParams.get('tentative')).toBe('free');
    expect(url.searchParams.get('on_calendar_error')).toBe('skip');
    const plain = await call({});
    expect([...plain.url.searchParams.keys()].sort()).toEqual(['from', 'to']);
  });

  it('searches the owner’s configured working hours, unless the call gives its own', async () => {
    const owners = { workingHours: { mon: [{ start: '13:00', end: '14:00' }] } };
    const configured = await call({ limit: 3, within: '8d' }, owners);
    expect(starts(configured.out)).toEqual(['2026-11-30T13:00:00+01:00', '2026-11-30T13:30:00+01:00', '2026-12-07T13:00:00+01:00']);
    expect(configured.out.workingHours).toBe('mon 13:00-14:00');
    const own = await call({ limit: 1, workingHours: 'tue 10:00-11:00' }, owners);
    expect(starts(own.out)).toEqual(['2026-12-01T10:00:00+01:00']);
    expect(own.out.workingHours).toBe('tue 10:00-11:00');
  });

  it('returns `limit` slots (5 by default), earliest first', async () => {
    expect((await call({})).out.slots).toHaveLength(5);
    const many = await call({ limit: 12 });
    expect(many.out.slots).toHaveLength(12);
    expect(starts(many.out)).toEqual([...starts(many.out)].sort());
  });

  it('keeps min-notice, buffers and the step', async () => {
    const busy = [{ start: '2026-11-30T09:00:00Z', end: '2026-11-30T10:00:00Z' }]; // 10:00–11:00 Berlin
    // Now is 08:00; two hours' notice is 10:00, busy until 11:00, a slot may start right after it.
    expect(starts((await call({ limit: 1, minNotice: '2h' }, { busy })).out)).toEqual(['2026-11-30T11:00:00+01:00']);
    // 15 minutes' free time before the slot, then on the hour.
    expect(starts((await call({ limit: 1, minNotice: '2h', bufferBefore: '15m' }, { busy })).out)).toEqual(['2026-11-30T11:15:00+01:00']);
    expect(starts((await call({ limit: 1, minNotice: '2h', bufferBefore: '15m', step: '1h' }, { busy })).out)).toEqual(['2026-11-30T12:00:00+01:00']);
    // 45 minutes after the slot must be free too: a slot at 09:00 would end 30 minutes before the 10:00 meeting.
    expect(starts((await call({ limit: 1, bufferAfter: '30m', from: '2026-11-30T09:00' }, { busy })).out)).toEqual(['2026-11-30T09:00:00+01:00']);
    expect(starts((await call({ limit: 1, bufferAfter: '45m', from: '2026-11-30T09:00' }, { busy })).out)).toEqual(['2026-11-30T11:00:00+01:00']);
  });

  describe('keeps buffers clear of busy time outside the window searched (the backend answers only the window it is asked for)', () => {
    // Meetings 09:00–10:00 and 12:00–13:00 in Berlin; now is 08:00.
    const busy = [
      { start: '2026-11-30T08:00:00Z', end: '2026-11-30T09:00:00Z' },
      { start: '2026-11-30T11:00:00Z', end: '2026-11-30T12:00:00Z' },
    ];
    it('a buffer before a window that starts at the minimum notice', async () => {
      const { out, url } = await call({ limit: 1, minNotice: '2h', bufferBefore: '15m' }, { busy });
      expect(starts(out)).toEqual(['2026-11-30T10:15:00+01:00']);
      expect(url.searchParams.get('from')).toBe('2026-11-30T08:45:00.000Z');
    });
    it.each(['2026-11-30T10:00', '2026-11-30T10:00:00+01:00'])('a buffer before a window from %s in a given zone', async (from) => {
      const { out } = await call({ limit: 1, from, timeZone: 'Europe/Berlin', bufferBefore: '15m' }, { busy });
      expect(starts(out)).toEqual(['2026-11-30T10:15:00+01:00']);
    });
    it('a buffer after a window that ends at a meeting', async () => {
      const { out, url } = await call({ limit: 5, from: '2026-11-30T10:00', to: '2026-11-30T12:00', timeZone: 'Europe/Berlin', bufferAfter: '15m' }, { busy });
      expect(starts(out)).toEqual(['2026-11-30T10:00:00+01:00', '2026-11-30T10:30:00+01:00', '2026-11-30T11:00:00+01:00']);
      expect(url.searchParams.get('to')).toBe('2026-11-30T11:15:00.000Z');
    });
    it('under a lookahead reads only up to the limit and offers no slot whose buffer reaches past it', async () => {
      // lookahead 1 day: until Tue 1 Dec 08:00 Berlin. Working hours all day, so slots run up to the limit.
      const limited = `${b64({ alg: 'ES256', typ: 'at+jwt' })}.${b64({
        sub: 'usr_1', grant_id: 'grt_1', client_id: 'delegate-cli', scope: 'slots:find',
        authorization_details: [{ type: 'calendar', locations: [CALENDAR_URL], actions: ['freebusy:read'], lookahead_days: 1 }],
      })}.c2ln`;
      const allDay = 'mon-fri 00:00-24:00';
      const input = { limit: 5, from: '2026-12-01T07:00', to: '2026-12-01T08:00', timeZone: 'Europe/Berlin', workingHours: allDay };
      const plain = await call(input, {}, limited);
      expect(plain.result.isError, plain.text).toBeUndefined();
      expect(starts(plain.out)).toEqual(['2026-12-01T07:00:00+01:00', '2026-12-01T07:30:00+01:00']);
      const buffered = await call({ ...input, bufferAfter: '15m' }, {}, limited);
      expect(buffered.result.isError, buffered.text).toBeUndefined();
      expect(buffered.url.searchParams.get('to')).toBe('2026-12-01T07:00:00.000Z');
      expect(starts(buffered.out)).toEqual(['2026-12-01T07:00:00+01:00']);
      // Before now, likewise: the agent may not read the past, so a buffer cannot reach into it.
      const early = await call({ limit: 1, workingHours: allDay, bufferBefore: '15m' }, {}, limited);
      expect(early.result.isError, early.text).toBeUndefined();
      expect(early.url.searchParams.get('from')).toBe('2026-11-30T07:00:00.000Z');
      expect(starts(early.out)).toEqual(['2026-11-30T08:15:00+01:00']);
    });
  });

  it('searches `within` from the start, and says when nothing fits, as an answer, not an error', async () => {
    const busy = [{ start: '2026-11-30T08:00:00Z', end: '2026-11-30T16:00:00Z' }];
    const { result, out, text, url } = await call({ within: '1d' }, { busy });
    expect(url.searchParams.get('to')).toBe('2026-12-01T07:00:00.000Z');
    expect(result.isError).toBeUndefined();
    expect(out).toMatchObject({ found: false, slots: [], window: { start: '2026-11-30T08:00:00+01:00', end: '2026-12-01T08:00:00+01:00' } });
    expect(text).toBe('No free 30-minute slot fits: none in working hours (mon-fri 09:00-17:00) during Mon 30 Nov 2026, 08:00 – Tue 1 Dec 2026, 08:00 (Europe/Berlin).');
  });

  it('passes on which calendars were skipped and which feeds are stale', async () => {
    const { out, text } = await call(
      { limit: 1 },
      {
        skipped: [{ calendar: 'google', error_description: 'Calendar "google", line 50: RRULE part "RRULE:AnythingRandom" is not NAME=VALUE.' }],
        stale: [{ calendar: 'team', fetchedAt: '2026-11-30T06:00:00Z', error_description: 'The feed did not answer within 10 s.' }],
      },
    );
    expect(out.skipped).toEqual([{ calendar: 'google', reason: 'Calendar "google", line 50: RRULE part "RRULE:AnythingRandom" is not NAME=VALUE.' }]);
    expect(out.stale).toEqual([{ calendar: 'team', fetchedAt: '2026-11-30T06:00:00Z', reason: 'The feed did not answer within 10 s.' }]);
    expect(text).toContain('Not counted, could not be read: Calendar "google", line 50');
    expect(text).toContain('Calendar "team" could not be refreshed (The feed did not answer within 10 s.); its copy from 2026-11-30T06:00:00Z was used.');
  });

  it.each([
    [{ within: '3d', to: '2026-12-05' }, /either "to" or "within"/],
    [{ step: '90s' }, /"step" must be whole minutes/],
    [{ bufferAfter: 'later' }, /"bufferAfter": "later" is not a duration/],
    [{ minNotice: '90d' }, /"minNotice": .* longer than/],
    [{ workingHours: 'weekdays' }, /needs days and hours/],
    [{ workingHours: 'constructor 09:00-17:00' }, /"constructor" is not a weekday/], // once a loop that never ended
    [{ calendars: [' '] }, /calendar name is empty/],
    [{ minNotice: '2d', within: '1d' }, /ends before the minimum notice/],
  ])('refuses %j as a tool error before asking the backend', async (input, message) => {
    const { result, text, url } = await call(input as Partial<FindSlotInput>);
    expect(result.isError).toBe(true);
    expect(text).toMatch(message);
    expect(url).toBeUndefined();
  });
});
