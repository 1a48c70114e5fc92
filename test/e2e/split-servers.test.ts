// The three servers run as separate processes (serve-auth, serve-calendar,
// serve-agent) on one data directory, as a person runs them. Found in review:
// serve-auth restarted without its URL flags re-bound CalendarAgent to the
// default ports while the split agent still ran (every find-slot then failed,
// and signing in again did not help); serve-agent ignored --auth-port and
// --calendar-port over HTTP; `login` called an authorization server started
// with --issuer http://localhost:<port> another program.
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { approveInBrowser, killLeftovers, runCli, startCli, startServer, type Running } from './run.js';

let root: string;
let home: string;
let ports: { auth: number; calendar: number; agent: number };
let flags: string[];
const servers: Running[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'delegate-split-'));
  home = join(root, 'home');
  ports = { auth: await freePort(), calendar: await freePort(), agent: await freePort() };
  flags = ['--auth-port', String(ports.auth), '--calendar-port', String(ports.calendar), '--agent-port', String(ports.agent)];
});

afterEach(async () => {
  for (const server of servers.splice(0)) await stop(server);
  killLeftovers();
  await rm(root, { recursive: true, force: true });
});

async function stop(server: Running): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGTERM');
  await server.done;
}

async function serve(args: string[]): Promise<Running> {
  const server = await startServer(args, home);
  servers.push(server);
  return server;
}

const urls = () => ({
  issuer: `http://127.0.0.1:${ports.auth}`,
  calendar: `http://127.0.0.1:${ports.calendar}`,
  agent: `http://127.0.0.1:${ports.agent}/mcp`,
});

/** The three parts, each its own process, with every URL given. */
async function splitServers(issuer = urls().issuer): Promise<Running> {
  const auth = await serve(['serve-auth', '--port', String(ports.auth), '--issuer', issuer, '--calendar-url', urls().calendar, '--agent-url', urls().agent]);
  await serve(['serve-calendar', '--port', String(ports.calendar), '--auth-url', issuer]);
  await serve(['serve-agent', '--port', String(ports.agent), '--auth-url', issuer, '--calendar-url', urls().calendar]);
  return auth;
}

/** find-slot as a person runs it, approving in "the browser" when it asks. */
async function findSlot(): Promise<{ code: number | null; stderr: string }> {
  const run = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...flags], home);
  const approved = run.loginUrl.then((link) => approveInBrowser(link)).catch(() => undefined);
  const done = await run.done;
  await Promise.race([approved, Promise.resolve()]);
  return { code: done.code, stderr: done.stderr };
}

