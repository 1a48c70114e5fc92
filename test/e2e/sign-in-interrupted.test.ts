// A sign-in holds Ctrl-C, SIGTERM and SIGHUP while its code is redeemed and
// its tokens saved (src/client/held-signals.ts, SIGN_IN_HELD_NOTICE), so that
// tokens issued are not lost half-way; a second Ctrl-C or SIGTERM, in any mix,
// ends it at once. Found in review (s27): a second SIGTERM was held like the
// first, so `kill PID; kill PID` waited out the 30 s request bound against a
// token endpoint that hung. The built CLI (`delegate login`) against
// `delegate serve` on loopback, stopped with SIGSTOP between the consent and
// the browser's return to the CLI, so that the redemption hangs.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SIGN_IN_HELD_NOTICE } from '../../src/client/held-signals.js';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';
import { serveInNewHome, startCli, stopServeAndRemove, type Running } from './run.js';

let home: string;
let ports: string[];
let serve: Running;

beforeEach(async () => {
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-sign-in-kill-'));
});

afterEach(async () => {
  serve.child.kill('SIGCONT');
  await stopServeAndRemove(serve, home);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts `delegate login`, approves in "the browser", stops the servers, and sends the browser back to the CLI's
 * callback: resolves once the CLI has taken the room for the tokens (`.tokens.json.<pid>.….tmp`), right before it
 * presents the code to the stopped token endpoint (given a moment to leave).
 */
async function loginStuckInRedemption(): Promise<Running> {
  const run = startCli(['login', '--no-browser', ...ports], home);
  const browser = new Browser();
  const consent = await browser.follow(await run.loginUrl);
  expect(consent.status, consent.html.slice(0, 300)).toBe(200);
  const answer = await browser.post(new URL('/consent', consent.url).href, { ...parseConsentForm(consent.html), decision: 'approve' });
  expect(answer.location).not.toBeNull();
  serve.child.kill('SIGSTOP');
  // Answered only once the tokens are saved; here, never, or with the connection closed as the CLI ends.
  browser.get(new URL(answer.location!, consent.url).href).catch(() => undefined);
  const reservation = `.tokens.json.${run.child.pid}.`;
  for (let i = 0; i < 300 && !(await readdir(home)).some((name) => name.startsWith(reservation)); i++) {
    if (run.child.exitCode !== null) break;
    await sleep(50);
  }
  expect((await readdir(home)).some((name) => name.startsWith(reservation)), `no redemption started; stderr: ${run.stderr()}`).toBe(true);
  await sleep(500);
  return run;
}

/** Whether tokens.json holds any tokens. */
async function anyTokensSaved(): Promise<boolean> {
  const text = await readFile(join(home, 'tokens.json'), 'utf8').catch(() => undefined);
  if (text === undefined) return false;
  const file = JSON.parse(text) as { tokens: Record<string, Record<string, unknown>> };
  return Object.values(file.tokens).some((byResource) => Object.keys(byResource).length > 0);
}

describe('a sign-in ended while its code is redeemed, the token endpoint hanging', () => {
  it.each<[NodeJS.Signals, NodeJS.Signals]>([
    ['SIGTERM', 'SIGTERM'],
    ['SIGINT', 'SIGTERM'],
  ])('by %s, then %s: the first is held, the second ends it at once, by that signal', { timeout: 120_000 }, async (first, second) => {
    const run = await loginStuckInRedemption();
    run.child.kill(first);
    await sleep(1_000);
    // Held: still waiting for the answer to the redemption it sent.
    expect([run.child.exitCode, run.child.signalCode]).toEqual([null, null]);
    const t0 = Date.now();
    run.child.kill(second);
    // A third of the 30 s request bound, which held it before: the command ends at the second signal, in milliseconds.
    const ended = await Promise.race([run.done, sleep(10_000).then(() => undefined)]);
    expect(ended, `still running ${Date.now() - t0} ms after the second signal`).toBeDefined();
    expect([ended!.code, ended!.signal, ended!.stdout]).toEqual([null, second, '']);
    // A Ctrl-C is answered with one line; a SIGTERM gets no word. Nothing secret either way.
    expect(ended!.stderr.split(SIGN_IN_HELD_NOTICE).length - 1).toBe(first === 'SIGINT' ? 1 : 0);
    expect(await anyTokensSaved()).toBe(false);
  });
});
