// Commands run at the same time with no `delegate serve` running (a script's
// `&`, an MCP client's stdio agent next to the CLI): each would start the
// three servers itself; one does, and the others must use its servers, and
// go on when the command that started them exits (docs/internals.md, "The
// embedded stack"). The built CLI, a private DELEGATE_HOME, spare loopback
// ports; signed in through the owner link and the consent page played by an
// HTTP client.
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Browser, hiddenField, parseConsentForm } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { approveInBrowser, deviceUserCode, killLeftovers, startCli, startServer, type Run, type Running } from './run.js';

const PROCESSES = 4;
/** Commands started together while the servers' start is slow, and how slow: longer than the 10 s the others used to wait. */
const MANY = 12;
const SLOW_LISTEN_MS = 13_000;
/** node --import hook delaying one listen (test/e2e/slow-listen/register.mjs). */
const slowListenHook = fileURLToPath(new URL('./slow-listen/register.mjs', import.meta.url));
let home: string;
let ports: string[];
let authPort: number;

beforeEach(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-concurrent-')), 'home');
  authPort = await freePort();
  ports = ['--auth-port', String(authPort), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
});

afterEach(async () => {
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

/** Signs in once (find-slot starting its own servers, the browser played), so that later runs need nobody. */
async function signIn(): Promise<void> {
  const cli = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
  await approveInBrowser(await cli.loginUrl);
  const run = await cli.done;
  expect(run.code, run.stderr).toBe(0);
}

/** Ends the run if it is still going after `ms`, so that a hung command fails the test instead of stalling it. */
async function within(cli: Running, ms: number): Promise<Run> {
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), ms);
  try {
    return await cli.done;
  } finally {
    clearTimeout(timer);
  }
}

function findSlot(): Running {
  // --login-timeout: none of them may wait for a sign-in.
  return startCli(['find-slot', '--duration', '30m', '--json', '--login-timeout', '5s', ...ports], home);
}

/** The device sign-in's code, once the CLI has printed it. */
async function deviceCode(cli: Running): Promise<{ link: string; userCode: string }> {
  return { link: await cli.loginUrl, userCode: await deviceUserCode(cli) };
}

