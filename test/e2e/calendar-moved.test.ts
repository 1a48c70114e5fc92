// Moving the calendar backend to another port (README: "Moving a data
// directory to other ports binds CalendarAgent to its new address"), as the
// reviewer did it: sign in, find a slot, stop, `serve` again with another
// --calendar-port. Found in review: find-slot failed with "does not reach"
// and nothing said what to do, and `delegate login` was approved without a
// consent page and printed the old calendar as authorized, so find-slot kept
// failing until `grants revoke` and a new login. Now the agent answers with
// its scope challenge (403 insufficient_scope): find-slot where nobody can
// sign in names `delegate login`, which shows the consent page naming the new
// calendar; approved, it prints the new calendar and find-slot works. Where it
// may sign in (--no-browser), find-slot authorizes again by itself, as on a
// step-up, and finds the slot in the same run. The command named carries the
// ports the servers run on (found in review, s18: it said plain `delegate login`).
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { runCli, startCli, startServer, stopServeAndRemove, type Running } from './run.js';

let home: string | undefined;
let serve: Running | undefined;

afterEach(async () => {
  await stopServeAndRemove(serve, home);
  serve = undefined;
  home = undefined;
});

/** A fresh data directory and ports; the flags of the servers' addresses before and after the calendar moves. */
async function movedSetup(): Promise<{ dir: string; before: string[]; after: string[]; agent: number; oldCalendar: number; newCalendar: number }> {
  builtModule('cli/main.js');
  const dir = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-calendar-moved-')), 'home');
  home = dir;
  const [auth, oldCalendar, newCalendar, agent] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const flags = (calendar: number) => ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
  return { dir, before: flags(oldCalendar), after: flags(newCalendar), agent, oldCalendar, newCalendar };
}

describe('the calendar backend moved to another port', () => {
  it('find-slot says to run `delegate login`, which asks for the new calendar on the consent page; after it, find-slot works', { timeout: 90_000 }, async () => {
    const { dir, before, after, agent, oldCalendar, newCalendar } = await movedSetup();

    serve = await startServer(['serve', ...before], dir);
    const first = await openConsent(startCli(['login', '--no-browser', ...before], dir));
    expect(first.page.status).toBe(200);
    expect((await first.approve()).code).toBe(0);
    expect((await runCli(['find-slot', '--duration', '30m', '--json', ...before], dir)).code).toBe(0);

    serve.child.kill('SIGTERM');
    await serve.done;
    serve = await startServer(['serve', ...after], dir);

    // The agent answers with its scope challenge (403 insufficient_scope), as for a missing scope: a run that
    // cannot sign in exits as one that needs authorization, naming `delegate login`.
    const refused = await runCli(['find-slot', '--duration', '30m', '--json', ...after], dir);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain(`CalendarAgent at http://127.0.0.1:${agent}/mcp needs more permission than your delegation gives it`);
    // What the agent's challenge said, which names both addresses, is carried to the person (found in review: it was dropped).
    expect(refused.stderr).toContain(`(it says: The delegation reaches http://127.0.0.1:${oldCalendar}, not http://127.0.0.1:${newCalendar}`);
    // The command to run names the ports these servers run on (found in review, s18: plain `delegate login`, which
    // run as written signs in at the default ports' servers, or starts its own there).
    // And the data directory, for a terminal whose environment need not name it (found in review, regress18).
    expect(refused.stderr).toContain(`Run \`DELEGATE_HOME=${dir} delegate login ${after.join(' ')}\` in a terminal first (or \`DELEGATE_HOME=${dir} delegate login --device ${after.join(' ')}\` anywhere)`);

    const again = await openConsent(startCli(['login', '--no-browser', ...after], dir));
    // The consent page, not a code: the grant does not reach the new calendar.
    expect(again.page.location).toBeNull();
    expect(again.page.status).toBe(200);
    expect(again.page.html).toContain(`at <strong>127.0.0.1:${newCalendar}</strong>; you allowed it at 127.0.0.1:${oldCalendar}, where it no longer reads`);
    const done = await again.approve();
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain(`at http://127.0.0.1:${newCalendar}:`);
    expect(done.stdout).not.toContain(`127.0.0.1:${oldCalendar}`);

    const found = await runCli(['find-slot', '--duration', '30m', '--json', ...after], dir);
    expect(found.code, found.stderr).toBe(0);
    expect(JSON.parse(found.stdout)).toHaveProperty('start');
  });
});

describe('find-slot after the calendar moved, where it may sign in', () => {
  it('authorizes again by itself on the agent\'s challenge: the consent page names the new calendar, and the same run finds a slot', { timeout: 90_000 }, async () => {
    const { dir, before, after, oldCalendar, newCalendar } = await movedSetup();

    serve = await startServer(['serve', ...before], dir);
    expect((await (await openConsent(startCli(['login', '--no-browser', ...before], dir))).approve()).code).toBe(0);
    serve.child.kill('SIGTERM');
    await serve.done;
    serve = await startServer(['serve', ...after], dir);

    const run = await openConsent(startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...after], dir));
    expect(run.page.status).toBe(200);
    expect(run.page.html).toContain(`at <strong>127.0.0.1:${newCalendar}</strong>; you allowed it at 127.0.0.1:${oldCalendar}, where it no longer reads`);
    const found = await run.approve();
    expect(found.code, found.stderr).toBe(0);
    expect(JSON.parse(found.stdout)).toHaveProperty('start');
    expect(found.stderr.match(/http:\/\/127\.0\.0\.1:\d+\/start/g)).toHaveLength(1);

    const again = await runCli(['find-slot', '--duration', '30m', '--json', ...after], dir);
    expect(again.code, again.stderr).toBe(0);
  });
});

/** The person follows the CLI's sign-in link to the consent page; `approve` approves it as shown and resolves with how the CLI ended. */
async function openConsent(cli: Running) {
  const browser = new Browser();
  const page = await browser.follow(await cli.loginUrl);
  return {
    page,
    async approve() {
      const answer = await browser.post(new URL('/consent', page.url).href, { ...parseConsentForm(page.html), decision: 'approve' });
      expect(answer.status, answer.html.slice(0, 300)).toBe(303);
      expect((await browser.get(new URL(answer.location!, page.url).href)).status).toBe(200);
      return cli.done;
    },
  };
}
