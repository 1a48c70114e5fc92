// End to end, as review s23local reproduced it: a private feed's address is a
// secret to the whole calendar, and `delegate calendar add NAME URL` put it
// on the command line, which every user of this computer can read in
// /proc/<pid>/cmdline while the command runs (up to the 10 s the check's
// fetch may take). The built CLI, given `-` or no file, reads it from stdin
// (piped, or typed at a terminal without being shown): while it fetches the
// feed, served on 127.0.0.1, no process's command line holds the secret.
// One given on the command line still works, and says who could see it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtModule, delegateBin, repoRoot } from './built.js';
import { killLeftovers, runCli } from './run.js';

const SCRIPT = '/usr/bin/script';
const EVENT = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN', 'BEGIN:VEVENT', 'UID:1', 'DTSTART:20261202T100000Z', 'DURATION:PT1H', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
/** The secret part of the feed's address, as Google's private iCal addresses hold one. */
const SECRET = `private-${randomBytes(12).toString('hex')}`;
let dir: string;
let home: string;
let feed: Server;
let feedUrl: string;
/** For each request the feed answered: the command lines, of every process here, that held the secret meanwhile. */
const holdersAtFetch: string[][] = [];

/** The command lines (/proc/<pid>/cmdline, as any user may read them) that hold `text`. */
async function commandLinesHolding(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const line = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (line.includes(text)) found.push(line.split('\0').join(' ').trim());
  }
  return found;
}

beforeAll(async () => {
  builtModule('cli/main.js');
  dir = await mkdtemp(join(tmpdir(), 'delegate-e2e-feed-address-'));
  home = join(dir, 'home');
  feed = createServer((_req, res) => {
    // Asked while the command waits for this answer: the command is running, its command line there to read.
    void commandLinesHolding(SECRET).then((holders) => {
      holdersAtFetch.push(holders);
      res.writeHead(200, { 'Content-Type': 'text/calendar' }).end(EVENT);
    });
  });
  await new Promise<void>((resolve) => feed.listen(0, '127.0.0.1', resolve));
  feedUrl = `http://127.0.0.1:${(feed.address() as AddressInfo).port}/calendar/ical/me/${SECRET}/basic.ics`;
});

afterAll(async () => {
  killLeftovers();
  await new Promise((resolve) => feed.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

/** The calendars added, name and full address, as `calendar list --json --show-urls` prints them. */
async function added(): Promise<Array<[string, string]>> {
  const list = await runCli(['calendar', 'list', '--json', '--show-urls'], home);
  return (JSON.parse(list.stdout) as Array<{ name: string; source: string }>).map((c) => [c.name, c.source]);
}

describe('calendar add: a feed’s address on stdin, off the command line', () => {
  it('piped after -: added, and no command line held the secret while the feed was fetched', { timeout: 60_000 }, async () => {
    holdersAtFetch.length = 0;
    const run = await runCli(['calendar', 'add', 'work', '-'], home, { stdin: `${feedUrl}\n` });
    expect([run.code, run.stdout], run.stderr).toEqual([0, '']);
    expect(run.stderr).toBe(`Added calendar "work" (feed ${new URL(feedUrl).origin}/…). Every calendar counts toward busy time unless find-slot is given --calendar.\n`);
    expect(holdersAtFetch).toEqual([[]]);
    expect(await added()).toEqual([['work', feedUrl]]);
  });

  it('given on the command line: still added, with one line saying other users could see it and how to avoid it', { timeout: 60_000 }, async () => {
    holdersAtFetch.length = 0;
    const run = await runCli(['calendar', 'add', 'legacy', feedUrl], home);
    expect(run.code, run.stderr).toBe(0);
    // What the line is about: the command's own command line, read by anyone while it fetched.
    expect(holdersAtFetch).toEqual([[expect.stringMatching(/ calendar add legacy http:\/\/127\.0\.0\.1:\d+\/calendar\/ical\/me\/private-/)]]);
    expect(run.stderr.split('\n')[0]).toBe(
      "delegate: The feed's address is visible to other users of this computer while this command runs, on its command line. Next time leave it out, to type it unseen at the prompt, or pipe it to `delegate calendar add legacy -`.",
    );
    expect(run.stderr.split('\n')[1]).toMatch(/^Added calendar "legacy" \(feed http:\/\/127\.0\.0\.1:\d+\/…\)\./);
  });

  it('nothing on stdin, more than one line, or no http(s) address: exit 2, one line, the secret not repeated, nothing added', { timeout: 60_000 }, async () => {
    for (const stdin of ['', `${feedUrl}\n${feedUrl}\n`, `ftp://127.0.0.1/${SECRET}\n`]) {
      const run = await runCli(['calendar', 'add', 'refused', '-'], home, { stdin });
      expect([run.code, run.stdout, run.stderr.split('\n').length], run.stderr).toEqual([2, '', 2]);
      expect(run.stderr).not.toContain(SECRET);
    }
    expect((await added()).map(([name]) => name)).not.toContain('refused');
  });

  it.skipIf(!existsSync(SCRIPT))('at a terminal, with no file: asked for, typed without being shown, added; no command line held it', { timeout: 60_000 }, async () => {
    holdersAtFetch.length = 0;
    const command = [process.execPath, delegateBin, 'calendar', 'add', 'typed'].map((w) => `'${w}'`).join(' ');
    const child = spawn(SCRIPT, ['-qfec', command, '/dev/null'], { cwd: repoRoot, env: { ...process.env, DELEGATE_HOME: home, NO_COLOR: '1', TERM: 'xterm' } });
    let screen = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (screen += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      const started = Date.now();
      while (!screen.includes('Address of the feed "typed" (not shown): ')) {
        if (child.exitCode !== null || Date.now() - started > 20_000) throw new Error(`no prompt:\n${screen}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      child.stdin.write(`${feedUrl}\r`);
      expect(await exited, screen).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(screen).not.toContain(SECRET);
    expect(screen).toMatch(/Added calendar "typed" \(feed http:\/\/127\.0\.0\.1:\d+\/…\)\./);
    expect(holdersAtFetch).toEqual([[]]);
    expect(await added()).toContainEqual(['typed', feedUrl]);
  });
});
