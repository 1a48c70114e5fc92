// The owner's sign-in (the owner key, the link behind /start, the owner assertion on the token requests) is used only
// at an authorization server whose metadata says it runs from the CLI's own data directory (DATA_DIRECTORY_HEADER),
// on the browser path and the device path alike. Found in review (s33team): with --agent-url at the `serve` of another
// data directory on the same computer, the CLI used it there, and that server (trusting another owner key) refused
// it: the colleague's browser sign-in ended on a page blaming the link, and her device sign-in, approved with her
// password, on invalid_grant at every poll. One that says another data directory, or nothing, gets the plain
// authorization URL (or the device page) and no assertion, and no owner key is made. In this process, against the
// real authorization server and CalendarAgent on ephemeral loopback ports; the whole sign-in as a named account is
// test/e2e/colleague-agent-url.test.ts.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deviceLogin } from '../../src/client/device.js';
import { login } from '../../src/client/session.js';
import { listenAgentFor, startTestAuthz, type TestAuthz } from '../support/authz.js';

let authz: TestAuthz;
let agent: FastifyInstance;
let root: string;
/** The CLI's data directory, and another one (the operator's, say). */
let home: string;
let other: string;
let requests: string[];
let clock: number;
const now = () => clock;

beforeEach(async () => {
  requests = [];
  clock = Date.now();
  authz = await startTestAuthz({ now });
  agent = await listenAgentFor(authz, Date.now);
  root = await mkdtemp(join(tmpdir(), 'delegate-owner-link-dir-'));
  home = join(root, 'home');
  other = join(root, 'other');
  await mkdir(home, { mode: 0o700 });
  await mkdir(other, { mode: 0o700 });
});

afterEach(async () => {
  await agent.close();
  await authz.close();
  await rm(root, { recursive: true, force: true });
});

/** Every request the client sends, as "POST /token <body>". */
const recordingFetch: typeof fetch = async (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  requests.push(`${init?.method ?? 'GET'} ${url.pathname} ${init?.body instanceof URLSearchParams ? init.body.toString() : ''}`.trim());
  return fetch(input, init);
};

const files = () => ({ tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock'), ownerKey: join(home, 'owner-key.json') });

/** The authorization server says it runs from another data directory, or says nothing of it. */
const cases: Array<[string, () => Promise<void>]> = [
  ['says it runs from another data directory', () => authz.shareDataDirectory(other)],
  ['says nothing of its data directory', async () => {}],
];

describe.each(cases)('an authorization server on loopback that %s', (_, setUp) => {
  beforeEach(setUp);

  it('browser sign-in: the plain authorization URL, no /start, no owner key made', async () => {
    const shown: string[] = [];
    await expect(
      login({ agentUrl: authz.agentUrl, files: files(), now, fetchFn: recordingFetch, loginTimeoutMs: 1000, presentLoginUrl: async (url) => void shown.push(url) }),
    ).rejects.toMatchObject({ code: 'LOGIN_TIMEOUT' });
    expect(shown).toHaveLength(1);
    const url = new URL(shown[0]!);
    expect(`${url.origin}${url.pathname}`).toBe(`${authz.issuer}/authorize`);
    expect(url.searchParams.get('resource')).toBe(authz.agentUrl);
    expect(existsSync(join(home, 'owner-key.json'))).toBe(false);
  });

  it('device sign-in: the device page itself, no owner assertion on any poll, no owner key made', async () => {
    const links: string[] = [];
    await expect(
      deviceLogin({
        agentUrl: authz.agentUrl,
        files: files(),
        now,
        fetchFn: recordingFetch,
        loginTimeoutMs: 12_000,
        // The interval passes at once on the shared clock: a few polls, then --login-timeout.
        sleep: async (ms) => {
          clock += ms;
          await new Promise((resolve) => setTimeout(resolve, 5));
        },
        presentDeviceCode: async (prompt) => {
          links.push(prompt.link);
          expect(prompt.link).toBe(prompt.verificationUriComplete);
        },
      }),
    ).rejects.toMatchObject({ code: 'LOGIN_TIMEOUT' });
    expect(links).toHaveLength(1);
    expect(`${new URL(links[0]!).origin}${new URL(links[0]!).pathname}`).toBe(`${authz.issuer}/device`);
    const polls = requests.filter((r) => r.startsWith('POST /token ') && r.includes('device_code'));
    expect(polls.length).toBeGreaterThan(0);
    for (const poll of polls) expect(poll).not.toContain('owner_assertion');
    expect(existsSync(join(home, 'owner-key.json'))).toBe(false);
  });
});

describe('an authorization server on loopback that says it runs from this data directory (the control)', () => {
  beforeEach(() => authz.shareDataDirectory(home));

  it('browser sign-in: /start, behind it the owner’s link', async () => {
    const shown: string[] = [];
    const started: string[] = [];
    await expect(
      login({
        agentUrl: authz.agentUrl,
        files: files(),
        now,
        fetchFn: recordingFetch,
        loginTimeoutMs: 3000,
        presentLoginUrl: async (url) => {
          shown.push(url);
          started.push((await fetch(url, { redirect: 'manual' })).headers.get('location') ?? '');
        },
      }),
    ).rejects.toMatchObject({ code: 'LOGIN_TIMEOUT' });
    expect(new URL(shown[0]!).pathname).toBe('/start');
    expect(started[0]!.startsWith(`${authz.issuer}/login/owner?assertion=`)).toBe(true);
  });

  it('device sign-in: the owner’s link onto the device page, the owner assertion on every poll', async () => {
    const links: string[] = [];
    await expect(
      deviceLogin({
        agentUrl: authz.agentUrl,
        files: files(),
        now,
        fetchFn: recordingFetch,
        loginTimeoutMs: 12_000,
        sleep: async (ms) => {
          clock += ms;
          await new Promise((resolve) => setTimeout(resolve, 5));
        },
        presentDeviceCode: async (prompt) => void links.push(prompt.link),
      }),
    ).rejects.toMatchObject({ code: 'LOGIN_TIMEOUT' });
    expect(links[0]!.startsWith(`${authz.issuer}/login/owner?assertion=`)).toBe(true);
    const polls = requests.filter((r) => r.startsWith('POST /token ') && r.includes('device_code'));
    expect(polls.length).toBeGreaterThan(0);
    for (const poll of polls) expect(poll).toContain('owner_assertion');
  });
});
