// End to end, as a user runs it: the built CLI (node bin/delegate) with a
// fresh DELEGATE_HOME on spare ports, starting its embedded servers, signing
// in through the owner link and the consent page (played by an HTTP client),
// printing the slot; then the cache, refresh after expiry, `login`, `serve`,
// the --json contract, bad usage, and the token cache's permissions.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { START_URL, approveInBrowser, killLeftovers, runCli, startCli } from './run.js';

let home: string;
let ports: string[];

beforeAll(() => {
  builtModule('cli/main.js'); // fails with a clear message when dist/ is missing
});

beforeEach(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-')), 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
});

afterEach(async () => {
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

const AUTHORIZE_OR_LOGIN_URL = /https?:\/\/(127\.0\.0\.1|localhost)[^ ]*(authorize|login|start)/;

interface CachedTokens {
  access_token: string;
  refresh_token: string;
  expires_at: number;
}

async function cachedTokens(): Promise<{ file: Record<string, unknown> & { tokens: Record<string, Record<string, CachedTokens>> }; entry: CachedTokens }> {
  const file = JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8'));
  const entry = Object.values(Object.values(file.tokens as Record<string, Record<string, CachedTokens>>)[0]!)[0]!;
  return { file, entry };
}

/** The first run: sign in and approve in "the browser", and return what the CLI printed. */
async function firstRun(extra: string[] = []): Promise<{ stdout: string; stderr: string; link: string }> {
  const cli = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports, ...extra], home);
  const link = await cli.loginUrl;
  const { callbackStatus, callbackPage } = await approveInBrowser(link);
  expect(callbackStatus).toBe(200);
  expect(callbackPage).toContain('You can close this window');
  const run = await cli.done;
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.code).toBe(0);
  return { stdout: run.stdout, stderr: run.stderr, link };
}

function expectOneSlot(stdout: string, minutes: number): void {
  expect(stdout.endsWith('\n')).toBe(true);
  const slot = JSON.parse(stdout) as Record<string, string>;
  expect(Object.keys(slot)).toEqual(['start', 'end', 'timeZone']);
  expect(slot.start).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?([+-]\d\d:\d\d|Z)$/);
  expect(slot.end).toMatch(/([+-]\d\d:\d\d|Z)$/);
  expect(Date.parse(slot.end!) - Date.parse(slot.start!)).toBe(minutes * 60_000);
  expect(Date.parse(slot.start!)).toBeGreaterThan(Date.now() - 60_000);
  expect(slot.timeZone).toMatch(/^[A-Za-z_]+(\/[A-Za-z_+-]+)*$/);
}