/** The person approves the device sign-in on another device (the page's link signs them in). */
async function approveDevice(link: string, userCode: string): Promise<void> {
  const browser = new Browser();
  const confirm = await browser.follow(link);
  expect(confirm.status, confirm.html.slice(0, 300)).toBe(200);
  const issuer = new URL(link).origin;
  const consent = await browser.post(`${issuer}/device`, { user_code: userCode, csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
  expect(consent.status).toBe(200);
  const answer = await browser.post(`${issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
  expect((await browser.get(new URL(answer.location!, issuer).href)).status).toBe(200);
}

/** Whether the authorization server answers on its port now. */
async function authAnswers(): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${authPort}/.well-known/oauth-authorization-server`, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

/**
 * A browser sign-in (profile `second`) waiting on the servers another sign-in (profile `first`, which started them)
 * ran: the first is approved and exits, and its servers go with it.
 */
async function waitingWhenServersWent(): Promise<Running> {
  const owner = startCli(['--profile', 'first', 'login', '--no-browser', ...ports], home);
  const ownerLink = await owner.loginUrl;
  const waiting = startCli(['--profile', 'second', 'login', '--no-browser', '--login-timeout', '90s', ...ports], home);
  await waiting.loginUrl;
  await approveInBrowser(ownerLink);
  expect((await within(owner, 30_000)).code).toBe(0);
  return waiting;
}

/** The person opens the waiting sign-in's /start: a 500 page with no link, and the command ends with exit 1. */
async function endedAtStart(waiting: Running): Promise<Run> {
  const start = await new Browser().get(await waiting.loginUrl);
  expect(start.status).toBe(500);
  expect(start.location).toBeNull();
  const run = await within(waiting, 60_000);
  expect(run.code).toBe(1);
  return run;
}

describe('commands started together, with no server running', () => {
  it(`${MANY} find-slot started together while the first to start the servers is slow (its CalendarAgent listens ${SLOW_LISTEN_MS / 1000} s late): all print the same slot`, { timeout: 180_000 }, async () => {
    // Found in review: on a loaded machine the servers' start took over the 10 s the other commands waited for
    // it, and they failed (exit 1) saying the port was in use or that some servers ran but not the others.
    await signIn();
    const agentPort = ports[5]!;
    const slow = startCli(['find-slot', '--duration', '30m', '--json', '--login-timeout', '5s', ...ports], home, {
      nodeArgs: ['--import', slowListenHook],
      env: { E2E_SLOW_LISTEN: `${agentPort}:${SLOW_LISTEN_MS}` },
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const others = Array.from({ length: MANY - 1 }, () => findSlot());
    const started = Date.now();
    const runs = await Promise.all([slow, ...others].map((cli) => within(cli, 150_000)));
    const failed = runs.flatMap((r, i) => (r.code === 0 ? [] : [`#${i} exit ${r.code}: ${r.stderr.trim()}`]));
    expect(failed, `took ${Date.now() - started} ms`).toEqual([]);
    expect(new Set(runs.map((r) => (JSON.parse(r.stdout) as { start: string }).start)).size).toBe(1);
    expect(runs.map((r) => r.stderr).join('')).toBe('');
  });

  it(`${PROCESSES} find-slot started at once all print the same slot`, { timeout: 120_000 }, async () => {
    await signIn();
    for (let round = 0; round < 2; round++) {
      const runs = await Promise.all(Array.from({ length: PROCESSES }, () => within(findSlot(), 60_000)));
      expect(runs.map((r) => r.code), runs.map((r) => r.stderr).join('\n')).toEqual(Array(PROCESSES).fill(0));
      const slots = runs.map((r) => JSON.parse(r.stdout) as { start: string });
      expect(new Set(slots.map((s) => s.start)).size).toBe(1);
      expect(runs.map((r) => r.stderr).join('')).toBe('');
    }
  });

  it('a device sign-in waiting on servers another command started goes on when that command exits', { timeout: 120_000 }, async () => {
    // The first sign-in starts the servers (nothing runs); the second finds and uses them.
    const owner = startCli(['--profile', 'first', 'login', '--device', ...ports], home);
    const ownerCode = await deviceCode(owner);
    const waiting = startCli(['--profile', 'second', 'login', '--device', ...ports], home);
    const waitingCode = await deviceCode(waiting);

    // The first is approved and exits, closing the servers it started, while the second still polls.
    await approveDevice(ownerCode.link, ownerCode.userCode);
    const ownerRun = await within(owner, 30_000);
    expect(ownerRun.code, ownerRun.stderr).toBe(0);
    // The person opens the second link once the servers answer again on the same ports.
    const deadline = Date.now() + 30_000;
    while (!(await authAnswers()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
    await approveDevice(waitingCode.link, waitingCode.userCode);
    const run = await within(waiting, 30_000);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('CalendarAgent');
  });

  it('a browser sign-in waiting on servers another command started goes on when that command exits', { timeout: 120_000 }, async () => {
    // Found in review (s28race #2): the second's /start sent the browser to the owner's link on the authorization
    // server that had gone with the first command (connection refused), and the second waited out its login timeout.
    // The first starts the servers (nothing runs) and holds them; the second, started once they answer, uses them.
    const owner = startCli(['--profile', 'first', 'login', '--no-browser', ...ports], home);
    const ownerLink = await owner.loginUrl;
    const waiting = startCli(['--profile', 'second', 'find-slot', '--duration', '30m', '--json', '--no-browser', '--login-timeout', '90s', ...ports], home);
    const waitingLink = await waiting.loginUrl;

    // The first is approved and exits, closing the servers it started, while the second waits for its browser.
    expect((await approveInBrowser(ownerLink)).callbackStatus).toBe(200);
    const ownerRun = await within(owner, 30_000);
    expect(ownerRun.code, ownerRun.stderr).toBe(0);
    // The person opens the second's printed link now: its /start brings the servers back first.
    const { callbackStatus } = await approveInBrowser(waitingLink);
    expect(callbackStatus).toBe(200);
    const run = await within(waiting, 60_000);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toHaveProperty('start');
  });

  it('a browser sign-in whose servers went and cannot come back ends at its /start, saying why', { timeout: 120_000 }, async () => {
    // What stands in the way is said at once, as a command starting the servers says it, and the sign-in ends there:
    // before, the browser met a refused connection and the command waited out its login timeout.
    const waiting = await waitingWhenServersWent();
    // Another program takes the calendar backend's port once the servers have gone: they cannot be started again.
    const squatter = createServer((_req, res) => res.writeHead(404).end('not delegate')).listen(Number(ports[3]), '127.0.0.1');
    await once(squatter, 'listening');
    try {
      const run = await endedAtStart(waiting);
      expect(run.stderr).toContain(`delegate: Port ${ports[3]} is used by another program`);
      expect(run.stderr).not.toContain('Gave up waiting');
    } finally {
      squatter.close();
    }
  });

  // Found in review (s28new): on the authorization server's own port, any answer sent the browser on there with the
  // owner's sign-in link, and the command waited out its login timeout.
  it("a browser sign-in whose authorization server's port another program took ends at its /start; the link never goes there", { timeout: 120_000 }, async () => {
    const waiting = await waitingWhenServersWent();
    const asked: string[] = [];
    const squatter = createServer((req, res) => {
      asked.push(req.url ?? '');
      res.writeHead(404).end('not delegate');
    }).listen(Number(ports[1]), '127.0.0.1');
    await once(squatter, 'listening');
    try {
      const run = await endedAtStart(waiting);
      expect(run.stderr).toContain(`delegate: Port ${ports[1]} is used by another program`);
      expect(asked.filter((path) => path.startsWith('/login'))).toEqual([]);
    } finally {
      squatter.close();
    }
  });

  // Found in review (s28new2): another data directory's servers on the same ports answer with the same issuer; its
  // authorization server got the owner's link (and refused it), and the command waited out its login timeout.
  it("a browser sign-in whose servers went and another data directory's took their ports ends at its /start, saying so", { timeout: 120_000 }, async () => {
    const waiting = await waitingWhenServersWent();
    const other = await startServer(['serve', ...ports], join(home, '..', 'other-home'));
    try {
      const run = await endedAtStart(waiting);
      expect(run.stderr).toContain(`run from another data directory than this command's (${home})`);
    } finally {
      other.child.kill('SIGTERM');
      await other.done;
    }
  });

  it('find-slot started while the command that started the servers exits still prints the slot', { timeout: 180_000 }, async () => {
    await signIn();
    const owner = startCli(['--profile', 'owner', 'login', '--device', ...ports], home);
    const { link, userCode } = await deviceCode(owner);
    const firstPoll = Date.now() + 5000; // the device code's interval: the owner polls, sees the approval and exits then
    await approveDevice(link, userCode);
    let ownerEnded = false;
    void owner.done.then(() => (ownerEnded = true));
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, firstPoll - 800 - Date.now())));
    // One every 100 ms from shortly before its poll until it has exited, and one after: they find its servers, which close under them.
    const runs: Array<Promise<Run>> = [];
    while (!ownerEnded && runs.length < 30) {
      runs.push(within(findSlot(), 60_000));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    runs.push(within(findSlot(), 60_000));
    expect((await within(owner, 30_000)).code).toBe(0);
    const results = await Promise.all(runs);
    expect(results.map((r) => r.code), results.map((r) => r.stderr).join('\n')).toEqual(Array(runs.length).fill(0));
  });
});