describe('serve-auth restarted while the split calendar backend and CalendarAgent run', () => {
  // Found in review (regress17b): the addresses on record were taken on any host, so `serve-auth --host 127.0.0.2`
  // on a directory used on 127.0.0.1 bound CalendarAgent to the old host's URLs, and /authorize for the new
  // host's agent answered invalid_target.
  it('on another --host, issues tokens for that host’s addresses, not the old host’s on record', async () => {
    const auth = await splitServers();
    await stop(auth);
    for (const server of servers.splice(0)) await stop(server);
    const moved = await serve(['serve-auth', '--host', '127.0.0.2', '--port', String(ports.auth)]);
    expect(moved.stderr()).toContain('issues tokens for     http://127.0.0.2:8412/mcp and http://127.0.0.2:8411\n');
    // The start says it moved CalendarAgent (found in review regress18c: a move said nothing); that line aside, the old
    // host's addresses appear nowhere.
    const notice = `CalendarAgent moved from ${urls().agent} to http://127.0.0.2:8412/mcp: no delegation was given for the old address.\n`;
    expect(moved.stderr()).toContain(notice);
    expect(moved.stderr().replace(notice, '')).not.toContain('http://127.0.0.1:');
  });

  it('without --calendar-url and --agent-url keeps CalendarAgent bound where it runs, and find-slot goes on working', async () => {
    const auth = await splitServers();
    expect((await findSlot()).code).toBe(0);
    await stop(auth);

    const restarted = await serve(['serve-auth', '--port', String(ports.auth)]);
    expect(restarted.stderr()).toContain(`issues tokens for     ${urls().agent} and ${urls().calendar}\n`);
    const agents = await runCli(['agents', 'list'], home);
    expect(agents.code, agents.stderr).toBe(0);
    expect(agents.stdout).toContain(urls().agent);
    expect(agents.stdout).not.toContain(':8412/mcp');
    const slot = await findSlot();
    expect(slot.code, slot.stderr).toBe(0);
    // And after the next sign-in (found in review: every find-slot then said to sign in again, which did not help).
    const login = startCli(['login', '--no-browser', ...flags], home);
    await approveInBrowser(await login.loginUrl);
    expect((await login.done).code).toBe(0);
    const again = await findSlot();
    expect(again.code, again.stderr).toBe(0);
  }, 90_000);

  // Found in review (s18): the issuer defaulted to http://127.0.0.1:<port> whatever was on record. With the split
  // parts running the restart was refused, naming addresses that had not changed; with them stopped, it re-bound
  // CalendarAgent to the new issuer, and the parts started again as before answered every call 503.
  it('without --issuer keeps the issuer on record for this port (http://localhost:<port>), and find-slot goes on with the tokens it holds', async () => {
    const issuer = `http://localhost:${ports.auth}`;
    const auth = await splitServers(issuer);
    expect((await findSlot()).code).toBe(0);
    await stop(auth);

    const restarted = await serve(['serve-auth', '--port', String(ports.auth)]);
    expect(restarted.stderr()).toContain(`authorization server  ${issuer}\n`);
    const slot = await findSlot();
    expect(slot.code, slot.stderr).toBe(0);
    expect(slot.stderr).not.toContain('open this link'); // the token from before the restart, not a new sign-in
  }, 90_000);

  it('without --issuer, with every part stopped and started again as before, keeps the issuer on record; on another port it does not take it', async () => {
    const issuer = `http://localhost:${ports.auth}`;
    await splitServers(issuer);
    expect((await findSlot()).code).toBe(0);
    for (const server of servers.splice(0)) await stop(server);

    const restarted = await serve(['serve-auth', '--port', String(ports.auth)]);
    expect(restarted.stderr()).toContain(`authorization server  ${issuer}\n`);
    await serve(['serve-calendar', '--port', String(ports.calendar), '--auth-url', issuer]);
    await serve(['serve-agent', '--port', String(ports.agent), '--auth-url', issuer, '--calendar-url', urls().calendar]);
    const slot = await findSlot();
    expect(slot.code, slot.stderr).toBe(0);
    expect(slot.stderr).not.toContain('open this link');

    // Not on [::1] (found in review, regress18): `localhost` need not resolve to ::1 (this machine's /etc/hosts
    // gives it none), so a server there announcing http://localhost:<port> was out of reach by that name, and
    // whatever listened on 127.0.0.1:<port> answered for it.
    for (const server of servers.splice(0)) await stop(server);
    const v6 = await serve(['serve-auth', '--host', '::1', '--port', String(ports.auth)]);
    expect(v6.stderr()).toContain(`authorization server  http://[::1]:${ports.auth}\n`);

    // The control: an issuer on record for another port is not this server's.
    for (const server of servers.splice(0)) await stop(server);
    const elsewhere = await freePort();
    const moved = await serve(['serve-auth', '--port', String(elsewhere)]);
    expect(moved.stderr()).toContain(`authorization server  http://127.0.0.1:${elsewhere}\n`);
  }, 90_000);

  // Found in review (s18): the recorded calendar and agent URLs were kept only when their host name was --host's
  // exactly, while the issuer's rule (above) takes `localhost` for a loopback --host; restarted without the flags
  // on the default --host, serve-auth fell back to the default ports' URLs and was refused (exit 1) while the parts
  // bound to the recorded ones ran. One rule now for all three.
  it('without --calendar-url keeps the calendar backend on record at http://localhost:<port> on the default --host, and find-slot goes on with the tokens it holds', async () => {
    const calendar = `http://localhost:${ports.calendar}`;
    const auth = await serve(['serve-auth', '--port', String(ports.auth), '--calendar-url', calendar, '--agent-url', urls().agent]);
    await serve(['serve-calendar', '--host', 'localhost', '--port', String(ports.calendar), '--auth-url', urls().issuer]);
    await serve(['serve-agent', '--port', String(ports.agent), '--auth-url', urls().issuer, '--calendar-url', calendar]);
    expect((await findSlot()).code).toBe(0);
    await stop(auth);

    const restarted = await serve(['serve-auth', '--port', String(ports.auth)]);
    expect(restarted.stderr()).toContain(`issues tokens for     ${urls().agent} and ${calendar}\n`);
    const slot = await findSlot();
    expect(slot.code, slot.stderr).toBe(0);
    expect(slot.stderr).not.toContain('open this link'); // the token from before the restart, not a new sign-in
  }, 90_000);

  // CalendarAgent at a localhost URL (serve-agent --host localhost) is out of find-slot's reach (it calls
  // 127.0.0.1, and the SDK holds the agent's metadata to that origin), so this one stops at the restart.
  it('without --agent-url keeps CalendarAgent on record at http://localhost:<port>/mcp on the default --host while it runs there', async () => {
    const local = { issuer: `http://localhost:${ports.auth}`, calendar: `http://localhost:${ports.calendar}`, agent: `http://localhost:${ports.agent}/mcp` };
    const auth = await serve(['serve-auth', '--port', String(ports.auth), '--issuer', local.issuer, '--calendar-url', local.calendar, '--agent-url', local.agent]);
    await serve(['serve-calendar', '--host', 'localhost', '--port', String(ports.calendar), '--auth-url', local.issuer]);
    await serve(['serve-agent', '--host', 'localhost', '--port', String(ports.agent), '--auth-url', local.issuer, '--calendar-url', local.calendar]);
    await stop(auth);

    const restarted = await serve(['serve-auth', '--port', String(ports.auth)]);
    expect(restarted.stderr()).toContain(`authorization server  ${local.issuer}\n`);
    expect(restarted.stderr()).toContain(`issues tokens for     ${local.agent} and ${local.calendar}\n`);
    const agents = await runCli(['agents', 'list'], home);
    expect(agents.code, agents.stderr).toBe(0);
    expect(agents.stdout).toContain(local.agent);
    expect(agents.stdout).not.toContain(':8412/mcp');
  }, 90_000);

  it('with URLs other than those they run on is refused, exit 1, naming where they run; nothing is re-bound', async () => {
    const auth = await splitServers();
    await stop(auth);
    const [otherCalendar, otherAgent] = [await freePort(), await freePort()];
    const moved = await runCli(
      ['serve-auth', '--port', String(ports.auth), '--calendar-url', `http://127.0.0.1:${otherCalendar}`, '--agent-url', `http://127.0.0.1:${otherAgent}/mcp`],
      home,
    );
    expect(moved.code).toBe(1);
    expect(moved.stderr.trim().split('\n')).toEqual([
      `delegate: delegate is already serving the data directory ${home}: CalendarAgent at ${urls().agent} and the calendar backend at ${urls().calendar} run, bound to the authorization server at ${urls().issuer}. Use the addresses they run on, or stop them before using others.`,
    ]);
    const agents = await runCli(['agents', 'list'], home);
    expect(agents.stdout).toContain(urls().agent);
    expect(agents.stdout).not.toContain(`:${otherAgent}/mcp`);
  }, 90_000);
});

