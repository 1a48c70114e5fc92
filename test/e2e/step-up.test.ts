// Step-up, as a user meets it: a delegation made for find-slot does not cover
// `delegate busy` (list_busy needs busy:read). The agent answers 403
// insufficient_scope naming both scopes; the CLI asks once — the consent page
// shows only the new permission — and retries. The next run needs nothing.
// A refusal of the new permission is an error, never a second prompt.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';
import { builtModule } from './built.js';
import { approveInBrowser, firstLoopbackUrl, runCli, type Running, serveInNewHome, startCli, stopServeAndRemove } from './run.js';

let home: string;
let ports: string[];
let serve: Running;

beforeAll(async () => {
  builtModule('cli/main.js');
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-stepup-'));
}, 60_000);

afterAll(() => stopServeAndRemove(serve, home));

async function loginForFindSlot(): Promise<void> {
  const login = startCli(['login', '--no-browser', ...ports], home);
  await approveInBrowser(await login.loginUrl);
  expect((await login.done).code).toBe(0);
}

describe('step-up', () => {
  it('a denied step-up fails once, with one prompt and no loop', async () => {
    await loginForFindSlot();
    const busy = startCli(['busy', '--json', '--no-browser', ...ports], home);
    await approveInBrowser(await busy.loginUrl, 'deny');
    const run = await busy.done;
    expect(run.code).toBe(1);
    expect(run.stderr.match(/http:\/\/127\.0\.0\.1:\d+\/start/g)).toHaveLength(1);
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(/^delegate: .*denied/i);
  });

  it('asks only for the new permission, then answers; the next run asks nothing', async () => {
    const busy = startCli(['busy', '--json', '--no-browser', ...ports], home);
    const link = await busy.loginUrl;
    const browser = new Browser();
    const page = await browser.follow(link);
    expect(page.status).toBe(200);
    expect(page.html).toContain('It asks to also be able to');
    expect(page.html).toContain('List the times you are busy');
    expect(page.html).toMatch(/You already allowed it to<\/h2><ul><li>Find free time in your calendar \(the free times found show when you are busy\)<\/li><\/ul>/);
    const answer = await browser.post(new URL('/consent', page.url).href, { ...parseConsentForm(page.html), decision: 'approve' });
    expect((await browser.get(answer.location!)).status).toBe(200);
    const run = await busy.done;
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { timeZone: string; busy: Array<{ start: string; end: string }> };
    expect(out.busy.length).toBeGreaterThan(0);
    expect(Object.keys(out.busy[0]!).sort()).toEqual(['end', 'start']);

    const again = await runCli(['busy', '--json', '--no-browser', ...ports], home);
    expect(again.code).toBe(0);
    expect(firstLoopbackUrl(again.stderr)).toBeUndefined();
    // find-slot still works under the widened grant.
    expect((await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home)).code).toBe(0);
  });

  it('without a terminal or --no-browser, says that more permission is needed and exits 4', async () => {
    // Start over with a delegation for find-slot only.
    const grants = JSON.parse((await runCli(['grants', 'list', '--json'], home)).stdout) as Array<{ id: string }>;
    for (const g of grants) expect((await runCli(['grants', 'revoke', g.id], home)).code).toBe(0);
    // `login` keeps the permissions of the stored sign-in (busy:read, approved above): forget it first.
    expect((await runCli(['logout', ...ports], home)).code).toBe(0);
    await loginForFindSlot();
    const run = await runCli(['busy', '--json', ...ports], home);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/needs more permission than your delegation gives it/);
    expect(run.stderr).not.toMatch(/login\/owner|\/authorize\?/);
  });
});
