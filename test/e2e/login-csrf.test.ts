// Login CSRF against the owner's sign-in (found in review "local", finding 2):
// the CLI's authorization request, with its state, PKCE challenge and callback
// port, is on the browser's command line, which any user of the machine can
// read. One with a named account signs in with their password, approves that
// very request, and sends the code to the CLI's callback. The built CLI
// redeems it proving it is the owner's CLI (owner_assertion), so the
// authorization server refuses it (invalid_grant), issues nothing and revokes
// her approval; the CLI stores nothing and exits 1 saying so. The owner's own
// sign-in afterwards works as before.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, csrfOf, parseConsentForm } from '../support/oauth-flow.js';
import { addAccount, approveInBrowser, ownerLinkBehind, runCli, type Running, serveInNewHome, startCli, stopServeAndRemove } from './run.js';

const PASSWORD = 'mallory has a long password';
let home: string;
let ports: string[];
let issuer: string;
let serve: Running;

function rows(sql: string, ...params: unknown[]): Array<Record<string, unknown>> {
  const db = new Database(join(home, 'delegate.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as Array<Record<string, unknown>>;
  } finally {
    db.close();
  }
}

async function cachedTokens(): Promise<unknown[]> {
  const text = await readFile(join(home, 'tokens.json'), 'utf8').catch(() => '{}');
  const data = JSON.parse(text) as { tokens?: Record<string, Record<string, unknown>> };
  return Object.values(data.tokens ?? {}).flatMap((byResource) => Object.values(byResource));
}

beforeAll(async () => {
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-login-csrf-'));
  issuer = `http://127.0.0.1:${ports[1]}`;
  const added = await addAccount(home, 'mallory', PASSWORD);
  expect(added.code, added.stderr).toBe(0);
}, 60_000);

afterAll(() => stopServeAndRemove(serve, home));

describe('a sign-in begun with the owner link ends signed in as the owner or not at all', () => {
  it('another account that approves the CLI’s own request and delivers the code: exit 1, nothing issued or stored, her approval revoked', async () => {
    const cli = startCli(['login', '--no-browser', ...ports], home);
    // The CLI's authorization request, unchanged. It is no longer on any command line (the CLI opens its own
    // /start, which answers only the owner: test/e2e/start-link.test.ts); it is taken here as the owner's browser
    // gets it, to show that the token endpoint's check holds by itself.
    const link = new URL(await ownerLinkBehind(await cli.loginUrl));
    expect(link.pathname).toBe('/login/owner');
    const next = link.searchParams.get('next')!;
    expect(next).toMatch(/^\/authorize\?/);

    // She signs in with her password for that very request (a session is good for the page its sign-in led to).
    const mallory = new Browser();
    const form = await mallory.get(`${issuer}/login?next=${encodeURIComponent(next)}`);
    const signedIn = await mallory.post(`${issuer}/login`, { csrf: csrfOf(form.html), next, username: 'mallory', password: PASSWORD });
    expect(signedIn.status).toBe(303);
    const consent = await mallory.follow(new URL(signedIn.location!, issuer).href);
    expect(consent.status, consent.html.slice(0, 300)).toBe(200);
    expect(consent.html).toContain('signed in as mallory');
    const approved = await mallory.post(`${issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
    expect(approved.location).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback\?/);
    await mallory.get(approved.location!); // delivered to the CLI's listener

    const run = await cli.done;
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain("delegate: The sign-in was approved by another account than this computer's owner");
    expect(run.stderr).toContain('Nothing was issued or stored, and the authorization server revoked that approval');
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(/^delegate: The sign-in was approved by another account/); // one line
    expect(run.stderr).not.toContain('Authorized');
    expect(await cachedTokens()).toEqual([]);
    expect((await runCli(['status'], home)).code).toBe(4);

    // At the AS: mallory's grant to the owner's CLI client is revoked, and nothing was ever issued under it.
    const [user] = rows("SELECT id FROM users WHERE name = 'mallory'");
    const grants = rows('SELECT id, revoked_at FROM grants WHERE user_id = ?', user!.id);
    expect(grants).toHaveLength(1);
    expect(grants[0]!.revoked_at).not.toBeNull();
    expect(rows('SELECT jti FROM issued_tokens WHERE grant_id = ?', grants[0]!.id)).toEqual([]);
    expect(rows('SELECT id FROM token_families WHERE grant_id = ?', grants[0]!.id)).toEqual([]);
    expect(rows('SELECT used_at FROM auth_codes WHERE grant_id = ?', grants[0]!.id).map((c) => c.used_at)).not.toContain(null);
    const events = rows('SELECT event, detail FROM audit_log WHERE grant_id = ? ORDER BY seq', grants[0]!.id);
    expect(events.map((e) => e.event)).not.toContain('token_issued');
    expect(events.map((e) => e.event)).toContain('grant_revoked');
    // The CLI took the first answer: it did not send the spent code again (the SDK retries an invalid_grant once).
    expect(events.map((e) => e.event)).not.toContain('code_replay');
    const owner = rows('SELECT id FROM users WHERE is_owner = 1')[0]!.id;
    expect(rows('SELECT id FROM grants WHERE user_id = ?', owner)).toEqual([]);
  }, 60_000);

  it('the owner’s own sign-in afterwards is stored, for the owner', async () => {
    const cli = startCli(['login', '--no-browser', ...ports], home);
    await approveInBrowser(await cli.loginUrl);
    const run = await cli.done;
    expect(run.code, run.stderr).toBe(0);
    const owner = rows('SELECT id FROM users WHERE is_owner = 1')[0]!.id;
    const status = JSON.parse((await runCli(['status', '--json'], home)).stdout) as { delegations: Array<{ user: string }> };
    expect(status.delegations.map((d) => d.user)).toEqual([owner]);
  }, 60_000);
});
