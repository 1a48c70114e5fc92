// A colleague on the same computer, with a data directory of her own (B), signing in with `--agent-url` at the
// `delegate serve` an operator runs from another data directory (A), as the named account the operator made for her
// (`users add alice`). Found in review (s33team): the CLI took any authorization server on loopback for its own and
// used the owner's sign-in there, which that server (trusting A's owner key, not the one the CLI made in B) could
// only refuse: the browser path's link ended on "This sign-in link was made for another data directory" and the CLI
// waited out its timeout; the device path let her approve with her password, then every poll's owner assertion was
// refused (invalid_grant, exit 1), the consent recorded and no token issued. Now the owner's sign-in is used only at
// an authorization server whose metadata says it runs from this data directory (Delegate-Data-Directory): she gets
// the server's own sign-in page (the plain /authorize URL, or the device page), signs in as alice with her password
// in headless Chromium, and the CLI stores alice's delegation; no owner key is made in B. The operator's own
// --agent-url sign-in from A still goes through the owner's link, with no password asked (the control).
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser as Chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approveDeviceWithPassword, launchChromium, signInWithPasswordAndApprove } from '../browser/chromium.js';
import { Browser, hiddenField, parseConsentForm } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { START_URL, addAccount, approveInBrowser, deviceUserCode, killLeftovers, ownerLinkBehind, runCli, startCli, startServer, type Running } from './run.js';

const PASSWORD = 'alice has a long password';
const ALICE = { name: 'alice', password: PASSWORD };
/** Bounds each sign-in (the old code waited for the browser's whole 5 minutes). */
const LOGIN_TIMEOUT = ['--login-timeout', '90s'];

let root: string;
/** The operator's data directory (A), which `serve` runs from, and the colleague's (B). */
let operatorHome: string;
let colleagueHome: string;
let serve: Running;
let issuer: string;
let agentUrl: string;
let chromium: Chromium;

beforeAll(async () => {
  builtModule('cli/main.js');
  root = await mkdtemp(join(tmpdir(), 'delegate-e2e-colleague-'));
  operatorHome = join(root, 'operator');
  colleagueHome = join(root, 'colleague');
  const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
  issuer = `http://127.0.0.1:${auth}`;
  agentUrl = `http://127.0.0.1:${agent}/mcp`;
  serve = await startServer(['serve', '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], operatorHome);
  const added = await addAccount(operatorHome, 'alice', PASSWORD);
  expect(added.code, added.stderr).toBe(0);
  chromium = await launchChromium();
}, 90_000);

afterAll(async () => {
  await chromium?.close();
  killLeftovers();
  serve?.child.kill('SIGTERM');
  await serve?.done;
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

/** The account name of the one delegation `profile` stores in `home` for the agent (status --json). */
async function storedUser(home: string, profile: string): Promise<string | null | undefined> {
  const status = await runCli(['--profile', profile, 'status', '--json', '--agent-url', agentUrl], home);
  expect(status.code, status.stderr).toBe(0);
  const { delegations } = JSON.parse(status.stdout) as { delegations: Array<{ resource: string; userName: string | null }> };
  expect(delegations.map((d) => d.resource)).toEqual([agentUrl]);
  return delegations[0]!.userName;
}

describe('a colleague of another data directory, login --agent-url at the operator’s serve', () => {
  it('--device: the device page itself (no owner’s link), approved as alice with her password: exit 0, alice’s delegation stored, no owner key', { timeout: 150_000 }, async () => {
    const cli = startCli(['--profile', 'device', 'login', '--device', '--agent-url', agentUrl, ...LOGIN_TIMEOUT], colleagueHome);
    const link = await cli.loginUrl;
    expect(`${new URL(link).origin}${new URL(link).pathname}`).toBe(`${issuer}/device`);
    await deviceUserCode(cli);
    await approveDeviceWithPassword(chromium, link, ALICE);
    const run = await cli.done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`Authorized CalendarAgent (${agentUrl}) to act for you, as signed in at ${issuer}`);
    expect(await storedUser(colleagueHome, 'device')).toBe('alice');
    expect(existsSync(join(colleagueHome, 'owner-key.json'))).toBe(false);
  });

  it('--no-browser: the authorization URL itself (no /start, no owner’s link), signed in as alice with her password: exit 0, alice’s delegation stored, no owner key', { timeout: 150_000 }, async () => {
    const cli = startCli(['--profile', 'browser', 'login', '--no-browser', '--agent-url', agentUrl, ...LOGIN_TIMEOUT], colleagueHome);
    const link = await cli.loginUrl;
    expect(link).not.toMatch(START_URL);
    expect(`${new URL(link).origin}${new URL(link).pathname}`).toBe(`${issuer}/authorize`);
    expect(new URL(link).searchParams.get('resource')).toBe(agentUrl);
    await signInWithPasswordAndApprove(chromium, link, ALICE);
    const run = await cli.done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`Authorized CalendarAgent (${agentUrl}) to act for you, as signed in at ${issuer}`);
    expect(await storedUser(colleagueHome, 'browser')).toBe('alice');
    expect(existsSync(join(colleagueHome, 'owner-key.json'))).toBe(false);
  });
});

describe('the operator’s own login --agent-url from the servers’ data directory (the control)', () => {
  it('--no-browser: /start, behind it the owner’s link, approved with no password asked', { timeout: 90_000 }, async () => {
    const cli = startCli(['--profile', 'own-browser', 'login', '--no-browser', '--agent-url', agentUrl, ...LOGIN_TIMEOUT], operatorHome);
    const start = await cli.loginUrl;
    expect(start).toMatch(START_URL);
    const link = await ownerLinkBehind(start);
    expect(link.startsWith(`${issuer}/login/owner?assertion=`)).toBe(true);
    const page = await approveInBrowser(link);
    expect(page.callbackStatus).toBe(200);
    const run = await cli.done;
    expect(run.code, run.stderr).toBe(0);
    expect(await storedUser(operatorHome, 'own-browser')).not.toBe('alice');
  });

  it('--device: the owner’s link onto the device page, approved with no password asked', { timeout: 90_000 }, async () => {
    const cli = startCli(['--profile', 'own-device', 'login', '--device', '--agent-url', agentUrl, ...LOGIN_TIMEOUT], operatorHome);
    const link = await cli.loginUrl;
    expect(link.startsWith(`${issuer}/login/owner?assertion=`)).toBe(true);
    const userCode = await deviceUserCode(cli);
    // The person on another device, with a plain HTTP client: no sign-in page comes, the link signs the owner in.
    const browser = new Browser();
    const confirm = await browser.follow(link);
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain(userCode);
    expect(confirm.html).not.toContain('name="password"');
    const consent = await browser.post(`${issuer}/device`, { user_code: userCode, csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
    expect(consent.status).toBe(200);
    const answer = await browser.post(`${issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
    expect((await browser.get(new URL(answer.location!, issuer).href)).status).toBe(200);
    const run = await cli.done;
    expect(run.code, run.stderr).toBe(0);
    expect(await storedUser(operatorHome, 'own-device')).not.toBe('alice');
  });
});
