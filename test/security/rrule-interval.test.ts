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
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeAsAgent, startStack, userTokens, type Stack } from './stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const RULES: Record<string, string> = {
  daily1e8: 'FREQ=DAILY;INTERVAL=100000000',
  weekly1e7: 'FREQ=WEEKLY;INTERVAL=10000000',
  feb29mo: 'FREQ=DAILY;INTERVAL=8000;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO',
};

let stack: Stack;
let host: Server;
let token: string;
let query: string;
/** The series' first instance, the day after tomorrow 10:00-11:00 UTC: inside the window read. */
let first: { start: string; end: string };

beforeAll(async () => {
  stack = await startStack();
  const day = new Date(Date.now() + 2 * DAY).toISOString().slice(0, 10);
  first = { start: `${day}T10:00:00Z`, end: `${day}T11:00:00Z` };
  const dtstart = `${day.replaceAll('-', '')}T100000Z`;
  const feed = (rule: string) =>
    ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//x//EN', 'BEGIN:VEVENT', 'UID:r', `DTSTART:${dtstart}`, 'DURATION:PT1H', `RRULE:${rule}`, 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
  host = createServer((req, res) => {
    const rule = RULES[req.url!.slice(1).replace('.ics', '')];
    if (rule === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/calendar' }).end(feed(rule));
  });
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
  const owner = (await stack.store.ownerUser())!;
  for (const name of Object.keys(RULES)) {
    await stack.store.addCalendar({ id: `cal_${name}`, userId: owner.id, name, kind: 'url', source: `${base}/${name}.ics`, createdAt: Date.now() });
  }
  const exchanged = await exchangeAsAgent(stack, (await userTokens(stack)).accessToken);
  expect(exchanged.status, String(exchanged.body.error)).toBe(200);
  token = String(exchanged.body.access_token);
  const from = Date.now() + HOUR;
  query = `from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(from + 7 * DAY).toISOString())}`;
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await new Promise((resolve) => host?.close(resolve));
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
