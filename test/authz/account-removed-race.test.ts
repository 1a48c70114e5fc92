// `delegate users remove` retiring an account while a request of that account
// is on its way through the authorization server: the request read the account
// (its session) just before the removal, and what it then writes for the account
// is refused by the database (the `removed_at` migration's triggers). Found in
// review (s26): an Approve at that moment was a JSON 500 `server_error` ("the
// account was removed", "unhandled error" in the log). Each case here makes the
// removal land in that window deterministically: a pass-through wrapper of the
// store's step just before the write removes the account as the CLI does, then
// lets the step run. The answer is the page a browser expects, saying the account
// was removed, with nothing written for it; /token says invalid_grant.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { removeAccount } from '../../src/authz/users.js';
import type { Store, UserRecord } from '../../src/store/index.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import {
  Browser,
  DEVICE_CODE_GRANT,
  authorizeUrl,
  callbackParams,
  hiddenField,
  parseConsentForm,
  pkcePair,
  postForm,
  registerDeviceClient,
  registerPublicClient,
} from '../support/oauth-flow.js';
import { expectStrictPage } from '../security/stack.js';
import { REDIRECT } from './helpers.js';

// Accounts added and signed in by the handful: scrypt at N=2^12 here (test/support/cheap-scrypt.ts).
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());
const restores: Array<() => void> = [];
afterEach(() => restores.splice(0).forEach((restore) => restore()));

const PASSWORD = 'a long and secret password';

/** A named account, added as `delegate users add` adds it. */
const account = (name: string): Promise<UserRecord> => addUser(authz.store, { name, password: PASSWORD, timeZone: 'UTC' }, Date.now(), { by: 'cli' });

/** `name` signs in with its password for `url` (a session good for that page only); where the sign-in leads. */
async function signIn(name: string, url: string, browser = new Browser()): Promise<{ browser: Browser; page: string }> {
  const next = url.slice(authz.issuer.length);
  const form = await browser.get(`${authz.issuer}/login?next=${encodeURIComponent(next)}`);
  const res = await browser.post(`${authz.issuer}/login`, { csrf: hiddenField(form.html, 'csrf'), next, username: name, password: PASSWORD });
  expect(res.status).toBe(303);
  return { browser, page: new URL(res.location!, authz.issuer).href };
}

/** Once, just after the store's `step` next runs (or before, with `before`), `user` is removed as `delegate users remove` does. */
function removedAt(step: 'takeAuthRequest' | 'listCalendars' | 'redeemAuthCode', user: UserRecord, when: 'after' | 'before' = 'after'): { ran: () => boolean } {
  const store = authz.store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const original = store[step]!;
  let ran = false;
  restores.push(() => (store[step] = original));
  const remove = () => removeAccount(authz.store as Store, user, Date.now(), { by: 'cli' });
  store[step] = async (...args: unknown[]) => {
    store[step] = original;
    ran = true;
    if (when === 'before') await remove();
    const result = await original.apply(authz.store, args);
    if (when === 'after') await remove();
    return result;
  };
  return { ran: () => ran };
}

/** The page that says the account was removed (400), and nothing of the JSON 500. */
function expectAccountRemovedPage(res: { status: number; html: string; headers: Headers }): void {
  expect(res.status, res.html.slice(0, 200)).toBe(400);
  expect(res.headers.get('content-type')).toMatch(/^text\/html/);
  expect(res.html).toContain('<title>This account was removed</title>');
  expect(res.html).not.toContain('server_error');
  expectStrictPage('account removed', res);
}

/** The grants of `user`, and the consent records naming it. */
async function writtenFor(user: UserRecord): Promise<{ grants: number; consents: number }> {
  const grants = (await authz.store.listGrants(user.id)).length;
  const consents = (await authz.store.listAudit({ user: user.id, events: ['consent'] })).length;
  return { grants, consents };
}

