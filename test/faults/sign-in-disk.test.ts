// A browser sign-in whose tokens cannot be kept, on a profile directory that is
// a small tmpfs (as root; skipped, saying why, elsewhere) filled while the
// person approves. Found in review, s25faults: the code was redeemed (a token
// family issued, the grant active), the browser page said "Signed in", and the
// CLI then failed to save the tokens and dropped them unrevoked. Now the room
// for the tokens is taken before the code is redeemed: without it nothing is
// redeemed. Should the save still fail after redemption (here: the lock file
// finds no room beside the reserved one), the tokens are revoked (RFC 7009)
// and the CLI says so. The page says "Signed in" only once the tokens are
// saved; otherwise that the sign-in failed, and to see the terminal.
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Browser, hiddenField, parseConsentForm } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { builtModule } from '../e2e/built.js';
import { approveInBrowser, deviceUserCode, killLeftovers, startCli, type Run, type Running } from '../e2e/run.js';
import { fillTmpfs, mountTinyProfile, ready, releaseTinyProfile, tmpfsUnavailable, type TinyProfile } from './support.js';

const unavailable = tmpfsUnavailable();
if (unavailable) console.log(`test/faults/sign-in-disk.test.ts skipped: ${unavailable}`);

let profile: TinyProfile | undefined;
let home: string;
/** The profile's directory, a 64 KiB tmpfs: its tokens.json and tokens.lock. */
let tiny: string;
let ports: string[];
let issuer: string;
let serve: Running | undefined;

