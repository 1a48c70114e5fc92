// `calendar remove` of a feed, end to end on the built CLI, as review s23feeds
// found it: after the removal, `strings delegate.db` still showed the feed's
// secret URL and its cached copy. The feed is served on 127.0.0.1 under a
// secret path; `calendar add` fetches and caches it, `calendar remove` must
// leave neither in the database file nor in its -wal.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killLeftovers, runCli } from './run.js';

const SECRET = 'private-3f9aQ7secretPart';
const MARKER = 'CachedCopyMarker';
const ICS = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//x//y//EN', 'BEGIN:VEVENT', `UID:${MARKER}@x`, `SUMMARY:${MARKER}`, 'DTSTAMP:20260101T000000Z', 'DTSTART:20261207T100000Z', 'DTEND:20261207T110000Z', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
let home: string;
let feed: Server;

beforeAll(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-remove-secrets-')), 'home');
  feed = createServer((_req, res) => void res.writeHead(200, { 'Content-Type': 'text/calendar' }).end(ICS));
  await new Promise<void>((resolve) => feed.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  killLeftovers();
  await new Promise((resolve) => feed.close(resolve));
  await rm(join(home, '..'), { recursive: true, force: true });
});

/** Which of `needles` delegate.db or its -wal holds. */
function leftIn(needles: string[]): string[] {
  const files = ['delegate.db', 'delegate.db-wal'].map((name) => join(home, name)).filter(existsSync).map((file) => readFileSync(file).toString('latin1'));
  return needles.filter((needle) => files.some((text) => text.includes(needle)));
}

describe('calendar remove of a feed', () => {
  it('leaves neither its secret URL nor its cached copy in the database files', { timeout: 60_000 }, async () => {
    const url = `http://127.0.0.1:${(feed.address() as AddressInfo).port}/cal/${SECRET}/basic.ics`;
    const added = await runCli(['calendar', 'add', 'work', url], home);
    expect(added.code, added.stderr).toBe(0);
    expect(leftIn([SECRET, MARKER])).toEqual([SECRET, MARKER]);

    const removed = await runCli(['calendar', 'remove', 'work'], home);
    expect(removed.code, removed.stderr).toBe(0);
    expect(leftIn([SECRET, MARKER])).toEqual([]);
  });
});
