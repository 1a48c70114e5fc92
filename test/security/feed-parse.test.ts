// A large ICS feed parsed while the other servers of the process keep
// answering. Found in review regress21c: a feed up to the 20 MB limit was
// parsed in one synchronous piece on the event loop that `delegate serve`
// shares with the authorization server and CalendarAgent (a 19.4 MB feed held
// it 20.6 s; the feed's host can change the body at every refresh, and after
// a restart the copy kept in the store is parsed again). The backend here is
// built with the AS and the agent in this one process as `delegate serve`
// builds them (stack.ts), its feed on a loopback host that confirms the kept
// copy (304), so that the parse starts right after the backend saves that
// confirmation. The assertion is about order, not time: a request the AS gets
// right then is answered before the backend has recorded the read, which it
// does once the parse (and the expansion of these few events, no step of its
// own) is done. When the parse was one piece, the AS could answer only after.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/index.js';
import { startStack, userAndCalendarToken, type Stack } from './stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').slice(0, 15) + 'Z';

/** 60 events with 2,000 guests each (about 2.6 MB): a thousand steps of parsing, fewer events than one step of expansion. */
function largeFeed(): string {
  const lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN'];
  for (let i = 0; i < 60; i++) {
    lines.push('BEGIN:VEVENT', `UID:e${i}@test`, `DTSTART:${stamp(Date.UTC(2040, 0, 1) + i * HOUR)}`, 'DURATION:PT30M');
    for (let g = 0; g < 2_000; g++) lines.push(`ATTENDEE:mailto:g${g}@example.com`);
    lines.push('END:VEVENT');
  }
  return [...lines, 'END:VCALENDAR', ''].join('\r\n');
}

let stack: Stack;
let host: Server;
/** The calendar backend's token that CalendarAgent gets for the owner. */
let token: string;

beforeAll(async () => {
  stack = await startStack();
  host = createServer((req, res) => {
    if (req.headers['if-none-match'] === '"v1"') res.writeHead(304, { etag: '"v1"' }).end();
    else res.writeHead(500).end();
  });
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
  const owner = (await stack.store.ownerUser())!;
  const url = `http://127.0.0.1:${(host.address() as AddressInfo).port}/large.ics`;
  await stack.store.addCalendar({ id: 'cal_large', userId: owner.id, name: 'large', kind: 'url', source: url, createdAt: Date.now() });
  // A copy kept from an earlier fetch (before a restart), due to be checked again.
  const earlier = Date.now() - HOUR;
  await stack.store.saveCalendarFeed({
    calendarId: 'cal_large', url, body: largeFeed(), etag: '"v1"', lastModified: null,
    fetchedAt: earlier, changedAt: earlier, checkedAt: earlier, error: null, errorAt: null,
  });
  token = (await userAndCalendarToken(stack)).calendarToken;
}, 60_000);

afterAll(async () => {
  await stack?.close();
  host?.closeAllConnections();
  await new Promise((resolve) => host?.close(resolve));
});

describe('a large feed', () => {
  it('is parsed while the authorization server answers: a request it gets as the parse starts is answered before the read is recorded', async () => {
    // Answered once before, so that the request below needs no new connection on the AS's side.
    expect((await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).status).toBe(200);
    const store = stack.store as Store;
    const save = store.saveCalendarFeed.bind(store);
    const append = store.appendAudit.bind(store);
    let confirmed!: () => void;
    const parseStarts = new Promise<void>((resolve) => (confirmed = resolve));
    let watching = false;
    let recorded = false;
    store.saveCalendarFeed = async (record) => {
      await save(record);
      // The 304's confirmation is saved; the backend parses the kept copy next.
      if (record.calendarId === 'cal_large') confirmed();
    };
    store.appendAudit = (event, now) => {
      if (watching) recorded = true;
      return append(event, now);
    };
    try {
      const from = Date.now() + HOUR;
      const week = new URLSearchParams({ from: new Date(from).toISOString(), to: new Date(from + 7 * DAY).toISOString(), calendar: 'large' });
      const reading = fetch(`${stack.calendarUrl}/freebusy?${week}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(120_000) });
      await parseStarts;
      watching = true;
      const metadata = await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`, { signal: AbortSignal.timeout(120_000) });
      expect([metadata.status, recorded]).toEqual([200, false]);
      const read = await reading;
      expect([read.status, ((await read.json()) as { busy: unknown[] }).busy, recorded]).toEqual([200, [], true]);
    } finally {
      store.saveCalendarFeed = save;
      store.appendAudit = append;
    }
  }, 120_000);
});
