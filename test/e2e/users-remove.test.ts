// `delegate users remove` against the database a running `delegate serve`
// uses (another process), end to end on the built CLI: alice signs in with her
// password and holds tokens that CalendarAgent and the calendar backend take;
// once she is removed, both refuse them within the revocation bound (the
// revocation list, as after `grants revoke`), her refresh token is refused and
// her password no longer signs in. Her name added again is a new account that
// signs in with its own password and inherits none of it. `users list` shows
// the accounts as the running server left them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, authorizeUrl, callbackParams, csrfOf, parseConsentForm, pkcePair, postForm, registerPublicClient } from '../support/oauth-flow.js';
import { addAccount, runCli, serveInNewHome, stopServeAndRemove, toolsListStatus, type Running } from './run.js';

const REDIRECT = 'http://127.0.0.1:9/callback';
/** How long a revocation may take to reach the resource servers here: the design bound is 1 s (README); the rest is room for a busy machine. */
const REVOCATION_BOUND_MS = 5_000;

let home: string;
let ports: string[];
let serve: Running;
let issuer: string;
let calendarUrl: string;
let agentUrl: string;

beforeAll(async () => {
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-users-remove-'));
  issuer = `http://127.0.0.1:${ports[1]}`;
  calendarUrl = `http://127.0.0.1:${ports[3]}`;
  agentUrl = `http://127.0.0.1:${ports[5]}/mcp`;
}, 60_000);

afterAll(() => stopServeAndRemove(serve, home));

interface SignIn {
  status: number;
  accessToken?: string;
  refreshToken?: string;
  clientId?: string;
}

/** A new public client; `name` signs in with `password` at the running server, approves, and the code is redeemed. */
async function signIn(name: string, password: string): Promise<SignIn> {
  const clientId = await registerPublicClient(issuer, [REDIRECT]);
  const { verifier, challenge } = pkcePair();
  const href = authorizeUrl(issuer, { clientId, redirectUri: REDIRECT, resource: agentUrl, scope: 'slots:find', state: `state-${'s'.repeat(40)}`, challenge });
  const next = href.slice(issuer.length);
  const browser = new Browser();
  const form = await browser.get(`${issuer}/login?next=${encodeURIComponent(next)}`);
  const signedIn = await browser.post(`${issuer}/login`, { csrf: csrfOf(form.html), next, username: name, password });
  if (signedIn.status !== 303) return { status: signedIn.status };
  const consent = await browser.get(new URL(signedIn.location!, issuer).href);
  expect(consent.status).toBe(200);
  const approved = await browser.post(`${issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
  const code = callbackParams(approved.location!).get('code')!;
  const tokens = await postForm(`${issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId, resource: agentUrl });
  expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
  return { status: 200, accessToken: String(tokens.body.access_token), refreshToken: String(tokens.body.refresh_token), clientId };
}

/** A calendar token exchanged from `token` by CalendarAgent (its key in the data directory), as the agent gets one. */
async function calendarToken(token: string): Promise<string> {
  const run = await runCli(['token', 'exchange', '--audience', calendarUrl, '--scope', 'freebusy:read', '--subject-token', '-', '--auth-port', ports[1]!], home, { stdin: token });
  expect(run.code, run.stderr).toBe(0);
  return run.stdout.trim();
}

async function calendarStatus(token: string): Promise<number> {
  const from = new Date().toISOString();
  const to = new Date(Date.now() + 86_400_000).toISOString();
  const res = await fetch(`${calendarUrl}/freebusy?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, { headers: { authorization: `Bearer ${token}` } });
  await res.text();
  return res.status;
}

/** `probe`'s answer once a revocation has had REVOCATION_BOUND_MS to arrive (sooner once it is 401). */
async function statusOnceRevoked(probe: () => Promise<number>): Promise<number> {
  const started = Date.now();
  let status = await probe();
  while (status !== 401 && Date.now() - started < REVOCATION_BOUND_MS) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    status = await probe();
  }
  return status;
}

async function accounts(): Promise<Array<{ id: string; name: string; active_grants: number; last_sign_in_at: string | null }>> {
  const run = await runCli(['users', 'list', '--json'], home);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout);
}

describe('users remove while delegate serve runs on the same database', () => {
  it('her tokens are refused by CalendarAgent and the calendar backend within the bound, her refresh token and her password too; the name added again inherits nothing', { timeout: 120_000 }, async () => {
    expect((await addAccount(home, 'alice', 'alice has a long password')).code).toBe(0);
    const first = await signIn('alice', 'alice has a long password');
    expect(first.status).toBe(200);
    const access = first.accessToken!;
    const calendar = await calendarToken(access);
    expect(await toolsListStatus(agentUrl, access)).toBe(200);
    expect(await calendarStatus(calendar)).not.toBe(401);
    const before = (await accounts()).find((a) => a.name === 'alice')!;
    expect(before).toMatchObject({ active_grants: 1, last_sign_in_at: expect.any(String) });

    const removed = await runCli(['users', 'remove', 'alice', '--yes'], home);
    expect(removed.code, removed.stderr).toBe(0);
    // Her sign-in's browser session ended with her consent decision (one request, one decision), so none is left to end.
    expect(removed.stderr).toMatch(/^Removed alice: 1 delegation revoked .*, 0 browser sessions ended, 0 calendars removed\./);

    expect(await statusOnceRevoked(() => toolsListStatus(agentUrl, access))).toBe(401);
    expect(await statusOnceRevoked(() => calendarStatus(calendar))).toBe(401);
    const refreshed = await postForm(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: first.refreshToken!, client_id: first.clientId! });
    expect([refreshed.status, refreshed.body.error]).toEqual([400, 'invalid_grant']);
    expect((await signIn('alice', 'alice has a long password')).status).toBe(400);
    expect((await accounts()).map((a) => a.name)).not.toContain('alice');

    // The name again: a new account, its own password, none of the old one's grants; the old tokens stay refused.
    expect((await addAccount(home, 'alice', 'a new password for the new alice')).code).toBe(0);
    expect((await signIn('alice', 'alice has a long password')).status).toBe(400);
    const fresh = (await accounts()).find((a) => a.name === 'alice')!;
    expect(fresh).toMatchObject({ active_grants: 0, last_sign_in_at: null });
    expect(fresh.id).not.toBe(before.id);
    const second = await signIn('alice', 'a new password for the new alice');
    expect(second.status).toBe(200);
    expect(await toolsListStatus(agentUrl, second.accessToken!)).toBe(200);
    const grants = JSON.parse((await runCli(['grants', 'list', '--all', '--user', 'alice', '--json'], home)).stdout) as Array<{ id: string; client: string; status: string }>;
    expect(grants).toEqual([expect.objectContaining({ client: second.clientId, status: 'active' })]);
    expect(await toolsListStatus(agentUrl, access)).toBe(401);
    expect(await calendarStatus(calendar)).toBe(401);
    const replayed = await postForm(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: first.refreshToken!, client_id: first.clientId! });
    expect(replayed.status).toBe(400);

    const audit = JSON.parse((await runCli(['audit', '--json', '--event', 'user_removed,grant_revoked'], home)).stdout) as Array<{ event: string; user: string; detail: Record<string, unknown> }>;
    expect(audit.map((r) => [r.event, r.user, r.detail.by])).toEqual([
      ['grant_revoked', before.id, 'cli'],
      ['user_removed', before.id, 'cli'],
    ]);
    expect((await runCli(['audit', '--verify'], home)).code).toBe(0);
  });
});
