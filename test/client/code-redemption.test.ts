// An authorization code is presented once (RFC 6749 §4.1.2), whatever the
// first answer (found in review: the MCP SDK's auth() presents a refused code
// again, after invalid_grant with the same code and verifier, after
// invalid_client or unauthorized_client after clearing the cached client,
// discovery and tokens). `delegate login`'s sign-in against the real
// authorization server and CalendarAgent (in this process, on ephemeral
// ports), with the first redemption failing: the person gets the first answer,
// exactly one code redemption reaches /token, the authorization server records
// no code_replay and issues nothing, and the token cache is as it was.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashSecret } from '../../src/authz/crypto.js';
import { errorText, exitCodeFor } from '../../src/cli/errors.js';
import { login, type SessionOptions } from '../../src/client/session.js';
import { listenAgentFor, listenFreeCalendar, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';

let authz: TestAuthz;
let agent: FastifyInstance;
let calendar: Server;
let home: string;
/** The code redemptions (POST /token, grant_type=authorization_code) that reached the authorization server, with its answer. */
let redemptions: Array<{ status: number; error: unknown }>;
/** The code the CLI presented (each time). */
let presented: string[];
/** Every request the CLI sent, as "METHOD /path". */
let requests: string[];

beforeEach(async () => {
  redemptions = [];
  presented = [];
  requests = [];
  calendar = await listenFreeCalendar();
  authz = await startTestAuthz({ calendarPort: (calendar.address() as { port: number }).port });
  agent = await listenAgentFor(authz);
  home = await mkdtemp(join(tmpdir(), 'delegate-code-redemption-'));
  await authz.shareDataDirectory(home);
});

afterEach(async () => {
  await agent.close();
  await authz.close();
  await new Promise((resolve) => calendar.close(resolve));
  await rm(home, { recursive: true, force: true });
});

/** What the network between the CLI and the authorization server does to a code redemption. */
type Fault = (body: URLSearchParams, send: () => Promise<Response>) => Promise<Response>;

function isRedemption(init: RequestInit | undefined): init is RequestInit & { body: URLSearchParams } {
  return init?.method === 'POST' && init.body instanceof URLSearchParams && init.body.get('grant_type') === 'authorization_code';
}

/** The CLI's fetch: records what it sends, and lets `fault` handle each code redemption. */
function cliFetch(fault: Fault): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    requests.push(`${init?.method ?? 'GET'} ${url.pathname}`);
    if (!isRedemption(init)) return fetch(input, init);
    const body = init.body;
    presented.push(String(body.get('code')));
    return fault(body, async () => {
      const response = await fetch(input, init);
      const answer = (await response.clone().json().catch(() => ({}))) as Record<string, unknown>;
      redemptions.push({ status: response.status, error: answer.error });
      return response;
    });
  };
}