// Found in review (s28race): find-slot, finding the calendar backend and CalendarAgent but no authorization server,
// waited for it (up to 10 s) holding the data directory's start lock, which serve-auth needs before it listens: the
// serve-auth started meanwhile sat blocked until find-slot gave up, exit 1, naming the authorization server as missing.
describe('serve-auth started while find-slot waits for it', () => {
  it('starts at once, and find-slot signs in through it', async () => {
    await serve(['serve-calendar', '--port', String(ports.calendar), '--auth-url', urls().issuer]);
    await serve(['serve-agent', '--port', String(ports.agent), '--auth-url', urls().issuer, '--calendar-url', urls().calendar]);
    const run = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', '--login-timeout', '20s', ...flags], home);
    // serve-auth once find-slot waits for the missing server: its start lock seen held (it held it through the whole
    // wait before the fix), or 3 s at most (since the fix it holds it only for each look).
    const lockFile = join(home, 'servers.lock');
    for (const until = Date.now() + 3000; Date.now() < until && run.child.exitCode === null; ) {
      const holder = await readFile(lockFile, 'utf8').catch(() => '');
      if (holder.includes(`"pid":${run.child.pid}`)) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const auth = serve(['serve-auth', '--port', String(ports.auth), '--issuer', urls().issuer, '--calendar-url', urls().calendar, '--agent-url', urls().agent]);
    auth.catch(() => undefined);
    // Which comes first: serve-auth's ready line, or find-slot's end (exit 1 after its 10 s wait, before the fix).
    const first = await Promise.race([auth.then(() => 'serve-auth ready'), run.done.then((done) => `find-slot exited ${done.code}: ${done.stderr}`)]);
    expect(first).toBe('serve-auth ready');
    await approveInBrowser(await run.loginUrl);
    const done = await run.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).not.toContain("Some of delegate's servers are running");
  }, 60_000);
});

