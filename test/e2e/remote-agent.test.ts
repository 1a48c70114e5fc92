// The CLI pointed at a deployment published at https URLs (`--agent-url`, DELEGATE_AGENT_URL), as `gh auth login
// --hostname` points gh at a server: the three servers run behind TLS reverse proxies of the test's own
// (tls-proxy.ts, as test/e2e/reverse-proxy.test.ts sets them up), published at names of their own under the reserved
// TLD .test (auth.delegate.test, …: an issuer at a loopback name is this computer's, whose owner signs in by the
// owner's link). Everything runs on loopback: the proxies listen on 127.0.0.1, and the names resolve to it, the one
// stand-in (no DNS server knows them), by a hook in every Node process of the test (fixtures/delegate-test-names.mjs,
// through NODE_OPTIONS) and a resolver rule in Chromium. The built CLI, on a data directory of its own
// (another computer's) and trusting the proxies' certificate through NODE_EXTRA_CA_CERTS, runs `find-slot --json
// --agent-url https://…`: discovery from the agent's 401, registration, the person signing in on the authorization
// server's own page as a named account and approving in headless Chromium (no owner's link: that is for an
// authorization server on this computer), the slot printed. The next run uses the cached token without a browser.
// Its token cache already holds a sign-in for servers on this machine's ports: neither token is ever sent to the
// other agent. Before stop 20 the CLI had no way to reach such a deployment (no --agent-url: exit 2).
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { approveDeviceWithPassword, launchChromium, signInWithPasswordAndApprove } from '../browser/chromium.js';
import { freePort } from '../support/ports.js';
import { repoRoot } from './built.js';
import { addAccount, killLeftovers, startCli, startServer, storeSignIn, type Run, type Running } from './run.js';
import {
  closeProxy,
  DEPLOYMENT_DOMAIN,
  listeningAddress,
  proxyCertificate,
  reverseProxy,
  TEST_NAMES_CHROMIUM_ARGS,
  testNamesEnv,
  type Certificate,
  type Proxy,
} from './tls-proxy.js';

const PASSWORD = 'alice has a long password';
const ALICE = { name: 'alice', password: PASSWORD };
/** The sign-in already in the client's token cache, for servers on this machine's ports (none runs there). */
const LOCAL_ACCESS_TOKEN = 'local-stack-access-token';
const LOCAL_REFRESH_TOKEN = 'local-stack-refresh-token';

let root: string;
/** The deployment's data directory, and the CLI's on "another computer". */
let serverHome: string;
let clientHome: string;
let certificate: Certificate;
let browser: Browser;
let agentUrl: string;
let auth: Proxy;
let agent: Proxy;
let ports: { auth: number; calendar: number; agent: number };
let localPorts: { auth: number; agent: number };
const proxies: Proxy[] = [];
const servers: Running[] = [];

/** The deployment's names, as another computer would reach it: each resolves to 127.0.0.1 here (the one stand-in). */
const HOSTS = { auth: `auth.${DEPLOYMENT_DOMAIN}`, calendar: `calendar.${DEPLOYMENT_DOMAIN}`, agent: `agent.${DEPLOYMENT_DOMAIN}` };

/** The environment of every process that reaches the deployment: the names resolved, the proxies' certificate trusted. */
function trusting(): Record<string, string> {
  return { ...testNamesEnv(), NODE_EXTRA_CA_CERTS: certificate.certFile };
}

/** The built CLI on the client's data directory, trusting the proxies' certificate; `env` on top. */
function client(args: string[], env: Record<string, string> = {}): Running {
  return startCli(args, clientHome, { env: { ...trusting(), ...env } });
}

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return client(args, env).done;
}

