// The CLI at a real terminal (a pseudo-terminal from util-linux `script`):
// `login --no-browser` shows the link and asks for the address the browser
// ended on; the person's browser is on another computer, so its return to
// 127.0.0.1 never arrives, and pasting that address into the terminal
// finishes the sign-in.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';
import { delegateBin, repoRoot } from './built.js';
import { firstLoopbackUrl, type Running, serveInNewHome, START_URL, stopServeAndRemove } from './run.js';

const SCRIPT = '/usr/bin/script';
let home: string;
let ports: string[];
let serve: Running;

beforeAll(async () => {
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-tty-'));
}, 60_000);

afterAll(() => stopServeAndRemove(serve, home));

/** Approves in a browser that cannot reach this computer: the address it was sent to, never visited. */
async function approveElsewhere(link: string): Promise<string> {
  const browser = new Browser();
  const consent = await browser.follow(link);
  if (consent.location !== null) return consent.location;
  const answer = await browser.post(new URL('/consent', consent.url).href, { ...parseConsentForm(consent.html), decision: 'approve' });
  return new URL(answer.location!, consent.url).href;
}

describe.skipIf(!existsSync(SCRIPT))('at a terminal', () => {
  it('login --no-browser takes the pasted address the browser ended on', { timeout: 60_000 }, async () => {
    const command = [process.execPath, delegateBin, 'login', '--no-browser', ...ports].map((w) => `'${w}'`).join(' ');
    const child = spawn(SCRIPT, ['-qfec', command, '/dev/null'], { cwd: repoRoot, env: { ...process.env, DELEGATE_HOME: home, NO_COLOR: '1', TERM: 'xterm' } });
    let screen = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (screen += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      while (!/paste that address here/.test(screen)) {
        if (child.exitCode !== null) throw new Error(`login exited early:\n${screen}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const link = firstLoopbackUrl(screen)!;
      expect(link).toMatch(START_URL);
      const landed = await approveElsewhere(link);
      expect(landed).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
      child.stdin.write(`${landed}\r`);
      expect(await exited).toBe(0);
      expect(screen).toContain('Authorized CalendarAgent');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