describe('delegate find-slot, end to end', () => {
  it('signs in on the first run, prints the slot as JSON, and uses the cache on the second run', async () => {
    const first = await firstRun();
    expectOneSlot(first.stdout, 30);
    // The sign-in address, alone on its line, is the first loopback URL on stderr: the CLI's own /start, which sends
    // the owner's browser on to the one-time sign-in link (that link never goes on a command line).
    expect(first.link).toMatch(START_URL);
    expect(first.stderr.split('\n')).toContain(first.link);

    const second = await runCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
    expect(second.code).toBe(0);
    expect(second.stderr).not.toMatch(AUTHORIZE_OR_LOGIN_URL);
    expectOneSlot(second.stdout, 30);
  });

  it('keeps the token cache 0600 in a 0700 directory', async () => {
    await firstRun();
    expect((await stat(home)).mode & 0o777).toBe(0o700);
    expect((await stat(join(home, 'tokens.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(home, 'owner-key.json'))).mode & 0o777).toBe(0o600);
  });

  it('refreshes an expired access token without asking the user', async () => {
    await firstRun();
    const before = await cachedTokens();
    before.entry.expires_at = Date.now() - 1000; // as if ten minutes had passed
    await writeFile(join(home, 'tokens.json'), JSON.stringify(before.file), { mode: 0o600 });

    const run = await runCli(['find-slot', '--duration', '45m', '--json', '--no-browser', ...ports], home);
    expect(run.code).toBe(0);
    expect(run.stderr).not.toMatch(AUTHORIZE_OR_LOGIN_URL);
    expectOneSlot(run.stdout, 45);
    const after = await cachedTokens();
    expect(after.entry.refresh_token).not.toBe(before.entry.refresh_token); // rotated: it was really used
    expect(after.entry.access_token).not.toBe(before.entry.access_token);
    expect(after.entry.expires_at).toBeGreaterThan(Date.now());
  });

  it('prints one human line without --json', async () => {
    await firstRun();
    const run = await runCli(['find-slot', '--duration', '1h', ...ports], home);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d–\d\d:\d\d \([^)]+\)\n$/);
  });

  it('says what was authorized after login', async () => {
    await firstRun();
    const cli = startCli(['login', '--no-browser', ...ports], home);
    await approveInBrowser(await cli.loginUrl); // login asks even with a valid cache
    const run = await cli.done;
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('CalendarAgent');
    expect(run.stdout).toContain('[slots:find]');
    expect(run.stdout).toContain('[freebusy:read]');
    expect(run.stdout).toMatch(/Until .+\d{4}, \d\d:\d\d \(/);
  });

  it('fails with exit code 1 and one line when the user denies', async () => {
    const cli = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
    await approveInBrowser(await cli.loginUrl, 'deny');
    const run = await cli.done;
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(/^delegate: Access was denied/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('uses `delegate serve` when it runs, instead of starting its own servers', async () => {
    const serve = startCli(['serve', ...ports], home);
    await waitFor(() => serve.stderr().includes('Press Ctrl-C'), serve);
    await firstRun();
    const second = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
    expect(second.code).toBe(0);
    serve.child.kill('SIGINT');
    expect((await serve.done).code).toBe(0);
  });
  it('works through serve-auth, serve-calendar and serve-agent run as three processes', async () => {
    const [auth, calendar, agent] = [ports[1]!, ports[3]!, ports[5]!];
    const authUrl = `http://127.0.0.1:${auth}`;
    const calendarUrl = `http://127.0.0.1:${calendar}`;
    const agentUrl = `http://127.0.0.1:${agent}/mcp`;
    const parts = [
      startCli(['serve-auth', '--port', auth, '--calendar-url', calendarUrl, '--agent-url', agentUrl], home),
      startCli(['serve-calendar', '--port', calendar, '--auth-url', authUrl], home),
      startCli(['serve-agent', '--port', agent, '--auth-url', authUrl, '--calendar-url', calendarUrl], home),
    ];
    for (const part of parts) await waitFor(() => part.stderr().includes('Press Ctrl-C'), part);
    const first = await firstRun();
    expectOneSlot(first.stdout, 30);
    const second = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
    expect(second.code).toBe(0);
    expect(second.stderr).not.toMatch(AUTHORIZE_OR_LOGIN_URL);
    // Each process recorded its part on the one audit log: the agent its tool calls, the backend its reads.
    const audit = await runCli(['audit', '--json'], home);
    const events = (JSON.parse(audit.stdout) as Array<{ event: string; resource: string | null }>).map((r) => `${r.event} ${r.resource}`);
    expect(events.filter((e) => e === `tool_call ${agentUrl}`)).toHaveLength(2);
    expect(events.filter((e) => e === `freebusy_read ${calendarUrl}`).length).toBeGreaterThanOrEqual(1);
    expect((await runCli(['audit', '--verify'], home)).code).toBe(0);
    for (const part of parts) part.child.kill('SIGTERM');
    for (const part of parts) expect((await part.done).code).toBe(0);
  });
});

describe('delegate usage errors, end to end', () => {
  it.each([
    [['find-slot']],
    [['find-slot', '--duration', 'soon']],
    [['find-slot', '--duration', '30m', '--agent-port', '0']],
    [['no-such-command']],
  ])('exit with 2 and a one-line message: %j', async (args) => {
    const run = await runCli(args, home);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^delegate: /);
  });

  it('refuses a corrupt token cache with exit code 4 where nobody can sign in, and leaves it as it was (test/faults/token-cache.test.ts has the rest)', async () => {
    await firstRun();
    await writeFile(join(home, 'tokens.json'), '{ not json', { mode: 0o600 });
    const run = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
    expect(run.code).toBe(4);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain('tokens.json');
    expect(await readFile(join(home, 'tokens.json'), 'utf8')).toBe('{ not json');
  });
});

/** Waits until `ready()` holds, or fails if the process exits first. */
async function waitFor(ready: () => boolean, process: { done: Promise<unknown>; stderr(): string }): Promise<void> {
  let exited = false;
  void process.done.then(() => (exited = true));
  while (!ready()) {
    if (exited) throw new Error(`the process exited early:\n${process.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
