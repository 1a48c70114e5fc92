// What the built CLI suggests when it cannot go on, per command: only
// options and commands that apply to the one that was run (token never signs
// in; login refuses to run under DELEGATE_TOKEN), and grammar that fits how
// many servers are missing; commands named carry the ports it was run with.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { killLeftovers, runCli, startServer, storeSignIn } from './run.js';

let dir: string;
let ports: { auth: number; calendar: number; agent: number };
let flags: string[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-e2e-advice-'));
  ports = { auth: await freePort(), calendar: await freePort(), agent: await freePort() };
  flags = ['--auth-port', String(ports.auth), '--calendar-port', String(ports.calendar), '--agent-port', String(ports.agent)];
});

afterEach(async () => {
  killLeftovers();
  await rm(dir, { recursive: true, force: true });
});

/** A stored sign-in whose access token has expired and whose refresh token the servers do not know. */
async function deadSignIn(home: string): Promise<void> {
  const now = Date.now();
  await storeSignIn(home, ports, { accessToken: 'old.access.token', refreshToken: 'dlg_rt_unknown', expiresAt: now - 60_000, obtainedAt: now - 700_000, clientId: 'cli_unknown' });
}

describe('advice that fits the command', () => {
  it('token, whose stored delegation is dead, says to run delegate login: it has no --no-browser and never signs in', { timeout: 60_000 }, async () => {
    const home = join(dir, 'home');
    await deadSignIn(home);
    const run = await runCli(['token', ...flags], home);
    expect(run.code, run.stderr).toBe(4);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      // What the server said of its refusal, since it ended the stored delegation (the servers do not know its client).
      `delegate: The delegation stored for CalendarAgent at http://127.0.0.1:${ports.agent}/mcp has ended: the authorization server http://127.0.0.1:${ports.auth} refused to renew it (invalid_client: Unknown client.), ` +
        `and this command never signs in. Run \`DELEGATE_HOME=${home} delegate login ${flags.join(' ')}\` to sign in again.\n`,
    );
  });

  it('login without a terminal suggests --device and --no-browser, not DELEGATE_TOKEN, under which login refuses to run', { timeout: 60_000 }, async () => {
    const home = join(dir, 'home');
    const run = await runCli(['login', ...flags], home);
    expect(run.code, run.stderr).toBe(4);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^delegate: CalendarAgent at \S+ needs your authorization .*this is not an interactive terminal\. /);
    // Each with the ports of the servers it was run for (found in review, s18: without them, run as written, they sign in elsewhere).
    // And with the data directory, for a terminal whose environment need not name it (found in review, regress18).
    expect(lines[0]).toContain(`Run \`DELEGATE_HOME=${home} delegate login ${flags.join(' ')}\` in a terminal`);
    expect(lines[0]).toContain(`\`DELEGATE_HOME=${home} delegate login --device ${flags.join(' ')}\``);
    expect(lines[0]).toContain(`\`DELEGATE_HOME=${home} delegate login --no-browser ${flags.join(' ')}\``);
    expect(lines[0]).not.toContain('DELEGATE_TOKEN');
  });

  it('names the missing servers with "them" when more than one is missing, and "it" for one', { timeout: 60_000 }, async () => {
    const home = join(dir, 'home');
    const auth = await startServer(['serve-auth', '--port', String(ports.auth)], home);
    try {
      const two = await runCli(['login', '--no-browser', ...flags], home);
      expect(two.code, two.stderr).toBe(1);
      expect(two.stderr).toBe(
        `delegate: Some of delegate's servers are running but not the calendar backend (port ${ports.calendar}) and CalendarAgent (port ${ports.agent}). Start them, or stop the others and let this command start all three.\n`,
      );
      const calendar = await startServer(['serve-calendar', '--port', String(ports.calendar), '--auth-url', `http://127.0.0.1:${ports.auth}`], home);
      try {
        const one = await runCli(['login', '--no-browser', ...flags], home);
        expect(one.code, one.stderr).toBe(1);
        expect(one.stderr).toBe(
          `delegate: Some of delegate's servers are running but not CalendarAgent (port ${ports.agent}). Start it, or stop the others and let this command start all three.\n`,
        );
      } finally {
        calendar.child.kill('SIGTERM');
        await calendar.done;
      }
    } finally {
      auth.child.kill('SIGTERM');
      await auth.done;
    }
  });
});