describe('serve-agent over HTTP', () => {
  it('takes --auth-port and --calendar-port as the servers at those ports on its host', async () => {
    const agent = await serve(['serve-agent', '--port', String(ports.agent), '--auth-port', String(ports.auth), '--calendar-port', String(ports.calendar)]);
    expect(agent.stderr()).toContain(`authorization server  ${urls().issuer}\n`);
    expect(agent.stderr()).toContain(`calendar backend      ${urls().calendar}\n`);
    const metadata = (await (await fetch(`http://127.0.0.1:${ports.agent}/.well-known/oauth-protected-resource/mcp`)).json()) as { authorization_servers: string[] };
    expect(metadata.authorization_servers).toEqual([urls().issuer]);
  }, 30_000);
});

describe('login against serve-auth --issuer http://localhost:<port>', () => {
  it('signs in through the authorization server CalendarAgent names, as find-slot does', async () => {
    await splitServers(`http://localhost:${ports.auth}`);
    const run = startCli(['login', '--no-browser', ...flags], home);
    await approveInBrowser(await run.loginUrl);
    const done = await run.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain('CalendarAgent');
  }, 60_000);

  it('still calls a program on the authorization server’s port another program when it answers with an issuer CalendarAgent does not name, and says which', async () => {
    const issuer = `http://localhost:${ports.auth}`;
    await serve(['serve-calendar', '--port', String(ports.calendar), '--auth-url', issuer]);
    await serve(['serve-agent', '--port', String(ports.agent), '--auth-url', issuer, '--calendar-url', urls().calendar]);
    // A program of this user that answers as an authorization server would, for another issuer.
    const paths: string[] = [];
    const other = createServer((req, res) => {
      paths.push(req.url ?? '');
      // Found in review (regress17b): what it answers was printed as it came, so escape sequences in it acted on
      // the terminal (a wiped line, a forged "signed in"); now escaped, and cut at 200 characters.
      res.setHeader('content-type', 'application/json').end(JSON.stringify({ issuer: `http://127.0.0.1:1\u001b[2K\r\u001b[32msigned in${'x'.repeat(300)}`, authorization_endpoint: 'http://127.0.0.1:1/authorize' }));
    });
    await new Promise<void>((resolve) => other.listen(ports.auth, '127.0.0.1', resolve));
    try {
      const run = await runCli(['login', '--no-browser', ...flags], home);
      expect(run.code).toBe(1);
      expect(run.stderr).toBe(
        `delegate: Port ${ports.auth} is used by another program, not delegate's authorization server (it answers with the issuer ${`http://127.0.0.1:1\\e[2K\\r\\e[32msigned in${'x'.repeat(300)}`.slice(0, 200)}…, not ${issuer}, which CalendarAgent names). Choose other ports with --auth-port, --calendar-port and --agent-port.\n`,
      );
      expect(paths.every((p) => p === '/.well-known/oauth-authorization-server')).toBe(true);
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  }, 60_000);
});
