// All three of delegate's servers in this process, built as `delegate serve`
// builds them (src/cli/servers.ts: one SQLite store in a fresh data
// directory, the local bootstrap, the agent's key), each on a free loopback
// port, with an optional logger; and the person at the browser who signs in
// as the owner and approves, so a test holds real tokens from the real flow.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { resolvePaths, type Paths, type Urls } from '../../src/config.js';
import { bootstrap, buildAgent, buildAuth, buildCalendar, closeAll, openDataStore, storeAudit } from '../../src/cli/servers.js';
import { loadOrCreateOwnerKey, ownerLoginNext, ownerLoginUrl, signOwnerAssertion } from '../../src/client/owner-login.js';
import type { RateLimitRule } from '../../src/authz/rate-limit.js';
import type { Store } from '../../src/store/index.js';
import type { AuthServerOptions } from '../../src/authz/index.js';
import { Browser, authorizeUrl, parseConsentForm, pkcePair, postForm, registerPublicClient, type ConsentForm } from './oauth-flow.js';
import { freePort } from './ports.js';

export interface TestStack {
  home: string;
  paths: Paths;
  urls: Urls;
  store: Store;
  auth: FastifyInstance;
  calendar: FastifyInstance;
  agent: FastifyInstance;
  close(): Promise<void>;
}

/**
 * `sweep: false` stops the AS's timed sweep of expired rows (for tests that compare the database around each request);
 * `deviceRequestLimit` replaces the AS's bound on device requests per source (for tests that start hundreds).
 * `registrationLimits` replaces the AS's limits on open registration ([]: none).
 * `clientDocuments`: how the AS fetches client metadata documents (a test's CA, resolver, hosts allowed on loopback).
 * `trustProxy`: the proxies all three servers believe about the client's address (`--trust-proxy`; none by default).
 */
export async function startTestStack(
  options: { logger?: Logger; sweep?: boolean; deviceRequestLimit?: RateLimitRule; registrationLimits?: AuthServerOptions['registrationLimits']; clientDocuments?: AuthServerOptions['clientDocuments']; trustProxy?: readonly string[] } = {},
): Promise<TestStack> {
  const root = await mkdtemp(join(tmpdir(), 'delegate-stack-'));
  const paths = resolvePaths({ DELEGATE_HOME: join(root, 'home') });
  const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
  const urls: Urls = { issuer: `http://127.0.0.1:${auth}`, calendarUrl: `http://127.0.0.1:${calendar}`, agentUrl: `http://127.0.0.1:${agent}/mcp` };
  await mkdir(paths.home, { recursive: true, mode: 0o700 });
  const store = await openDataStore(paths);
  const started: FastifyInstance[] = [];
  try {
    await bootstrap(store, paths, urls, Date.now());
    await loadOrCreateOwnerKey(paths.ownerKey);
    const apps: Array<[FastifyInstance, number]> = [
      [
        await buildAuth(store, paths, urls.issuer, options.logger, {
          ...(options.sweep === false ? { sweepIntervalMs: 0 } : {}),
          ...(options.deviceRequestLimit ? { deviceRequestLimit: options.deviceRequestLimit } : {}),
          ...(options.registrationLimits ? { registrationLimits: options.registrationLimits } : {}),
          ...(options.clientDocuments ? { clientDocuments: options.clientDocuments } : {}),
          ...(options.trustProxy ? { trustProxy: options.trustProxy } : {}),
        }),
        auth,
      ],
      [await buildCalendar(store, paths, urls.calendarUrl, urls.issuer, options.logger, options.trustProxy), calendar],
      [await buildAgent(paths, urls, options.logger, storeAudit(store), undefined, options.trustProxy), agent],
    ];
    for (const [app, port] of apps) {
      await app.listen({ host: '127.0.0.1', port });
      started.push(app);
    }
  } catch (error) {
    await closeAll(started, store);
    await rm(root, { recursive: true, force: true });
    throw error;
  }
  return {
    home: paths.home,
    paths,
    urls,
    store,
    auth: started[0]!,
    calendar: started[1]!,
    agent: started[2]!,
    close: async () => {
      await closeAll(started, store);
      await rm(root, { recursive: true, force: true });
    },
  };
}