beforeAll(async () => {
  if (unavailable) return;
  builtModule('cli/main.js');
  profile = await mountTinyProfile('delegate-faults-signindisk-');
  ({ home, tiny } = profile);
  const auth = await freePort();
  issuer = `http://127.0.0.1:${auth}`;
  ports = ['--auth-port', String(auth), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
  serve = await ready(startCli(['serve', ...ports], home));
}, 90_000);

afterEach(async () => {
  if (profile) await rm(join(tiny, 'filler'), { force: true });
});

afterAll(async () => {
  serve?.child.kill('SIGTERM');
  await serve?.done;
  killLeftovers();
  await releaseTinyProfile(profile);
});

/** Fills the tmpfs, leaving `freeBytes` (whole pages) free. */
const fill = (freeBytes: number) => fillTmpfs(tiny, freeBytes);

/** The audit log's records of these events, oldest first. */
function audited(...events: string[]): Array<{ event: string; detail: string | null }> {
  const db = new Database(join(home, 'delegate.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(`SELECT event, detail FROM audit_log WHERE event IN (${events.map(() => '?').join(',')}) ORDER BY rowid`).all(...events) as Array<{ event: string; detail: string | null }>;
  } finally {
    db.close();
  }
}

/** `login --no-browser` in the tiny profile, its directory filled to `freeBytes(tokens.json's size)` while the person approves. */
async function signInFilling(freeBytes: (cacheSize: number) => number): Promise<{ run: Run; page: string; status: number }> {
  const login = startCli(['--profile', 'tiny', 'login', '--no-browser', ...ports], home);
  const url = await login.loginUrl; // discovery and the client registration are saved by now
  fill(freeBytes((await stat(join(tiny, 'tokens.json'))).size));
  const answered = await approveInBrowser(url);
  return { run: await login.done, page: answered.callbackPage, status: answered.callbackStatus };
}

function expectOneLine(run: Run, message: RegExp): void {
  expect(run.code, run.stderr).toBe(1);
  // After the link and the wait, one line: the error.
  const errors = run.stderr.trim().split('\n').filter((line) => line.startsWith('delegate: '));
  expect(errors, run.stderr).toHaveLength(1);
  expect(run.stderr.trim().split('\n').pop()).toBe(errors[0]);
  expect(errors[0]).toMatch(message);
}

function expectFailedPage(page: string, status: number): void {
  expect(page).not.toMatch(/Signed in/);
  expect(page).toMatch(/Sign-in failed: the sign-in could not be completed\. See the terminal for why\./);
  expect(status).toBe(500);
}

/** The person on another device: the link signs them in onto the verification page; they check the code and approve. */
async function approveDevice(link: string, userCode: string): Promise<void> {
  const browser = new Browser();
  const confirm = await browser.follow(link);
  const at = new URL(link).origin;
  const consent = await browser.post(`${at}/device`, { user_code: userCode, csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
  const answer = await browser.post(`${at}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
  expect((await browser.get(new URL(answer.location!, at).href)).status).toBe(200);
}

const escaped = (path: string) => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe.skipIf(unavailable !== undefined)('a sign-in whose tokens cannot be saved', () => {
  it('no room for the tokens: the code is not redeemed, nothing is issued, one line, exit 1, and the page does not say "Signed in"', { timeout: 90_000 }, async () => {
    const issued = audited('token_issued').length;
    const { run, page, status } = await signInFilling(() => 4096); // room for a lock, not for the cache and new tokens
    expectOneLine(
      run,
      new RegExp(
        `Cannot make room to save the token cache ${escaped(join(tiny, 'tokens.json'))}: the disk is full \\(ENOSPC\\)\\. The sign-in was not completed \\(nothing was redeemed, so nothing was issued\\); free some space`,
      ),
    );
    expect(audited('token_issued')).toHaveLength(issued); // the code was never presented
    expectFailedPage(page, status);
    expect((await readdir(tiny)).filter((name) => name.endsWith('.tmp') || name === 'tokens.lock')).toEqual([]); // the room given back
  });

  it('the save fails after the code was redeemed: the tokens are revoked at the authorization server, and the CLI says the sign-in was not kept', { timeout: 90_000 }, async () => {
    const before = audited('token_issued', 'grant_revoked').length;
    // Exactly the room the tokens take (the cache, plus 8 KiB): the lock file taken to write them finds none.
    const { run, page, status } = await signInFilling((size) => Math.ceil((size + 8192) / 4096) * 4096);
    expectOneLine(
      run,
      new RegExp(
        `Cannot use the token cache's lock ${escaped(join(tiny, 'tokens.lock'))}: the disk is full \\(ENOSPC\\)\\. The sign-in was not kept: its tokens were revoked at ${escaped(issuer)}\\. Free some space and run the command again\\.$`,
        'm',
      ),
    );
    const after = audited('token_issued', 'grant_revoked').slice(before);
    expect(after.map((r) => r.event)).toEqual(['token_issued', 'grant_revoked']);
    expect(JSON.parse(after[1]!.detail ?? '{}')).toMatchObject({ by: 'client', via: 'revocation endpoint', token_type: 'refresh_token' });
    expectFailedPage(page, status);

    // With room again, the sign-in works, and its page says so once the tokens are kept.
    await rm(join(tiny, 'filler'), { force: true });
    const again = startCli(['--profile', 'tiny', 'login', '--no-browser', ...ports], home);
    const answered = await approveInBrowser(await again.loginUrl);
    expect((await again.done).code).toBe(0);
    expect(answered.callbackStatus).toBe(200);
    expect(answered.callbackPage).toMatch(/Signed in\. You can close this window/);
  });

  it('the device sign-in: no room, no device code is asked for; a save that fails after the poll redeemed it revokes the tokens', { timeout: 90_000 }, async () => {
    const cache = join(tiny, 'tokens.json');
    const issued = audited('token_issued').length;
    fill(4096);
    const refused = await startCli(['--profile', 'tiny', 'login', '--device', '--no-browser', ...ports], home).done;
    expectOneLine(refused, /the disk is full \(ENOSPC\)\. The sign-in was not completed \(nothing was redeemed, so nothing was issued\); free some space/);
    expect(refused.stderr).not.toContain('shows the code');
    expect(audited('token_issued')).toHaveLength(issued);
    await rm(join(tiny, 'filler'), { force: true });

    const before = audited('token_issued', 'grant_revoked').length;
    fill(Math.ceil(((await stat(cache)).size + 8192) / 4096) * 4096); // the room for the tokens, none for the lock beside it
    const cli = startCli(['--profile', 'tiny', 'login', '--device', '--no-browser', ...ports], home);
    const link = await cli.loginUrl;
    await approveDevice(link, await deviceUserCode(cli));
    const run = await cli.done;
    expectOneLine(run, new RegExp(`: the disk is full \\(ENOSPC\\)\\. The sign-in was not kept: its tokens were revoked at ${escaped(issuer)}\\. Free some space`));
    const after = audited('token_issued', 'grant_revoked').slice(before);
    expect(after.map((r) => r.event)).toEqual(['token_issued', 'grant_revoked']);
    expect(JSON.parse(after[1]!.detail ?? '{}')).toMatchObject({ by: 'client', via: 'revocation endpoint', token_type: 'refresh_token' });
  });
});
