// End to end, as review "logs-faults" reproduced it: a calendar feed whose
// RRULE carries terminal escapes (an OSC that retitles the window, an erase of
// the line and a forged one). The built CLI's find-slot, skipping it on
// request, warns about it; failing on it, names it: either way the person's
// terminal never gets an escape to act on. (Since review s23deleg the
// backend sends nothing of the calendar's text at all, only the property
// and the line.) And `calendar add`'s warnings, which quote the feed (an
// unknown TZID), and `calendar list`'s last error (found in review, s23feeds).
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { approveInBrowser, killLeftovers, runCli, startCli } from './run.js';

const EVIL_RRULE = 'RRULE:FREQ=\u001b]0;PWNED-TITLE\u0007\u001b[2K\u001b[1GFAKE-LINE';
/** As review s23feeds sent it: an unknown time zone, its TZID an OSC that retitles the window, an erase and a forged line. */
const EVIL_TZID = 'DTSTART;TZID="\u001b]0;PWNED\u0007\u001b[2K\u001b[1GFAKE-LINE":20261207T100000';
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
let dir: string;
let home: string;
let ports: string[];
let feed: Server;

beforeAll(async () => {
  builtModule('cli/main.js');
  dir = await mkdtemp(join(tmpdir(), 'delegate-e2e-feed-escapes-'));
  home = join(dir, 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
  const ics = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//x//y//EN', 'BEGIN:VEVENT', 'UID:1@x', 'DTSTAMP:20260101T000000Z', 'DTSTART:20261207T100000Z', 'DTEND:20261207T110000Z', EVIL_RRULE, 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
  const zoned = ics.replace('DTSTART:20261207T100000Z', EVIL_TZID).replace(`${EVIL_RRULE}\r\n`, '');
  feed = createServer((req, res) => void res.writeHead(200, { 'Content-Type': 'text/calendar' }).end(req.url === '/zoned.ics' ? zoned : ics));
  await new Promise<void>((resolve) => feed.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  killLeftovers();
  await new Promise((resolve) => feed.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('a feed with terminal escapes in it', () => {
  it('find-slot shows them as escapes in its warning and in its error line', { timeout: 120_000 }, async () => {
    const url = `http://127.0.0.1:${(feed.address() as AddressInfo).port}/evil.ics`;
    expect((await runCli(['calendar', 'add', 'evil', '-', '--no-check'], home, { stdin: `${url}\n` })).code).toBe(0);

    const skipping = startCli(['find-slot', '--duration', '30m', '--json', '--on-calendar-error', 'skip', '--no-browser', ...ports], home);
    await approveInBrowser(await skipping.loginUrl);
    const skipped = await skipping.done;
    expect(skipped.code).toBe(0);
    expect(skipped.stderr).toContain('warning: not counted, could not be read: Calendar "evil", line 9: RRULE FREQ is not a frequency.');
    expect(skipped.stderr).not.toMatch(CONTROL);

    const failing = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
    expect(failing.code).toBe(1);
    expect(failing.stderr).toMatch(/Calendar 'evil', line 9: RRULE FREQ is not a frequency\./);
    expect(failing.stderr).not.toMatch(CONTROL);
  });

  it('calendar add shows a warning quoting the feed, and calendar list the last error, as escapes', { timeout: 60_000 }, async () => {
    const base = `http://127.0.0.1:${(feed.address() as AddressInfo).port}`;
    const added = await runCli(['calendar', 'add', 'zoned', '-'], home, { stdin: `${base}/zoned.ics\n` });
    expect(added.code).toBe(0);
    expect(added.stderr).toContain('delegate: calendar "zoned": line 7: unknown time zone "\\e]0;PWNED\\u{0007}\\e[2K\\e[1GFAKE-LINE" read in the owner\'s zone');
    expect(added.stderr).not.toMatch(CONTROL);

    // The feed "evil", read by the searches above, failed with the RRULE's text: its last error.
    const listed = await runCli(['calendar', 'list'], home);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('last fetch failed');
    expect(listed.stdout).toContain('RRULE FREQ is not a frequency');
    expect(listed.stdout).not.toMatch(CONTROL);
  });
});