describe('an account removed (delegate users remove) while its request is on its way', () => {
  it('Approve, the account removed after the request was taken and before the grant is written: the page says so, no grant, no consent record', async () => {
    const alice = await account('alice');
    const clientId = await registerPublicClient(authz.issuer, [REDIRECT]);
    const { challenge } = pkcePair();
    const href = authorizeUrl(authz.issuer, { clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope: 'slots:find', state: 's-alice', challenge });
    const { browser, page } = await signIn('alice', href);
    const consent = await browser.get(page);
    expect(consent.status).toBe(200);
    const removal = removedAt('takeAuthRequest', alice);
    const approved = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
    expect(removal.ran()).toBe(true);
    expectAccountRemovedPage(approved);
    expect(approved.location).toBeNull();
    expect(await writtenFor(alice)).toEqual({ grants: 0, consents: 0 });
    expect((await authz.store.listAudit({ user: alice.id, events: ['user_removed'] })).length).toBe(1);
  });

  it('/authorize, the account removed after its session was read and before the consent request is stored: the page says so, nothing stored', async () => {
    const bob = await account('bob');
    const clientId = await registerPublicClient(authz.issuer, [REDIRECT]);
    const { challenge } = pkcePair();
    const href = authorizeUrl(authz.issuer, { clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope: 'slots:find', state: 's-bob', challenge });
    const { browser, page } = await signIn('bob', href);
    // The consent page lists the user's calendars (read just before its request is stored).
    const removal = removedAt('listCalendars', bob);
    const shown = await browser.get(page);
    expect(removal.ran()).toBe(true);
    expectAccountRemovedPage(shown);
    expect(shown.html).not.toContain('name="decision"');
    expect(await writtenFor(bob)).toEqual({ grants: 0, consents: 0 });
  });

  it('the device confirmation (POST /device), the account removed before the consent request is stored: the page says so, the device still pending', async () => {
    const carol = await account('carol');
    const clientId = await registerDeviceClient(authz.issuer);
    const started = await postForm(`${authz.issuer}/device_authorization`, { client_id: clientId, resource: authz.agentUrl });
    expect(started.status).toBe(200);
    const { device_code: deviceCode, user_code: userCode } = started.body as Record<string, string>;
    const { browser, page } = await signIn('carol', `${authz.issuer}/device?user_code=${userCode}`);
    const confirm = await browser.get(page);
    expect(confirm.status).toBe(200);
    const removal = removedAt('listCalendars', carol);
    const continued = await browser.post(`${authz.issuer}/device`, { user_code: userCode!, csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
    expect(removal.ran()).toBe(true);
    expectAccountRemovedPage(continued);
    expect(await writtenFor(carol)).toEqual({ grants: 0, consents: 0 });
    const polled = await postForm(`${authz.issuer}/token`, { grant_type: DEVICE_CODE_GRANT, device_code: deviceCode!, client_id: clientId });
    expect([polled.status, polled.body.error]).toEqual([400, 'authorization_pending']);
  });

  it('/token, the account removed as its code is redeemed: 400 invalid_grant, no token recorded', async () => {
    const dave = await account('dave');
    const clientId = await registerPublicClient(authz.issuer, [REDIRECT]);
    const { verifier, challenge } = pkcePair();
    const href = authorizeUrl(authz.issuer, { clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope: 'slots:find', state: 's-dave', challenge });
    const { browser, page } = await signIn('dave', href);
    const consent = await browser.get(page);
    const approved = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
    expect(approved.status).toBe(303);
    const code = callbackParams(approved.location!).get('code')!;
    const removal = removedAt('redeemAuthCode', dave, 'before');
    const res = await postForm(`${authz.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId, resource: authz.agentUrl });
    expect(removal.ran()).toBe(true);
    expect([res.status, res.body.error]).toEqual([400, 'invalid_grant']);
    expect(res.body).not.toHaveProperty('access_token');
    expect((await authz.store.listAudit({ user: dave.id, events: ['token_issued'] })).length).toBe(0);
  });
});