/** The demo calendar, for the account (calendar add is the local owner's command). */
async function giveCalendar(name: string): Promise<void> {
  const store = openStore(join(serverHome, 'delegate.db'));
  try {
    const user = await store.userByName(name);
    await store.addCalendar({ id: `cal_${name}`, userId: user!.id, name: 'work', kind: 'file', source: join(repoRoot, 'fixtures', 'owner.ics'), createdAt: Date.now() });
  } finally {
    store.close();
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'delegate-e2e-remote-'));
  serverHome = join(root, 'server');
  clientHome = join(root, 'client');
  certificate = await proxyCertificate(root, Object.values(HOSTS));
  ports = { auth: await freePort(), calendar: await freePort(), agent: await freePort() };
  auth = await reverseProxy(certificate, ports.auth, true, HOSTS.auth);
  const calendar = await reverseProxy(certificate, ports.calendar, false, HOSTS.calendar);
  agent = await reverseProxy(certificate, ports.agent, false, HOSTS.agent);
  proxies.push(auth, calendar, agent);
  agentUrl = `${agent.url}/mcp`;
  const trust = { env: trusting() };
  servers.push(await startServer(['serve-auth', '--port', String(ports.auth), '--issuer', auth.url, '--calendar-url', calendar.url, '--agent-url', agentUrl], serverHome, trust));
  servers.push(await startServer(['serve-calendar', '--port', String(ports.calendar), '--url', calendar.url, '--auth-url', auth.url], serverHome, trust));
  servers.push(await startServer(['serve-agent', '--port', String(ports.agent), '--url', agentUrl, '--auth-url', auth.url, '--calendar-url', calendar.url], serverHome, trust));
  const added = await addAccount(serverHome, 'alice', PASSWORD);
  expect(added.code, added.stderr).toBe(0);
  await giveCalendar('alice');
  localPorts = { auth: await freePort(), agent: await freePort() };
  await storeSignIn(clientHome, localPorts, {
    accessToken: LOCAL_ACCESS_TOKEN,
    refreshToken: LOCAL_REFRESH_TOKEN,
    expiresAt: Date.now() + 3_600_000,
    obtainedAt: Date.now(),
    clientId: 'cli_local',
  });
  browser = await launchChromium(TEST_NAMES_CHROMIUM_ARGS);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  killLeftovers();
  for (const server of servers.splice(0)) {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGTERM');
    await server.done;
  }
  for (const proxy of proxies.splice(0)) await closeProxy(proxy);
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

/** The sign-in link the CLI prints on a line of its own (not a loopback one: cli.loginUrl waits for those only). */
async function printedLink(cli: Running): Promise<string> {
  for (const started = Date.now(); Date.now() - started < 30_000; await new Promise((resolve) => setTimeout(resolve, 50))) {
    const link = /^https?:\/\/\S+$/m.exec(cli.stderr())?.[0];
    if (link !== undefined) return link;
    if (cli.child.exitCode !== null) break;
  }
  throw new Error(`no sign-in link printed:\n${cli.stderr()}`);
}

