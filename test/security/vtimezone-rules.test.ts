// Feeds whose time zones held the process that `delegate serve` shares with
// the authorization server and CalendarAgent (review s23feeds). A VTIMEZONE
// observance with a fast RRULE made ical.js work out every change of the zone
// in one synchronous call when an event's time was read in it
// (`RRULE:FREQ=MINUTELY` in a STANDARD block from 2025: 21 s and ~1 GB;
// FREQ=SECONDLY: out of memory, the process gone). And ical.js looked up each
// TZID by scanning every VTIMEZONE, remembering no miss: 20,000 zones and
// 20,000 events in a TZID none defines (3 MB) held one /freebusy read 179 s.
// Read over HTTP at the real backend, the servers built in this one process as
// `delegate serve` builds them (stack.ts), the feeds on a loopback host. The
// minutely rule here starts in December 2031, so that the code before the fix
// expands only a month of minutes (fast), and the zones are 2,000: the
// assertions are a refusal naming the rule's line and a count of scans, not
// time.
import ICAL from 'ical.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { serveFeeds, type FeedHost } from './feed-host.js';
import { startStack, type Stack } from './stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const ZONES = 2_000;

let stack: Stack;
let feeds: FeedHost;
let token: string;
let query: string;
/** The day after tomorrow, yyyymmdd: the events' day, inside the window read. */
let day: string;

function calendar(...lines: string[]): string {
  return ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//x//EN', ...lines, 'END:VCALENDAR', ''].join('\r\n');
}

const FEEDS: Record<string, () => string> = {
  // The RRULE is line 8.
  minutely: () =>
    calendar(
      'BEGIN:VTIMEZONE',
      'TZID:Evil',
      'BEGIN:STANDARD',
      'DTSTART:20311201T000000',
      'RRULE:FREQ=MINUTELY',
      'TZOFFSETFROM:+0100',
      'TZOFFSETTO:+0100',
      'END:STANDARD',
      'END:VTIMEZONE',
      'BEGIN:VEVENT',
      'UID:a',
      `DTSTART;TZID=Evil:${day}T100000`,
      'DURATION:PT1H',
      'END:VEVENT',
    ),
  zones: () => {
    const lines: string[] = [];
    for (let i = 0; i < ZONES; i++) lines.push('BEGIN:VTIMEZONE', `TZID:z${i}`, 'BEGIN:STANDARD', 'DTSTART:19700101T000000', 'TZOFFSETFROM:+0300', 'TZOFFSETTO:+0300', 'END:STANDARD', 'END:VTIMEZONE');
    for (let i = 0; i < ZONES; i++) lines.push('BEGIN:VEVENT', `UID:e${i}`, `DTSTART;TZID=Nope:${day}T100000`, `DTEND;TZID=Nope:${day}T110000`, 'END:VEVENT');
    lines.push('BEGIN:VEVENT', 'UID:last', `DTSTART;TZID=z${ZONES - 1}:${day}T200000`, 'DURATION:PT1H', 'END:VEVENT');
    return calendar(...lines);
  },
};

beforeAll(async () => {
  stack = await startStack();
  day = new Date(Date.now() + 2 * DAY).toISOString().slice(0, 10).replaceAll('-', '');
  feeds = await serveFeeds(stack, FEEDS);
  ({ token, query } = feeds);
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await feeds?.close();
  vi.restoreAllMocks();
});

async function freebusy(name: string, extra = ''): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${stack.calendarUrl}/freebusy?${query}&calendar=${name}${extra}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('a url feed whose time zone has a STANDARD observance with RRULE:FREQ=MINUTELY (review s23feeds)', () => {
  it('is refused at parse, naming the rule\'s line: skipped with on_calendar_error=skip, 502 calendar_unavailable by default; the AS answers meanwhile', async () => {
    const skipped = freebusy('minutely', '&on_calendar_error=skip');
    expect((await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).status).toBe(200);
    const res = await skipped;
    expect(res.status).toBe(200);
    expect(res.body.skipped).toEqual([{ calendar: 'minutely', error_description: expect.stringMatching(/line 8: .*FREQ=MINUTELY is not read/) }]);
    const failed = await freebusy('minutely');
    expect([failed.status, failed.body.error]).toEqual([502, 'calendar_unavailable']);
  }, 20_000);
});

describe(`a url feed of ${ZONES} time zones and ${ZONES} events in a TZID none of them defines (review s23feeds)`, () => {
  it('is read with each TZID found in one look-up: ical.js scans no VTIMEZONE list (before: one scan per time read)', async () => {
    const scans = vi.spyOn(ICAL.Component.prototype, 'getAllSubcomponents');
    const res = await freebusy('zones');
    expect(res.status).toBe(200);
    const iso = `${day.slice(0, 4)}-${day.slice(4, 6)}-${day.slice(6, 8)}`;
    // The events in "Nope" are read in the owner's zone (UTC in this stack's set-up or not: assert only the zone's event).
    expect(res.body.busy).toEqual(expect.arrayContaining([{ start: `${iso}T17:00:00Z`, end: `${iso}T18:00:00Z` }]));
    expect(scans.mock.calls.filter(([name]) => name === 'vtimezone')).toHaveLength(0);
  }, 60_000);
});
