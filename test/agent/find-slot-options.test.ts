// find_slot's issue-4 parameters, through the tool handler with a stub
// exchanger and a stub calendar backend: what the backend is asked for
// (calendars, tentative, on_calendar_error), working hours from the owner's
// settings or the call, within, min-notice, buffers, step and limit, the
// clear non-error answer when no slot fits, and calendars skipped or stale.
import { describe, expect, it } from 'vitest';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createFindSlotHandler, type FindSlotInput, type FindSlotOutput, type ToolExtra } from '../../src/agent/tool.js';
import type { TokenExchanger } from '../../src/agent/exchange.js';

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

/** Runs find_slot against a backend that answers `body` (busy intervals in UTC) and records what it was asked. */
async function call(input: Partial<FindSlotInput>, body: Record<string, unknown> = {}): Promise<Call> {
  let asked: URL | undefined;
  const fetchFn = (async (url: URL | string) => {
    asked = new URL(String(url));
    return new Response(JSON.stringify({ timeZone: 'Europe/Berlin', busy: [], ...body }), { status: 200, headers: { 'Content-Type': 'application/json' } });
  }) as typeof fetch;
  const handler = createFindSlotHandler({ calendarUrl: CALENDAR_URL, exchanger, callerToken: () => USER_TOKEN, now: () => NOW, fetchFn, calendarTimeoutMs: 1000 });
  const result = await handler({ duration: '30m', ...input } as FindSlotInput, {} as ToolExtra);
  const text = (result.content[0] as { text: string }).text;
  return { url: asked!, result, out: result.structuredContent as FindSlotOutput, text };
}

const starts = (out: FindSlotOutput) => out.slots.map((s) => s.start);

describe('find_slot options', () => {
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