describe('find-slot --agent-url against a deployment behind https reverse proxies', () => {
  it('says so when the deployment’s certificate is not trusted here (it said only "fetch failed")', async () => {
    const untrusted = await startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', '--agent-url', agentUrl], clientHome, { env: testNamesEnv() }).done;
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toBe(
      `delegate: Cannot reach ${agentUrl} or its authorization server: the https certificate it presented is not trusted here (DEPTH_ZERO_SELF_SIGNED_CERT). With a private CA, give its certificate in NODE_EXTRA_CA_CERTS.\n`,
    );
  });

  it('signs in at the deployment’s own page, finds the slot, and uses the cached token on the next run', { timeout: 120_000 }, async () => {
    const cli = client(['find-slot', '--duration', '30m', '--json', '--no-browser', '--agent-url', agentUrl]);
    const link = await printedLink(cli);
    // The authorization request itself, at the issuer the agent's metadata names: no owner's link, no listener's /start.
    expect(new URL(link).origin).toBe(auth.url);
    expect(new URL(link).pathname).toBe('/authorize');
    expect(new URL(link).searchParams.get('resource')).toBe(agentUrl);
    await signInWithPasswordAndApprove(browser, link, ALICE);
    const first = await cli.done;
    expect(first.code, first.stderr).toBe(0);
    const slot = JSON.parse(first.stdout) as { start: string; end: string; timeZone: string };
    expect(Date.parse(slot.end) - Date.parse(slot.start)).toBe(30 * 60_000);
    expect(agent.seen).toContain('POST /mcp');
    // No owner key was made: the owner's sign-in is for an authorization server on this computer only.
    expect(existsSync(join(clientHome, 'owner-key.json'))).toBe(false);

    // Again, by DELEGATE_AGENT_URL this time: the cached token, no browser, no new authorization.
    const authorizeRequests = auth.seen.filter((line) => line.startsWith('GET /authorize')).length;
    const tokenRequests = auth.seen.filter((line) => line === 'POST /token').length;
    const again = await run(['find-slot', '--duration', '30m', '--json'], { DELEGATE_AGENT_URL: agentUrl });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toBe('');
    expect(JSON.parse(again.stdout)).toEqual(slot);
    expect(auth.seen.filter((line) => line.startsWith('GET /authorize')).length).toBe(authorizeRequests);
    expect(auth.seen.filter((line) => line === 'POST /token').length).toBe(tokenRequests);

    // The local sign-in's tokens never went to the deployment, and the deployment's token is the one its agent got.
    const remoteToken = await run(['token', '--agent-url', agentUrl]);
    expect(remoteToken.code, remoteToken.stderr).toBe(0);
    const token = remoteToken.stdout.trim();
    expect(token).not.toBe(LOCAL_ACCESS_TOKEN);
    const everything = [...auth.seen, ...agent.seen, ...auth.authorizations, ...agent.authorizations].join('\n');
    expect(everything).not.toContain(LOCAL_ACCESS_TOKEN);
    expect(everything).not.toContain(LOCAL_REFRESH_TOKEN);
    expect(agent.authorizations).toContain(`Bearer ${token}`);
    // …and the servers on this machine's ports get the local sign-in's token, never the deployment's.
    const localToken = await run(['token', '--auth-port', String(localPorts.auth), '--agent-port', String(localPorts.agent)]);
    expect(localToken.stdout.trim()).toBe(LOCAL_ACCESS_TOKEN);

    // status: both sign-ins, or with --agent-url the deployment's alone.
    const all = JSON.parse((await run(['status', '--json'])).stdout) as { delegations: Array<{ resource: string; issuer: string }> };
    expect(all.delegations.map((d) => d.resource).sort()).toEqual([`http://127.0.0.1:${localPorts.agent}/mcp`, agentUrl].sort());
    const one = await run(['status', '--json', '--agent-url', agentUrl]);
    expect(one.code, one.stderr).toBe(0);
    expect((JSON.parse(one.stdout) as { delegations: Array<{ resource: string; issuer: string }> }).delegations).toMatchObject([{ resource: agentUrl, issuer: auth.url }]);

    // logout --agent-url revokes the deployment's delegation at its authorization server and forgets it; the local one stays.
    const logout = await run(['logout', '--agent-url', agentUrl]);
    expect(logout.code, logout.stderr).toBe(0);
    expect(logout.stderr).toContain(`Revoked the delegation for ${agentUrl} at ${auth.url}.`);
    expect(auth.seen).toContain('POST /revoke');
    const left = JSON.parse((await run(['status', '--json'])).stdout) as { delegations: Array<{ resource: string }> };
    expect(left.delegations.map((d) => d.resource)).toEqual([`http://127.0.0.1:${localPorts.agent}/mcp`]);
    const signedOut = await run(['find-slot', '--duration', '30m', '--json', '--agent-url', agentUrl]);
    expect(signedOut.code).toBe(4); // no terminal, nothing stored: exit 4 naming the same --agent-url
    expect(signedOut.stderr).toContain(`--agent-url ${agentUrl}`);
  });

  it('login --device --agent-url, then a plain logout: revoked at the deployment, and no server set up on this computer', { timeout: 60_000 }, async () => {
    const cli = client(['--profile', 'away', 'login', '--device', '--agent-url', agentUrl]);
    const link = await printedLink(cli);
    expect(new URL(link).origin).toBe(auth.url); // the device page itself, no owner's link
    await approveDeviceWithPassword(browser, link, ALICE);
    const login = await cli.done;
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain(agentUrl);
    const revocations = auth.seen.filter((line) => line === 'POST /revoke').length;
    // Without --agent-url: every delegation of the profile, here only the deployment's, revoked at its own server.
    const logout = await run(['--profile', 'away', 'logout']);
    expect(logout.code, logout.stderr).toBe(0);
    expect(logout.stderr).toContain(`Revoked the delegation for ${agentUrl} at ${auth.url}.`);
    expect(auth.seen.filter((line) => line === 'POST /revoke').length).toBeGreaterThan(revocations);
    // Before: the servers on the default ports were looked for and, none answering, set up here (database, owner, keys).
    expect(existsSync(join(clientHome, 'delegate.db'))).toBe(false);
  });

  // Last, after the cases above: what each proxy was reached from (the CLI, Chromium, and the servers' own requests to
  // one another by the deployment's names), and where everything listened.
  it('kept all of its traffic on loopback', () => {
    for (const proxy of proxies) {
      expect(listeningAddress(proxy)).toBe('127.0.0.1');
      expect([...proxy.peers]).toEqual(['127.0.0.1']);
    }
    const [authServer, calendarServer, agentServer] = servers.map((server) => server.stderr());
    expect(authServer).toContain(`listening on          http://127.0.0.1:${ports.auth} `);
    expect(calendarServer).toContain(`listening on          http://127.0.0.1:${ports.calendar} `);
    expect(agentServer).toContain(`listening on          http://127.0.0.1:${ports.agent} `);
  });
});