function options(fault: Fault, duringConsent?: () => Promise<void>): SessionOptions {
  return {
    agentUrl: authz.agentUrl,
    files: { tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock'), ownerKey: join(home, 'owner-key.json') },
    now: Date.now,
    loginTimeoutMs: 10_000,
    presentLoginUrl: async (url) => {
      void approveInBrowser(url, duringConsent);
    },
    fetchFn: cliFetch(fault),
  };
}

/** The owner follows the CLI's link, approves, and the browser brings the code back to the CLI's listener. */
async function approveInBrowser(link: string, beforeReturning?: () => Promise<void>): Promise<void> {
  const browser = new Browser();
  const consent = await browser.follow(link);
  const answer = await browser.post(new URL('/consent', consent.url).href, { ...parseConsentForm(consent.html), decision: 'approve' });
  await beforeReturning?.();
  await browser.get(new URL(answer.location!, consent.url).href);
}

async function events(): Promise<string[]> {
  return (await authz.store.listAudit()).map((r) => r.event);
}

async function cachedClients(): Promise<string[]> {
  const data = JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8')) as { clients: Record<string, { client_id: string }>; tokens: Record<string, unknown> };
  return Object.values(data.clients).map((c) => c.client_id);
}

async function cachedTokens(): Promise<unknown[]> {
  const data = JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8')) as { tokens: Record<string, Record<string, unknown>> };
  return Object.values(data.tokens).flatMap((byResource) => Object.values(byResource));
}

/** Whether the authorization server holds the presented code as used. */
async function codeSpent(): Promise<boolean> {
  expect(new Set(presented).size).toBe(1);
  const record = await authz.store.authCodeByHash(hashSecret(presented[0]!));
  return record!.usedAt !== null;
}

/** A well-formed PKCE verifier that is not the one of the authorization request. */
const WRONG_VERIFIER = 'x'.repeat(43);

describe('a refused authorization code is not presented again', () => {
  it('a wrong PKCE verifier: invalid_grant on the wire, once; the person gets that answer; nothing issued, no replay recorded', async () => {
    // The CLI's stored verifier is wrong (every redemption carries the same wrong one, as the SDK's retry would).
    const wrongVerifier: Fault = (body, send) => {
      body.set('code_verifier', WRONG_VERIFIER);
      return send();
    };
    const error = await login(options(wrongVerifier)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(redemptions.map((r) => [r.status, r.error])).toEqual([[400, 'invalid_grant']]);
    expect(error).toMatchObject({ errorCode: 'invalid_grant', message: 'code_verifier does not match the code_challenge' });
    // What `delegate login` prints, and its exit code (README "Exit codes": 1).
    expect(errorText(error, false)).toBe('delegate: code_verifier does not match the code_challenge\n');
    expect(exitCodeFor(error)).toBe(1);
    expect(await codeSpent()).toBe(false);
    const audit = await events();
    expect(audit).not.toContain('code_replay');
    expect(audit).not.toContain('token_issued');
    expect(await cachedTokens()).toEqual([]);
    // The registration the sign-in made is kept: nothing in the cache was cleared for a retry.
    expect(await cachedClients()).toHaveLength(1);
  }, 30_000);

  it('an answer lost on the way back (the code was redeemed, the CLI got invalid_grant): the person gets that answer; the code is not presented again, so no code_replay and no revocation', async () => {
    // A gateway between the CLI and the authorization server passes the redemption on, and answers the CLI
    // with an error of its own: the code is spent at the authorization server.
    let first = true;
    const lostAnswer: Fault = async (_body, send) => {
      const real = await send();
      if (!first) return real;
      first = false;
      await real.body?.cancel();
      return Response.json({ error: 'invalid_grant', error_description: 'The gateway lost the answer.' }, { status: 400 });
    };
    const error = await login(options(lostAnswer)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(redemptions.map((r) => [r.status, r.error])).toEqual([[200, undefined]]);
    expect(error).toMatchObject({ errorCode: 'invalid_grant', message: 'The gateway lost the answer.' });
    expect(errorText(error, false)).toBe('delegate: The gateway lost the answer.\n');
    expect(exitCodeFor(error)).toBe(1);
    expect(presented).toHaveLength(1);
    expect(await codeSpent()).toBe(true);
    const audit = await events();
    expect(audit).toContain('token_issued');
    expect(audit).not.toContain('code_replay');
    // The tokens the lost answer carried are not revoked by a replay of their code.
    const grants = await authz.store.listGrants();
    expect(grants).toHaveLength(1);
    expect(grants[0]!.revokedAt).toBeNull();
    const issued = (await authz.store.listAudit()).find((r) => r.event === 'token_issued')!;
    expect(await authz.store.tokenStanding(String((issued.detail as { jti: unknown }).jti), Date.now())).toBe('active');
    expect(await cachedTokens()).toEqual([]);
  }, 30_000);

  it('invalid_client at the redemption (the client must now authenticate): the person gets that answer; once on the wire; the cache keeps its registration and discovery; nothing registered anew', async () => {
    // An administrator changes the CLI's registration while the owner is on the consent page.
    const requireAuthentication = async () => {
      const [clientId] = await cachedClients();
      const client = await authz.store.clientById(clientId!);
      await authz.store.updateClient({ ...client!, tokenEndpointAuthMethod: 'client_secret_basic' });
    };
    const error = await login(options((_body, send) => send(), requireAuthentication)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(redemptions.map((r) => [r.status, r.error])).toEqual([[400, 'invalid_client']]);
    expect(error).toMatchObject({ errorCode: 'invalid_client', message: 'This client must authenticate.' });
    expect(exitCodeFor(error)).toBe(1);
    expect(await codeSpent()).toBe(false);
    expect(requests.filter((r) => r === 'POST /register')).toHaveLength(1); // the sign-in's own, before the browser
    const after = JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8')) as { discovery: Record<string, unknown> };
    expect(Object.keys(after.discovery)).toHaveLength(1);
    expect(await cachedClients()).toHaveLength(1);
    expect(await events()).not.toContain('code_replay');
  }, 30_000);

  it('a server error: the first answer, once on the wire (the SDK does not retry it; kept so)', async () => {
    let first = true;
    const unavailable: Fault = async (_body, send) => {
      if (!first) return send();
      first = false;
      redemptions.push({ status: 503, error: 'temporarily_unavailable' });
      return Response.json({ error: 'temporarily_unavailable', error_description: 'Try again later.' }, { status: 503 });
    };
    const error = await login(options(unavailable)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(redemptions.map((r) => [r.status, r.error])).toEqual([[503, 'temporarily_unavailable']]);
    expect(error).toMatchObject({ errorCode: 'temporarily_unavailable', message: 'Try again later.' });
  }, 30_000);
});

// Found in review (s26): a Ctrl-C (or SIGTERM) that came while the code was redeemed ended the process before the
// tokens were saved: issued, and never stored. The redemption and its save are now held (held-signals.ts).
describe('ending signals during the redemption', () => {
  it('are held from before the code is presented until its tokens are saved, then let go', async () => {
    const events: string[] = [];
    let held = false;
    /** Whether the cache holds tokens, read as the hold ends. */
    const saved = (): boolean => {
      try {
        const data = JSON.parse(readFileSync(join(home, 'tokens.json'), 'utf8')) as { tokens: Record<string, Record<string, unknown>> };
        return Object.values(data.tokens).some((byResource) => Object.keys(byResource).length > 0);
      } catch {
        return false;
      }
    };
    const noFault: Fault = async (_body, send) => {
      events.push(held ? 'redeem (held)' : 'redeem (not held)');
      return send();
    };
    let releasedWith: boolean | undefined;
    await login({
      ...options(noFault),
      signInSignals: {
        hold: () => void (events.push('hold'), (held = true)),
        release: () => void ((releasedWith = saved()), events.push('release'), (held = false)),
      },
    });
    expect(events).toEqual(['hold', 'redeem (held)', 'release']);
    // What the cache held as the hold ended: the tokens.
    expect(releasedWith).toBe(true);
  }, 30_000);
});
