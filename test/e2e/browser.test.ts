// The whole path with a real browser: `delegate serve` runs, the built CLI
// prints its sign-in link,
// headless Chromium (Debian's, through playwright-core) opens it, is signed
// in as the owner, sees the consent page (kept as
// test-artifacts/consent-e2e.png), clicks Approve and lands on the CLI's
// loopback listener; then find-slot prints the slot, under a grant of what
// the page preselects: no helper agent.
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../browser/chromium.js';
import { freePort } from '../support/ports.js';
import { repoRoot } from './built.js';
import { killLeftovers, runCli, startCli, startServer } from './run.js';

let browser: Browser;
let home: string;

beforeAll(async () => {
  browser = await launchChromium();
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-chromium-')), 'home');
}, 60_000);

afterEach(() => killLeftovers());

afterAll(async () => {
  await browser?.close();
  await rm(join(home, '..'), { recursive: true, force: true });
});

describe('find-slot with headless Chromium at the consent page', () => {
  it('signs in, shows the consent page, Approve, and the slot is printed', { timeout: 90_000 }, async () => {
    const ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
    // The servers on their own (so the CLI under test may run on another Node than the database driver's).
    await startServer(['serve', ...ports], home); // stopped by killLeftovers
    const cli = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
    const link = await cli.loginUrl;

    const page = await browser.newPage();
    await page.goto(link);
    const approve = page.getByRole('button', { name: 'Approve', exact: true });
    await approve.waitFor();
    expect(await page.title()).toMatch(/CalendarAgent/);
    await expect(page.getByRole('button', { name: 'Deny', exact: true }).isVisible()).resolves.toBe(true);
    mkdirSync(join(repoRoot, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: join(repoRoot, 'test-artifacts', 'consent-e2e.png'), fullPage: true });

    await Promise.all([page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback\?/), approve.click()]);
    await expect(page.locator('body').innerText()).resolves.toContain('You can close this window');
    await page.close();

    const run = await cli.done;
    expect(run.code, run.stderr).toBe(0);
    const slot = JSON.parse(run.stdout) as { start: string; end: string; timeZone: string };
    expect(Date.parse(slot.end) - Date.parse(slot.start)).toBe(30 * 60_000);
    // Approve alone gives what the page preselects, the least: CalendarAgent itself, no helper agent (max_depth 1).
    expect((JSON.parse((await runCli(['grants', 'list', '--json'], home)).stdout) as Array<{ max_depth: number }>).map((g) => g.max_depth)).toEqual([1]);

    // The next run asks nothing: the delegation is stored.
    const again = await runCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
    expect(again.code).toBe(0);
    expect(again.stderr).not.toMatch(/login\/owner|authorize/);
  });
});