export interface FlowSecrets {
  clientId: string;
  redirectUri: string;
  assertion: string;
  code: string;
  verifier: string;
  csrf: string;
  cookies: string[];
  /** The signed-in browser's Cookie header. */
  cookieHeader: string;
  accessToken: string;
  refreshToken: string;
}

export interface OpenConsent {
  clientId: string;
  redirectUri: string;
  assertion: string;
  verifier: string;
  /** The consent form as the page presets it (request id, csrf, limits). */
  form: ConsentForm;
  browser: Browser;
  cookieHeader: string;
}

const REDIRECT_URI = 'http://127.0.0.1:9/callback';

/** A public client registers and the owner signs in through the login link, which lands on the consent page: left open, undecided. */
export async function openConsent(stack: TestStack, scope = 'slots:find busy:read'): Promise<OpenConsent> {
  const { issuer, agentUrl } = stack.urls;
  const clientId = await registerPublicClient(issuer, [REDIRECT_URI]);
  const pkce = pkcePair();
  const authorize = new URL(authorizeUrl(issuer, { clientId, redirectUri: REDIRECT_URI, resource: agentUrl, scope, state: 'test-state-0123456789', challenge: pkce.challenge }));
  const key = await loadOrCreateOwnerKey(stack.paths.ownerKey);
  const assertion = await signOwnerAssertion({ key, issuer, now: Date.now, next: ownerLoginNext(authorize) });
  const browser = new Browser();
  const consent = await browser.follow(ownerLoginUrl(issuer, assertion, authorize));
  if (consent.status !== 200) throw new Error(`expected the consent page, got ${consent.status}: ${consent.html.slice(0, 300)}`);
  return { clientId, redirectUri: REDIRECT_URI, assertion, verifier: pkce.verifier, form: parseConsentForm(consent.html), browser, cookieHeader: cookieHeaderOf(browser) };
}

function cookieHeaderOf(browser: Browser): string {
  const jar = (browser as unknown as { cookies: Map<string, string> }).cookies;
  return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
}

/**
 * A public client registers, the owner signs in through the login link and
 * approves, and the client trades the code for tokens: every secret of the
 * flow is returned, so a test can look for it where it must not be.
 */
export async function runAuthorizationFlow(stack: TestStack, scope = 'slots:find busy:read'): Promise<FlowSecrets> {
  const { issuer, agentUrl } = stack.urls;
  const open = await openConsent(stack, scope);
  const answer = await open.browser.post(`${issuer}/consent`, { ...open.form, decision: 'approve' });
  if (!answer.location) throw new Error(`consent answered ${answer.status} without a redirect`);
  const code = new URL(answer.location).searchParams.get('code');
  if (!code) throw new Error(`no code in ${answer.location.replace(/code=[^&]+/, 'code=…')}`);
  const token = await postForm(`${issuer}/token`, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: open.redirectUri,
    client_id: open.clientId,
    code_verifier: open.verifier,
    resource: agentUrl,
  });
  if (token.status !== 200) throw new Error(`token request failed: ${token.status} ${JSON.stringify(token.body)}`);
  const jar = (open.browser as unknown as { cookies: Map<string, string> }).cookies;
  return {
    clientId: open.clientId,
    redirectUri: open.redirectUri,
    assertion: open.assertion,
    code,
    verifier: open.verifier,
    csrf: open.form.csrf,
    cookies: [...jar.values()],
    cookieHeader: cookieHeaderOf(open.browser),
    accessToken: String(token.body.access_token),
    refreshToken: String(token.body.refresh_token),
  };
}
