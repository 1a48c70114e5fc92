// A 200-byte feed whose one RRULE held the process that `delegate serve`
// shares with the authorization server and CalendarAgent (review regress21c):
// ical.js stepped FREQ=DAILY;INTERVAL=100000000 one day at a time, and
// searched for a Monday 29 February every 8,000 days without end, inside one
// call that no count of iterations saw (31 s, and 42 s then 502 ERR_ICS_RULE,
// paid again by every read; meanwhile the revocation list went stale and every
// token was refused with 503). Read over HTTP at the real backend from a `url`
// calendar on a loopback host, the three servers built in this one process as
// `delegate serve` builds them (stack.ts); while the read runs, the AS answers
// its metadata.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveFeeds, type FeedHost } from './feed-host.js';
import { startStack, type Stack } from './stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const RULES: Record<string, string> = {
  daily1e8: 'FREQ=DAILY;INTERVAL=100000000',
  weekly1e7: 'FREQ=WEEKLY;INTERVAL=10000000',
  feb29mo: 'FREQ=DAILY;INTERVAL=8000;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO',
};

let stack: Stack;
let feeds: FeedHost;
let token: string;
let query: string;
/** The series' first instance, the day after tomorrow 10:00-11:00 UTC: inside the window read. */
let first: { start: string; end: string };

beforeAll(async () => {
  stack = await startStack();
  const day = new Date(Date.now() + 2 * DAY).toISOString().slice(0, 10);
  first = { start: `${day}T10:00:00Z`, end: `${day}T11:00:00Z` };
  const dtstart = `${day.replaceAll('-', '')}T100000Z`;
  const feed = (rule: string) => () =>
    ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//x//EN', 'BEGIN:VEVENT', 'UID:r', `DTSTART:${dtstart}`, 'DURATION:PT1H', `RRULE:${rule}`, 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
  feeds = await serveFeeds(stack, Object.fromEntries(Object.entries(RULES).map(([name, rule]) => [name, feed(rule)])));
  ({ token, query } = feeds);
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await feeds?.close();
});

describe('a url feed whose RRULE ical.js could not step through in bounded time (review regress21c)', () => {
  it.each(Object.keys(RULES))('%s: /freebusy answers 200 with the series\' one instance in the week, and the AS answers its metadata meanwhile, twice', async (name) => {
    for (let read = 0; read < 2; read++) {
      const answer = fetch(`${stack.calendarUrl}/freebusy?${query}&calendar=${name}`, { headers: { authorization: `Bearer ${token}` } });
      // Asked once the read has started: before the fix it waited for the whole read (31 s, 42 s).
      const metadata = await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`);
      expect(metadata.status).toBe(200);
      const res = await answer;
      const body = (await res.json()) as { busy?: unknown };
      expect([res.status, body.busy]).toEqual([200, [first]]);
    }
  }, 20_000);
});
