// End to end, as a user runs it: the built CLI on a fresh data directory adds
// its own calendars before anything else (a file, then a feed served on
// 127.0.0.1), signs in once, and find-slot answers with the issue-4 options:
// --limit with --json, exit code 3 when nothing fits, --calendar, working
// hours per call and from config.json, and a broken calendar failing the
// search or skipped with a warning.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { approveInBrowser, killLeftovers, runCli, startCli } from './run.js';

const DAY = 86_400_000;
let dir: string;
let home: string;
let ports: string[];
let server: Server;
let monday: string;

/** The date of the Monday at least two days from now (so the window is ahead, and inside the default 30-day lookahead). */
function nextMonday(): string {
  let t = Date.now() + 2 * DAY;
  while (new Date(t).getUTCDay() !== 1) t += DAY;
  return new Date(t).toISOString().slice(0, 10);
}

/** An .ics file in Europe/Berlin with the given busy hours on `date` ("09:00-12:00"). */
function ics(date: string, busy: string[], extra: string[] = []): string {
  const compact = date.replace(/-/g, '');
  const events = busy.flatMap((range, i) => {
    const [from, to] = range.split('-').map((t) => t!.replace(':', ''));
    return ['BEGIN:VEVENT', `UID:${compact}-${i}@e2e`, 'DTSTAMP:20260101T000000Z', `DTSTART;TZID=Europe/Berlin:${compact}T${from}00`, `DTEND;TZID=Europe/Berlin:${compact}T${to}00`, ...extra, 'END:VEVENT'];
  });
  return ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate e2e//EN', ...events, 'END:VCALENDAR', ''].join('\r\n');
}

beforeAll(async () => {
  builtModule('cli/main.js');
  dir = await mkdtemp(join(tmpdir(), 'delegate-e2e-calendars-'));
  home = join(dir, 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
  monday = nextMonday();
  await writeFile(join(dir, 'work.ics'), ics(monday, ['09:00-12:00', '13:00-17:00']));
  await writeFile(join(dir, 'broken.ics'), ics(monday, ['09:00-10:00'], ['RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=x']));
  const team = ics(monday, ['12:00-12:30']);
  server = createServer((_req, res) => void res.writeHead(200, { 'Content-Type': 'text/calendar', ETag: '"t1"' }).end(team));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  killLeftovers();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

// A date alone as --to is the end of that day: the window is the whole Monday.
const window = () => ['--from', monday, '--to', monday, '--tz', 'Europe/Berlin', ...ports];
const starts = (stdout: string) => (JSON.parse(stdout) as Array<{ start: string }>).map((s) => s.start);

describe('your own calendars, end to end', () => {
  it('adds calendars, signs in once, and finds slots with the options people use', { timeout: 240_000 }, async () => {
    const added = await runCli(['calendar', 'add', 'work', join(dir, 'work.ics')], home);
    expect([added.code, added.stderr]).toEqual([0, expect.stringContaining('Added calendar "work"')]);

    // First run: sign in; the 12:00–13:00 gap holds two half hours.
    const first = startCli(['find-slot', '--duration', '30m', '--json', '--limit', '3', '--no-browser', ...window()], home);
    await approveInBrowser(await first.loginUrl);
    const listed = await first.done;
    expect(listed.code).toBe(0);
    expect(starts(listed.stdout)).toEqual([`${monday}T12:00:00+02:00`, `${monday}T12:30:00+02:00`].map(summerOrWinter));

    // Nothing fits: exit code 3, a message naming the working hours, nothing on stdout.
    const none = await runCli(['find-slot', '--duration', '90m', '--json', ...window()], home);
    expect([none.code, none.stdout]).toEqual([3, '']);
    expect(none.stderr).toContain('No free 90m slot in working hours (mon-fri 09:00-17:00) in the window searched.');

    // A feed adds 12:00–12:30; --calendar leaves it out again.
    const port = (server.address() as AddressInfo).port;
    expect((await runCli(['calendar', 'add', 'team', '-'], home, { stdin: `http://127.0.0.1:${port}/secret-path/team.ics\n` })).code).toBe(0);
    const both = await runCli(['find-slot', '--duration', '30m', '--json', ...window()], home);
    expect(JSON.parse(both.stdout).start).toBe(summerOrWinter(`${monday}T12:30:00+02:00`));
    const onlyWork = await runCli(['find-slot', '--duration', '30m', '--json', '--calendar', 'work', ...window()], home);
    expect(JSON.parse(onlyWork.stdout).start).toBe(summerOrWinter(`${monday}T12:00:00+02:00`));

    // Working hours for one call, then configured once in config.json.
    const evening = await runCli(['find-slot', '--duration', '30m', '--json', '--working-hours', 'mon 17:00-18:00', ...window()], home);
    expect(JSON.parse(evening.stdout).start).toBe(summerOrWinter(`${monday}T17:00:00+02:00`));
    await mkdir(home, { recursive: true });
    await writeFile(join(home, 'config.json'), JSON.stringify({ workingHours: { mon: '07:00-08:00' } }));
    const early = await runCli(['find-slot', '--duration', '30m', '--json', ...window()], home);
    expect(JSON.parse(early.stdout).start).toBe(summerOrWinter(`${monday}T07:00:00+02:00`));
    await rm(join(home, 'config.json'));

    // A broken calendar fails the search, naming it and the line; skipped on request, with a warning.
    expect((await runCli(['calendar', 'add', 'broken', join(dir, 'broken.ics'), '--no-check'], home)).code).toBe(0);
    const failing = await runCli(['find-slot', '--duration', '30m', '--json', ...window()], home);
    expect(failing.code).toBe(1);
    // The backend's 502 error_description, relayed: `"` is not allowed there (RFC 6749 §5.2), so the name is quoted with `'`.
    expect(failing.stderr).toMatch(/Calendar 'broken', line \d+: RRULE COUNT is not a positive whole number\./);
    const skipping = await runCli(['find-slot', '--duration', '30m', '--json', '--on-calendar-error', 'skip', ...window()], home);
    expect(skipping.code).toBe(0);
    expect(JSON.parse(skipping.stdout).start).toBe(summerOrWinter(`${monday}T12:30:00+02:00`));
    expect(skipping.stderr).toMatch(/warning: not counted, could not be read: Calendar "broken", line \d+/);

    const list = await runCli(['calendar', 'list'], home);
    expect(list.stdout).toContain(`team  feed http://127.0.0.1:${port}/…`);
    expect(list.stdout).not.toContain('secret-path');
  });
});

/** Berlin is +02:00 in summer and +01:00 in winter: the expected local time with the offset that date has. */
function summerOrWinter(iso: string): string {
  const local = iso.slice(0, 19);
  for (const offset of ['+02:00', '+01:00']) {
    const instant = Date.parse(`${local}${offset}`);
    const shown = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(instant);
    if (shown === local.slice(11, 16)) return `${local}${offset}`;
  }
  return iso;
}
