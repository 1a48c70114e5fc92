// A fresh data directory whose first command only looks (`calendar list`),
// end to end on the built CLI: nothing is created, so the servers' first
// start gives the owner the demo calendar (README, "Your calendars"), the
// consent page offers it and find-slot searches it. With every calendar
// removed, find-slot does not answer a slot as if it had checked one: it
// fails with one line saying there is nothing to check and how to add a
// calendar, exit 1.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { killLeftovers, runCli, startCli, startServer, type Running } from './run.js';

let home: string;
let ports: string[];
let serve: Running | undefined;

beforeAll(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-first-')), 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
});

afterAll(async () => {
  serve?.child.kill('SIGTERM');
  await serve?.done;
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

describe('a first command that only looks', () => {
  it('creates nothing; the owner then starts with the demo calendar, which the consent page offers and find-slot searches', async () => {
    const list = await runCli(['calendar', 'list'], home);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^demo {2}file /);
    expect(existsSync(join(home, 'delegate.db'))).toBe(false);

    serve = await startServer(['serve', ...ports], home);
    const login = startCli(['login', '--no-browser', ...ports], home);
    const browser = new Browser();
    const page = await browser.follow(await login.loginUrl);
    expect(page.status).toBe(200);
    expect(page.html).not.toContain('You have no calendars yet');
    expect(page.html).toContain('name="calendars" value="demo"');
    const answer = await browser.post(new URL('/consent', page.url).href, { ...parseConsentForm(page.html), decision: 'approve' });
    await browser.get(new URL(answer.location!, page.url).href);
    expect((await login.done).code).toBe(0);

    const listed = await runCli(['calendar', 'list'], home);
    expect(listed.stdout).toMatch(/^demo {2}file .*owner\.ics\n$/);
    expect(listed.stderr).toBe('');
    const slot = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
    expect(slot.code, slot.stderr).toBe(0);
    expect(JSON.parse(slot.stdout)).toMatchObject({ start: expect.any(String) });
  });

  it('with no calendar at all, find-slot says there is nothing to check and how to add one: one line, exit 1', async () => {
    expect((await runCli(['calendar', 'remove', 'demo'], home)).code).toBe(0);
    const slot = await runCli(['find-slot', '--duration', '30m', ...ports], home);
    expect([slot.code, slot.stdout, slot.stderr]).toEqual([1, '', 'delegate: There are no calendars to check: add one with `delegate calendar add NAME FILE`, or `delegate calendar add NAME` for a feed (it asks for its address).\n']);
    const json = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
    expect([json.code, json.stdout]).toEqual([1, '']);
  });
});
