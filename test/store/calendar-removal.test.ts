// A removed feed leaves no trace of its URL or its copies in the database
// files (found in review, s23feeds: `strings delegate.db` after `calendar
// remove` showed the feed's secret URL and cached body). The feed is refreshed
// a few times first (each refresh replaces the row), and another connection
// stays open throughout, as a running server's does, so the WAL is not
// removed at close and must be emptied by the removal itself.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';

const SECRET = 'k7Qx9SecretFeedToken';
const URL_OF_FEED = `https://calendar.example/ical/${SECRET}/basic.ics`;

let dir: string;
let path: string;
let store: Store;
let server: Database.Database;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-calendar-removal-'));
  path = join(dir, 'delegate.db');
  store = openStore(path);
  server = new Database(path);
  await store.createUser({ id: 'usr_1', name: 'owner', passwordHash: null, isOwner: true, timeZone: 'UTC', createdAt: 1 });
  await store.addCalendar({ id: 'cal_1', userId: 'usr_1', name: 'work', kind: 'url', source: URL_OF_FEED, createdAt: 1 });
  await store.addCalendar({ id: 'cal_2', userId: 'usr_1', name: 'home', kind: 'file', source: '/home/owner/home.ics', createdAt: 1 });
});

afterEach(() => {
  server.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A copy of the feed: `size` bytes of events, each holding `marker`. */
function copy(marker: string, size: number): string {
  const event = `BEGIN:VEVENT\r\nUID:${marker}\r\nSUMMARY:${marker}\r\nDTSTART:20261201T100000Z\r\nEND:VEVENT\r\n`;
  return `BEGIN:VCALENDAR\r\n${event.repeat(Math.ceil(size / event.length))}END:VCALENDAR\r\n`;
}

/** Which of `needles` the database file or its -wal holds. */
function leftIn(needles: string[]): string[] {
  const files = [path, `${path}-wal`].filter(existsSync).map((file) => readFileSync(file).toString('latin1'));
  return needles.filter((needle) => files.some((text) => text.includes(needle)));
}

describe('removing a feed calendar', () => {
  it('leaves neither its URL nor any copy of it in the database or its WAL, while another connection has it open', async () => {
    const markers = ['FirstCopyMarker', 'SecondCopyMarker', 'ThirdCopyMarker'];
    for (const [i, marker] of markers.entries()) {
      // A small copy (in its row's page), then large ones (in overflow pages).
      const body = copy(marker, i === 0 ? 300 : 20_000 * i);
      await store.saveCalendarFeed({ calendarId: 'cal_1', url: URL_OF_FEED, body, etag: `"${marker}"`, lastModified: null, fetchedAt: i, changedAt: i, checkedAt: i, error: null, errorAt: null });
    }
    expect(server.prepare('SELECT count(*) AS n FROM calendar_feeds').get()).toEqual({ n: 1 });
    // Each refresh emptied the WAL of the copy it replaced (review s34privacy): only the last copy is left to remove.
    expect(leftIn([SECRET, ...markers])).toEqual([SECRET, 'ThirdCopyMarker']);

    expect(await store.removeCalendar('usr_1', 'work', { event: { event: 'calendar_removed', user: 'usr_1', detail: { by: 'cli', name: 'work' } }, at: 2 })).toBe(true);
    expect(leftIn([SECRET, ...markers])).toEqual([]);
    // The rest is as it was: the other calendar, and the removal on the audit log.
    expect((await store.listCalendars('usr_1')).map((c) => c.name)).toEqual(['home']);
    expect((await store.listAudit()).map((r) => r.event)).toContain('calendar_removed');
    expect(server.prepare('SELECT name FROM calendars').all()).toEqual([{ name: 'home' }]);
  });

  it('leaves no copy of its row that later calendars moved about in the table (review s23new2)', async () => {
    // 45 calendars added after the feed grow the table past one page; SQLite moves the rows as it splits the page,
    // and a copy of the feed's row could be left behind in the old space, which the removal never saw.
    for (let i = 0; i < 45; i++) {
      await store.addCalendar({ id: `cal_more_${i}`, userId: 'usr_1', name: `c${i}`, kind: 'file', source: `/home/owner/a-rather-long-file-name-for-calendar-number-${i}.ics`, createdAt: 2 + i });
    }
    expect(await store.removeCalendar('usr_1', 'work', { event: { event: 'calendar_removed', user: 'usr_1', detail: { by: 'cli', name: 'work' } }, at: 100 })).toBe(true);
    server.pragma('wal_checkpoint(TRUNCATE)');
    expect(leftIn([SECRET])).toEqual([]);
  });
});
