// The device authorization grant (RFC 8628) at the authorization server: the
// device request, the verification page behind sign-in with the code to
// confirm, this server's consent page, and the device's polls
// (authorization_pending, slow_down, access_denied, expired_token, the
// tokens once and only once), plus the metadata and registration it needs.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { removeAccount } from '../../src/authz/users.js';
import { ownerLink, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, hiddenField, parseConsentForm, postForm, postJson, registerDeviceClient as registerDevice } from '../support/oauth-flow.js';
import { expectStrictPage, queryRows, stateChangedBy } from '../security/stack.js';
import { decodeJwt, exchange } from './helpers.js';

// Accounts added and signed in by the dozen: scrypt at N=2^12 here (test/support/cheap-scrypt.ts).
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
let authz: TestAuthz;
let clock: number;

beforeEach(async () => {
  clock = Date.now();
  authz = await startTestAuthz({ now: () => clock });
});

afterEach(async () => {
  await authz.close();
});

function registerDeviceClient(grantTypes?: string[]): Promise<string> {
  return registerDevice(authz.issuer, grantTypes);
}

async function startDevice(clientId: string) {
  const res = await postForm(`${authz.issuer}/device_authorization`, { client_id: clientId, resource: authz.agentUrl });
  expect(res.status).toBe(200);
  // RFC 6749 §5.1: the device code is a credential; not to be cached, by HTTP/1.0 caches either (s30spec).
  expect([res.headers.get('cache-control'), res.headers.get('pragma')]).toEqual(['no-store', 'no-cache']);
  return res.body as { device_code: string; user_code: string; verification_uri: string; verification_uri_complete: string; expires_in: number; interval: number };
}

function poll(clientId: string, deviceCode: string) {
  return postForm(`${authz.issuer}/token`, { grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: clientId });
}

/** The person: signs in as the owner straight onto the verification page, confirms the code, and decides on the consent page. */
async function decide(verificationUriComplete: string, decision: 'approve' | 'deny' | 'cancel'): Promise<{ page: string; confirmPage: string }> {
  const browser = new Browser();
  const next = verificationUriComplete.slice(authz.issuer.length);
  const confirm = await browser.follow(await ownerLink(authz, next));
  expect(confirm.status).toBe(200);
  const code = new URL(verificationUriComplete).searchParams.get('user_code')!;
  const confirmed = await browser.post(`${authz.issuer}/device`, { user_code: code, csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: decision === 'cancel' ? 'cancel' : 'continue' });
  if (decision === 'cancel') return { page: confirmed.html, confirmPage: confirm.html };
  expect(confirmed.status).toBe(200);
  const answer = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(confirmed.html), decision });
  expect(answer.status).toBe(303);
  const done = await browser.get(new URL(answer.location!, authz.issuer).href);
  expect(done.status).toBe(200);
  return { page: done.html, confirmPage: confirm.html };
}

/**
 * A named account, which signs in with a password for one code page at a
 * time: as the owner's link does, a password sign-in binds its session to the
 * page it leads to (a code typed on /device leads to the sign-in for that
 * code). Each call signs in for `url` (in a browser of its own unless one is
 * given) and says where the sign-in led.
 */
async function account(name: string) {
  await addUser(authz.store, { name, password: `${name} has a long password`, timeZone: 'UTC' }, clock);
  return async (url: string, browser = new Browser()): Promise<{ browser: Browser; page: string }> => {
    const next = url.slice(authz.issuer.length);
    const form = await browser.get(`${authz.issuer}/login?next=${encodeURIComponent(next)}`);
    const res = await browser.post(`${authz.issuer}/login`, { csrf: hiddenField(form.html, 'csrf'), next, username: name, password: `${name} has a long password` });
    expect(res.status).toBe(303);
    return { browser, page: new URL(res.location!, authz.issuer).href };
  };
}

/** From here on, the server's user-code draws (8 random bytes) come out as `CDFG-HJKL` while `force()` allows it; other draws stay random. */
function forceUserCodeDraws(): { force(times: number): void; forced(): number } {
  const real = crypto.getRandomValues.bind(crypto);
  let allowed = 0;
  let forced = 0;
  vi.spyOn(crypto, 'getRandomValues').mockImplementation(<T extends ArrayBufferView | null>(array: T): T => {
    if (array instanceof Uint8Array && array.length === 8 && forced < allowed) {
      forced++;
      array.set([1, 2, 3, 4, 5, 6, 7, 8]);
      return array;
    }
    return real(array as never) as T;
  });
  return { force: (times) => void (allowed = forced + times), forced: () => forced };
}

describe('device authorization grant', () => {
  it('draws the user code again when a live request holds it, and takes it over from an expired one (it was a 500)', async () => {
    const draws = forceUserCodeDraws();
    try {
      const clientId = await registerDeviceClient();
      draws.force(1);
      const first = await startDevice(clientId);
      expect(first.user_code).toBe('CDFG-HJKL');
      draws.force(1);
      const second = await startDevice(clientId);
      expect(draws.forced()).toBe(2);
      expect(second.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
      expect(second.user_code).not.toBe('CDFG-HJKL');

      clock += 601_000; // the first request has expired
      draws.force(1);
      const third = await startDevice(clientId);
      expect(draws.forced()).toBe(3);
      expect(third.user_code).toBe('CDFG-HJKL');
      expect((await poll(clientId, first.device_code)).body.error).not.toBe('authorization_pending');
      expect((await poll(clientId, third.device_code)).body.error).toBe('authorization_pending');
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('is advertised in the metadata, and registrable', async () => {
    const meta = (await (await fetch(`${authz.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(meta.device_authorization_endpoint).toBe(`${authz.issuer}/device_authorization`);
    expect(meta.grant_types_supported).toContain(DEVICE_GRANT);
    await registerDeviceClient();
  });

  it('answers pending, then slow_down when polled too fast, then the tokens once the user approved, and only once', async () => {
    const clientId = await registerDeviceClient();
    const device = await startDevice(clientId);
    expect(device.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
    expect(device.verification_uri).toBe(`${authz.issuer}/device`);
    expect(device.verification_uri_complete).toBe(`${authz.issuer}/device?user_code=${device.user_code}`);
    expect(device.interval).toBe(5);
    expect(device.expires_in).toBe(600);

    const first = await poll(clientId, device.device_code);
    expect([first.status, first.body.error]).toEqual([400, 'authorization_pending']);
    const tooFast = await poll(clientId, device.device_code);
    expect(tooFast.body.error).toBe('slow_down');

    const { page, confirmPage } = await decide(device.verification_uri_complete, 'approve');
    expect(confirmPage).toContain(device.user_code);
    expect(page).toContain('return to it');

    clock += 11_000; // the interval, now 10 s after the slow_down
    const tokens = await poll(clientId, device.device_code);
    expect(tokens.status).toBe(200);
    expect(tokens.body.token_type).toBe('Bearer');
    expect(tokens.body.access_token).toEqual(expect.any(String));
    expect(tokens.body.refresh_token).toEqual(expect.any(String));
    const claims = JSON.parse(Buffer.from(String(tokens.body.access_token).split('.')[1]!, 'base64url').toString());
    expect(claims.aud).toBe(authz.agentUrl);
    expect(claims.client_id).toBe(clientId);

    clock += 11_000;
    const again = await poll(clientId, device.device_code);
    expect(again.body.error).toBe('invalid_grant');
  });

  it('gives the refresh token the device request’s scope, not that of a wider grant behind it (RFC 6749 §6)', async () => {
    const clientId = await registerDeviceClient();
    const approved = async (scope: string) => {
      const res = await postForm(`${authz.issuer}/device_authorization`, { client_id: clientId, resource: authz.agentUrl, scope });
      const device = res.body as { device_code: string; verification_uri_complete: string };
      await decide(device.verification_uri_complete, 'approve');
      const tokens = await poll(clientId, device.device_code);
      expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
      return tokens.body;
    };
    expect((await approved('slots:find busy:read')).scope).toBe('slots:find busy:read');
    const narrow = await approved('slots:find');
    expect(narrow.scope).toBe('slots:find');
    const refreshed = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(narrow.refresh_token), client_id: clientId });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.scope).toBe('slots:find');
  });

  // The poll redeems the device request's code through the code grant's path, so it is bound the same way: found in
  // review (s18), a code minted the scope recorded at approval whatever the grant had become. No command or page
  // narrows a grant's scope today, so the grant row is narrowed through the Store API between approval and the poll.
  it('mints under the grant’s current scope when the grant was narrowed between approval and the poll, and refuses when it holds none of the request’s', async () => {
    const approvedDevice = async (scope: string) => {
      const clientId = await registerDeviceClient();
      const res = await postForm(`${authz.issuer}/device_authorization`, { client_id: clientId, resource: authz.agentUrl, scope });
      const device = res.body as { device_code: string; verification_uri_complete: string };
      await decide(device.verification_uri_complete, 'approve');
      const grant = (await authz.store.activeGrant(authz.ownerId, clientId, authz.agentUrl, clock))!;
      expect(grant.scope).toBe(scope);
      return { clientId, device, grant };
    };
    const wide = await approvedDevice('slots:find busy:read');
    await authz.store.updateGrant({ ...wide.grant, scope: 'slots:find' }, clock);
    const tokens = await poll(wide.clientId, wide.device.device_code);
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body.scope).toBe('slots:find');
    expect(decodeJwt(String(tokens.body.access_token)).scope).toBe('slots:find');
    const refreshed = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(tokens.body.refresh_token), client_id: wide.clientId });
    expect(refreshed.body.scope).toBe('slots:find');

    const narrow = await approvedDevice('slots:find');
    await authz.store.updateGrant({ ...narrow.grant, scope: 'busy:read' }, clock);
    const none = await poll(narrow.clientId, narrow.device.device_code);
    expect([none.status, none.body.error]).toEqual([400, 'invalid_grant']);
    expect(none.body.access_token).toBeUndefined();
    expect((await authz.store.listAudit()).filter((r) => r.event === 'token_issued' && r.client === narrow.clientId)).toEqual([]);
  });

  it('gives a client registered without the refresh_token grant no refresh token, and stores none', async () => {
    const reg = await postJson(`${authz.issuer}/register`, { client_name: 'device only', token_endpoint_auth_method: 'none', grant_types: [DEVICE_GRANT], response_types: [], redirect_uris: ['http://127.0.0.1/callback'] });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const clientId = String(reg.body.client_id);
    const device = await startDevice(clientId);
    await decide(device.verification_uri_complete, 'approve');
    const { result: tokens, changed } = await stateChangedBy({ paths: { db: join(authz.home, 'delegate.db') } }, () => poll(clientId, device.device_code));
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body.access_token).toEqual(expect.any(String));
    expect(tokens.body).not.toHaveProperty('refresh_token');
    expect(tokens.body).not.toHaveProperty('refresh_token_expires_in');
    expect(changed).toContain('issued_tokens');
    expect(changed).not.toContain('refresh_tokens');
  });

  it('works end to end for a client registered for the device grant alone, with no redirect URIs or response types (RFC 7591 §2)', async () => {
    const reg = await postJson(`${authz.issuer}/register`, { client_name: 'tv', token_endpoint_auth_method: 'none', grant_types: [DEVICE_GRANT] });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const clientId = String(reg.body.client_id);
    const device = await startDevice(clientId);
    await decide(device.verification_uri_complete, 'approve');
    const tokens = await poll(clientId, device.device_code);
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body).toMatchObject({ token_type: 'Bearer', scope: 'slots:find' });
    expect(decodeJwt(String(tokens.body.access_token))).toMatchObject({ aud: authz.agentUrl, client_id: clientId, sub: authz.ownerId });
    // CalendarAgent takes the token on to the calendar backend, as for any client.
    const calendar = await exchange(authz, String(tokens.body.access_token));
    expect(calendar.status, JSON.stringify(calendar.body)).toBe(200);
    expect(decodeJwt(String(calendar.body.access_token)).act).toEqual({ sub: 'calendar-agent', act: { sub: clientId } });
  });

  // Found in review (audit-trail): the device flow's approvals and issuances read like local ones (grant_type
  // authorization_code, nothing in the consent record), though it is the flow singled out for remote phishing.
  it('puts the device flow on the audit log as such: the consent says via device, the issuance names the device grant', async () => {
    const clientId = await registerDeviceClient();
    const device = await startDevice(clientId);
    const before = (await authz.store.listAudit()).length;
    await decide(device.verification_uri_complete, 'approve');
    expect((await poll(clientId, device.device_code)).status).toBe(200);
    const records = (await authz.store.listAudit()).slice(before);
    expect(records.find((r) => r.event === 'consent')?.detail).toMatchObject({ decision: 'approved', via: 'device' });
    expect(records.find((r) => r.event === 'token_issued')?.detail).toMatchObject({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code' });
    for (const decision of ['deny', 'cancel'] as const) {
      const denied = await startDevice(clientId);
      const from = (await authz.store.listAudit()).length;
      await decide(denied.verification_uri_complete, decision);
      expect((await authz.store.listAudit()).slice(from).find((r) => r.event === 'consent')?.detail, decision).toMatchObject({ decision: 'denied', via: 'device' });
    }
  });

  it('says access_denied when the user denies on the consent page or cancels at the code', async () => {
    const clientId = await registerDeviceClient();
    for (const decision of ['deny', 'cancel'] as const) {
      const device = await startDevice(clientId);
      await decide(device.verification_uri_complete, decision);
      clock += 6_000;
      expect((await poll(clientId, device.device_code)).body.error).toBe('access_denied');
    }
  });

  it('records Cancel at the code as a consent denied, as Deny on the consent page is (found in review: Cancel wrote no record)', async () => {
    const clientId = await registerDeviceClient();
    const records = [];
    for (const decision of ['deny', 'cancel'] as const) {
      const device = await startDevice(clientId);
      const before = (await authz.store.listAudit()).length;
      await decide(device.verification_uri_complete, decision);
      records.push((await authz.store.listAudit()).slice(before).filter((r) => r.event === 'consent'));
    }
    const [denied, cancelled] = records;
    expect(denied).toEqual([expect.objectContaining({ client: clientId, detail: expect.objectContaining({ decision: 'denied' }) })]);
    expect(cancelled).toEqual([expect.objectContaining({ event: 'consent', user: denied![0]!.user, client: clientId, resource: denied![0]!.resource, detail: denied![0]!.detail })]);
  });

  it('says expired_token after expires_in, and invalid_grant for a code it never issued or issued to another client', async () => {
    const clientId = await registerDeviceClient();
    const device = await startDevice(clientId);
    expect((await poll(await registerDeviceClient(), device.device_code)).body.error).toBe('invalid_grant');
    expect((await poll(clientId, 'made-up')).body.error).toBe('invalid_grant');
    clock += 601_000;
    expect((await poll(clientId, device.device_code)).body.error).toBe('expired_token');
  });

  it('refuses a client that did not register for the grant, an unknown resource, and one with no agent behind it', async () => {
    const plain = await registerDeviceClient(['authorization_code', 'refresh_token']);
    const refused = await postForm(`${authz.issuer}/device_authorization`, { client_id: plain, resource: authz.agentUrl });
    expect([refused.status, refused.body.error]).toEqual([400, 'unauthorized_client']);
    const unknown = await postForm(`${authz.issuer}/device_authorization`, { client_id: await registerDeviceClient(), resource: 'http://127.0.0.1:1/mcp' });
    expect(unknown.body.error).toBe('invalid_target');
    // The calendar backend is reached only through an agent, by token exchange.
    const backend = await postForm(`${authz.issuer}/device_authorization`, { client_id: await registerDeviceClient(), resource: authz.calendarUrl, scope: 'freebusy:read' });
    expect([backend.status, backend.body.error]).toEqual([400, 'invalid_target']);
  });

  // RFC 8707 §2: several resource parameters are allowed on the wire; a target the server will not issue for is invalid_target.
  it('answers several resource parameters with invalid_target: one token is for one resource', async () => {
    const several = await postForm(`${authz.issuer}/device_authorization`, { client_id: await registerDeviceClient(), resource: [authz.agentUrl, authz.calendarUrl] });
    expect([several.status, several.body.error]).toEqual([400, 'invalid_target']);
    expect(String(several.body.error_description)).toMatch(/one resource/);
  });

  it('shows the sign-in page to a browser that is not signed in, and refuses an unknown code', async () => {
    const clientId = await registerDeviceClient();
    const device = await startDevice(clientId);
    const anonymous = await new Browser().get(device.verification_uri_complete);
    expect(anonymous.status).toBe(403);
    expect(anonymous.html).toContain('Sign in to continue');
    // Typing the code needs no session: the sign-in that follows is for the code typed.
    const entry = await new Browser().get(`${authz.issuer}/device`);
    expect(entry.status).toBe(200);
    expect(entry.html).toContain('name="user_code"');
    const signIn = await account('ines');
    const { browser, page } = await signIn(`${authz.issuer}/device?user_code=bbbb-bbbb`);
    expect(page).toMatch(new RegExp(`^${authz.issuer}/device\\?user_code=BBBB-BBBB&signin=[A-Za-z0-9_-]{43}$`));
    const wrong = await browser.get(page);
    expect(wrong.status).toBe(400);
    expect(wrong.html).toContain('not valid');
    // That session was for that code only.
    const other = await browser.get(device.verification_uri_complete);
    expect(other.status).toBe(403);
    expect(other.html).toContain('Sign in to continue');
    expect(other.html).not.toContain('name="decision"');
    // Signed in for the device's own code: its confirmation, whose form carries the sign-in value, leads to the consent page.
    const forDevice = await signIn(`${authz.issuer}/device?user_code=${device.user_code.toLowerCase()}`);
    const confirm = await forDevice.browser.get(forDevice.page);
    expect(confirm.status).toBe(200);
    const form = { user_code: device.user_code, csrf: hiddenField(confirm.html, 'csrf'), decision: 'continue' };
    const withoutSignIn = await forDevice.browser.post(`${authz.issuer}/device`, form);
    expect(withoutSignIn.status).toBe(403);
    expect(withoutSignIn.html).not.toContain('name="decision"');
    const consent = await forDevice.browser.post(`${authz.issuer}/device`, { ...form, signin: hiddenField(confirm.html, 'signin') });
    expect(consent.status).toBe(200);
    expect(consent.html).toContain('name="decision"');
  });

  it('refuses a Cancel or Continue without the page\'s CSRF token, and the device stays pending', async () => {
    const clientId = await registerDeviceClient();
    const device = await startDevice(clientId);
    const browser = new Browser();
    const next = device.verification_uri_complete.slice(authz.issuer.length);
    const confirm = await browser.follow(await ownerLink(authz, next));
    expect(confirm.status).toBe(200);
    for (const csrf of [undefined, 'forged', hiddenField(confirm.html, 'csrf').slice(1)]) {
      for (const decision of ['cancel', 'continue']) {
        const forged = await browser.post(`${authz.issuer}/device`, { user_code: device.user_code, signin: hiddenField(confirm.html, 'signin'), decision, ...(csrf === undefined ? {} : { csrf }) });
        expect(forged.status).toBe(403);
      }
    }
    clock += 6_000;
    expect((await poll(clientId, device.device_code)).body.error).toBe('authorization_pending');
    // The real form still works afterwards.
    await decide(device.verification_uri_complete, 'cancel');
    clock += 6_000;
    expect((await poll(clientId, device.device_code)).body.error).toBe('access_denied');
  });

  describe('one decision per device (RFC 8628 §3.3): a second consent page open for it decides nothing (found in review: Deny on one, Approve on the other made a 90-day grant)', () => {
    /** Signed in by the owner's link for the device's code, with `pages` consent pages open for it (Continue pressed that often). */
    async function openConsentPages(pages: number) {
      const clientId = await registerDeviceClient();
      const device = await startDevice(clientId);
      const browser = new Browser();
      const confirm = await browser.follow(await ownerLink(authz, device.verification_uri_complete.slice(authz.issuer.length)));
      expect(confirm.status).toBe(200);
      const csrf = hiddenField(confirm.html, 'csrf');
      const signin = hiddenField(confirm.html, 'signin');
      const forms = [];
      for (let i = 0; i < pages; i++) {
        const page = await browser.post(`${authz.issuer}/device`, { user_code: device.user_code, csrf, signin, decision: 'continue' });
        expect(page.status).toBe(200);
        forms.push(parseConsentForm(page.html));
      }
      return { clientId, device, browser, csrf, signin, forms };
    }
    const database = () => ({ paths: { db: join(authz.home, 'delegate.db') } });
    const approvals = async (clientId: string) => (await authz.store.listAudit()).filter((r) => r.event === 'consent' && r.client === clientId && r.detail.decision === 'approved');

    it('Deny on one page, then Approve on another: an error page, no grant, no approved record, nothing changed; the device gets access_denied', async () => {
      const { clientId, device, browser, forms } = await openConsentPages(2);
      const denied = await browser.post(`${authz.issuer}/consent`, { ...forms[0]!, decision: 'deny' });
      expect(denied.status).toBe(303);
      expect((await browser.get(new URL(denied.location!, authz.issuer).href)).html).toContain('Nothing was shared');

      const { result: approved, changed } = await stateChangedBy(database(), () => browser.post(`${authz.issuer}/consent`, { ...forms[1]!, expires_days: '90', lookahead_days: '365', decision: 'approve' }));
      expect(approved.status).toBe(400);
      expect(approved.location).toBeNull();
      expect(approved.html).toContain('This request has expired');
      expectStrictPage('second decision on a denied device', approved);
      expect(changed).toEqual([]);
      expect((await authz.store.listGrants(authz.ownerId)).filter((g) => g.clientId === clientId)).toEqual([]);
      expect(await approvals(clientId)).toEqual([]);
      clock += 6_000;
      expect((await poll(clientId, device.device_code)).body.error).toBe('access_denied');
    });

    it('Approve on a page after the device was denied but before /device/done was reached: refused the same way', async () => {
      const { clientId, device, browser, forms } = await openConsentPages(2);
      const denied = await browser.post(`${authz.issuer}/consent`, { ...forms[0]!, decision: 'deny' });
      expect(denied.status).toBe(303);
      // The browser has not followed the redirect yet: the first decision still counts.
      const { result: approved, changed } = await stateChangedBy(database(), () => browser.post(`${authz.issuer}/consent`, { ...forms[1]!, decision: 'approve' }));
      expect([approved.status, approved.location]).toEqual([400, null]);
      expect(changed).toEqual([]);
      expect((await browser.get(new URL(denied.location!, authz.issuer).href)).html).toContain('Nothing was shared');
      expect((await authz.store.listGrants(authz.ownerId)).filter((g) => g.clientId === clientId)).toEqual([]);
      expect(await approvals(clientId)).toEqual([]);
      clock += 6_000;
      expect((await poll(clientId, device.device_code)).body.error).toBe('access_denied');
    });

    it('Cancel at the code, then Approve on a consent page opened before: refused, no grant, nothing changed', async () => {
      const { clientId, device, browser, csrf, signin, forms } = await openConsentPages(1);
      const cancelled = await browser.post(`${authz.issuer}/device`, { user_code: device.user_code, csrf, signin, decision: 'cancel' });
      expect(cancelled.html).toContain('Nothing was shared');
      const { result: approved, changed } = await stateChangedBy(database(), () => browser.post(`${authz.issuer}/consent`, { ...forms[0]!, decision: 'approve' }));
      expect([approved.status, approved.location]).toEqual([400, null]);
      expect(changed).toEqual([]);
      expect((await authz.store.listGrants(authz.ownerId)).filter((g) => g.clientId === clientId)).toEqual([]);
      expect(await approvals(clientId)).toEqual([]);
      clock += 6_000;
      expect((await poll(clientId, device.device_code)).body.error).toBe('access_denied');
    });

    it('Approve on one page, then Deny on another or Cancel at the code: refused, nothing changed, no denied record; the device gets its tokens', async () => {
      const { clientId, device, browser, csrf, signin, forms } = await openConsentPages(2);
      const approved = await browser.post(`${authz.issuer}/consent`, { ...forms[0]!, decision: 'approve' });
      expect(approved.status).toBe(303);
      // Before the browser reaches /device/done, and after.
      for (const when of ['before', 'after']) {
        if (when === 'after') expect((await browser.get(new URL(approved.location!, authz.issuer).href)).html).toContain('Your device is connected');
        const { result: denied, changed } = await stateChangedBy(database(), () => browser.post(`${authz.issuer}/consent`, { ...forms[1]!, decision: 'deny' }));
        expect([denied.status, denied.location], when).toEqual([400, null]);
        expect(changed, when).toEqual([]);
        const { result: cancelled, changed: byCancel } = await stateChangedBy(database(), () => browser.post(`${authz.issuer}/device`, { user_code: device.user_code, csrf, signin, decision: 'cancel' }));
        // The Approve spent the session (one request, one decision): the code page asks to sign in again.
        expect(cancelled.status, when).toBe(403);
        expect(byCancel, when).toEqual([]);
      }
      expect(await approvals(clientId)).toHaveLength(1);
      expect((await authz.store.listAudit()).filter((r) => r.event === 'consent' && r.client === clientId && r.detail.decision === 'denied')).toEqual([]);
      clock += 6_000;
      const tokens = await poll(clientId, device.device_code);
      expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    });

    it('a device approved but not yet at /device/done polls authorization_pending', async () => {
      const { clientId, device, browser, forms } = await openConsentPages(1);
      const approved = await browser.post(`${authz.issuer}/consent`, { ...forms[0]!, decision: 'approve' });
      expect(approved.status).toBe(303);
      clock += 6_000;
      expect((await poll(clientId, device.device_code)).body.error).toBe('authorization_pending');
      expect((await browser.get(new URL(approved.location!, authz.issuer).href)).status).toBe(200);
      clock += 6_000;
      expect((await poll(clientId, device.device_code)).status).toBe(200);
    });
  });

  // Found at stop 27 ("noticed, not touched"): `delegate users remove` as the account's Approve was taken left the
  // device claimed with no code to come, polling authorization_pending until its code expired; removed before the
  // browser reached /device/done, the page said "Your device is connected"; removed after, the poll said only that
  // "the delegation behind this code has ended". Each poll now ends at once with invalid_grant (RFC 8628 §3.5 takes
  // RFC 6749 §5.2's codes: the device's authorization is revoked with the account) saying why, which the CLI shows.
  describe('an account removed (delegate users remove) between its approval of a device and the device’s next poll', () => {
    const database = () => ({ paths: { db: join(authz.home, 'delegate.db') } });
    const REMOVED = { error: 'invalid_grant', error_description: 'The account that approved this sign-in was removed.' };

    /** `name`, a named account, signed in for a new device's code, with the consent page for it open. */
    async function consentPageOf(name: string) {
      const signIn = await account(name);
      const user = (await authz.store.userByName(name))!;
      const clientId = await registerDeviceClient();
      const device = await startDevice(clientId);
      const { browser, page } = await signIn(device.verification_uri_complete);
      const confirm = await browser.get(page);
      expect(confirm.status).toBe(200);
      const consent = await browser.post(`${authz.issuer}/device`, { user_code: device.user_code, csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
      expect(consent.status).toBe(200);
      const remove = () => removeAccount(authz.store, user, clock, { by: 'cli' });
      return { clientId, device, browser, form: parseConsentForm(consent.html), user, remove };
    }

    /** The device's next polls: each ends it at once, saying why, and changes nothing but the poll's own time; no token issued. */
    async function expectEndedAtOnce(clientId: string, deviceCode: string, userId: string): Promise<void> {
      for (let i = 0; i < 2; i++) {
        clock += 6_000;
        const { result, changed } = await stateChangedBy(database(), () => poll(clientId, deviceCode));
        expect([result.status, result.body]).toEqual([400, REMOVED]);
        expect(result.headers.get('cache-control')).toBe('no-store');
        expect(changed).toEqual(['device_authorizations']);
      }
      expect(await authz.store.listAudit({ user: userId, events: ['token_issued'] })).toEqual([]);
    }

    it('after the browser reached /device/done: the poll says the account was removed, and the code cannot be typed again', async () => {
      const { clientId, device, browser, form, user, remove } = await consentPageOf('rosa');
      const approved = await browser.post(`${authz.issuer}/consent`, { ...form, decision: 'approve' });
      expect(approved.status).toBe(303);
      expect((await browser.get(new URL(approved.location!, authz.issuer).href)).html).toContain('Your device is connected');
      const removal = await remove();
      expect(removal.grantsRevoked).toHaveLength(1);
      await expectEndedAtOnce(clientId, device.device_code, user.id);
      // Its user code is withdrawn: nobody can type it to decide that device again.
      const signIn = await account('sam');
      const { browser: other, page } = await signIn(device.verification_uri_complete);
      expect((await other.get(page)).html).toContain('not valid');
    });

    it('after Approve, before the browser reached /device/done: the page says the account was removed, not "connected"; the poll says so too', async () => {
      const { clientId, device, browser, form, user, remove } = await consentPageOf('tess');
      const approved = await browser.post(`${authz.issuer}/consent`, { ...form, decision: 'approve' });
      expect(approved.status).toBe(303);
      await remove();
      const done = await browser.get(new URL(approved.location!, authz.issuer).href);
      expect(done.status).toBe(400);
      expect(done.html).toContain('<title>This account was removed</title>');
      expect(done.html).not.toContain('connected');
      await expectEndedAtOnce(clientId, device.device_code, user.id);
    });

    it('as Approve was taken, before its grant was written (the page said the account was removed): the poll says so, not authorization_pending until the code expires', async () => {
      const { clientId, device, browser, form, user, remove } = await consentPageOf('uma');
      const store = authz.store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
      const take = store.takeDeviceAuthRequest!;
      store.takeDeviceAuthRequest = async (...args: unknown[]) => {
        store.takeDeviceAuthRequest = take;
        const taken = await take.apply(authz.store, args);
        await remove();
        return taken;
      };
      try {
        const approved = await browser.post(`${authz.issuer}/consent`, { ...form, decision: 'approve' });
        expect(approved.status).toBe(400);
        expect(approved.html).toContain('<title>This account was removed</title>');
      } finally {
        store.takeDeviceAuthRequest = take;
      }
      expect(await authz.store.listGrants(user.id)).toEqual([]);
      await expectEndedAtOnce(clientId, device.device_code, user.id);
    });

    it('with the consent page open, not yet approved (the control): its Approve is refused, and the device, which no one decided, stays pending for another account', async () => {
      const { clientId, device, browser, form, user, remove } = await consentPageOf('vic');
      await remove();
      const { result: approved, changed } = await stateChangedBy(database(), () => browser.post(`${authz.issuer}/consent`, { ...form, decision: 'approve' }));
      expect([approved.status, approved.location]).toEqual([400, null]);
      expect(changed).toEqual([]);
      expect(await authz.store.listGrants(user.id)).toEqual([]);
      clock += 6_000;
      expect((await poll(clientId, device.device_code)).body.error).toBe('authorization_pending');
    });
  });

  describe('wrong codes counted only for the person’s own visits (RFC 8628 §5.1; found in review: five <img> on another loopback port locked the user out for 15 minutes)', () => {
    const SUBRESOURCE = { 'sec-fetch-site': 'same-site', 'sec-fetch-dest': 'image', 'sec-fetch-mode': 'no-cors' };
    const CROSS_SITE_LINK = { 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate' };
    const TYPED = { 'sec-fetch-site': 'none', 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate', 'sec-fetch-user': '?1' };
    const FROM_THE_FORM = { 'sec-fetch-site': 'same-origin', 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate', 'sec-fetch-user': '?1' };

    it.each([
      ['images on another port of this host (same-site)', SUBRESOURCE],
      ['images on another site', { ...SUBRESOURCE, 'sec-fetch-site': 'cross-site' }],
      ['frames on another site', { 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'iframe', 'sec-fetch-mode': 'navigate' }],
      ['links followed from another site', CROSS_SITE_LINK],
      ['links followed from another port of this host', { ...CROSS_SITE_LINK, 'sec-fetch-site': 'same-site' }],
    ])('ten wrong codes from %s: the code form, nothing looked up, counted or written; the right code then works', async (_name, headers) => {
      const clientId = await registerDeviceClient();
      const device = await startDevice(clientId);
      // Signed in for the device's own code (a password session is good for that code's page only).
      const { browser, page } = await (await account('kim'))(device.verification_uri_complete);
      const database = { paths: { db: join(authz.home, 'delegate.db') } };
      for (let i = 0; i < 10; i++) {
        const { result, changed } = await stateChangedBy(database, () => browser.get(`${authz.issuer}/device?user_code=BBBB-BBB${'CDFGHJKLMN'[i]}`, headers));
        expect(result.status).toBe(200);
        expect(result.html).toContain('name="user_code"');
        expect(result.html).not.toContain('not valid');
        expect(result.html).not.toContain('Too many wrong codes');
        expectStrictPage('device code form', result);
        expect(changed).toEqual([]);
      }
      // Such a page's own right code is not looked up either: the form, filled in, for the person to check and send.
      const linked = await browser.get(device.verification_uri_complete, headers);
      expect(linked.status).toBe(200);
      expect(linked.html).not.toContain('Is this the code on your device?');
      expect(linked.html).toContain(`value="${device.user_code}"`);
      expect(linked.html).toContain('Continue only if it is exactly the code your device shows');
      // The person's own visit: typed (or the CLI's link) and from the form, then the confirmation.
      for (const own of [TYPED, FROM_THE_FORM]) {
        const confirm = await browser.get(page, own);
        expect(confirm.status).toBe(200);
        expect(confirm.html).toContain('Is this the code on your device?');
      }
    });

    it('wrong codes the person types still count (the control): the sixth visit is 429', async () => {
      const clientId = await registerDeviceClient();
      const device = await startDevice(clientId);
      const signIn = await account('lou');
      // One sign-in per code (a session is good for one code's page); the limit counts per person.
      for (let i = 0; i < 5; i++) {
        const { browser, page } = await signIn(`${authz.issuer}/device?user_code=BBBB-BBB${'CDFGH'[i]}`);
        expect((await browser.get(page, FROM_THE_FORM)).status).toBe(400);
      }
      const { browser, page } = await signIn(device.verification_uri_complete);
      expect((await browser.get(page, TYPED)).status).toBe(429);
    });

    it('fills in only a well-formed code, escaped', async () => {
      // No session needed: such a request never gets as far as the sign-in.
      const browser = new Browser();
      const odd = await browser.get(`${authz.issuer}/device?user_code=${encodeURIComponent('"><b>x')}`, CROSS_SITE_LINK);
      expect(odd.status).toBe(200);
      expect(odd.html).not.toContain('<b>x');
      expect(odd.html).not.toContain('The link you followed filled in a code');
      const loose = await browser.get(`${authz.issuer}/device?user_code=bcdf%20ghjk`, CROSS_SITE_LINK);
      expect(loose.html).toContain('value="BCDF-GHJK"');
    });
  });

  it('makes someone who types wrong codes wait after five (RFC 8628 §5.1), even for a right code, until the window passes', async () => {
    const clientId = await registerDeviceClient();
    const device = await startDevice(clientId);
    // Each code is a sign-in of its own (a session is good for one code); the wrong codes count for the person.
    const signIn = await account('jude');
    const guess = await signIn(`${authz.issuer}/device?user_code=x`);
    expect((await guess.browser.get(guess.page)).status).toBe(400);
    // That was the first wrong code. The right one (not counted) shows the confirmation form:
    const { browser, page } = await signIn(device.verification_uri_complete);
    const confirm = await browser.get(page);
    expect(confirm.status).toBe(200);
    const csrf = hiddenField(confirm.html, 'csrf');
    const signin = hiddenField(confirm.html, 'signin');
    const database = { paths: { db: join(authz.home, 'delegate.db') } };
    // Four more wrong codes, none of which writes anything (past its sign-in):
    for (let i = 0; i < 4; i++) {
      const wrong = await signIn(`${authz.issuer}/device?user_code=BBBB-BBB${'CDFG'[i]}`);
      const { result, changed } = await stateChangedBy(database, () => wrong.browser.get(wrong.page));
      expect(result.status).toBe(400);
      expect(changed).toEqual([]);
    }
    const { result: blocked, changed } = await stateChangedBy(database, () => browser.get(page));
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(blocked.html).toContain('Too many wrong codes');
    expect(blocked.html).not.toContain(device.user_code);
    expectStrictPage('device 429', blocked);
    // Nothing written: no grant, token, code, session or audit record.
    expect(changed).toEqual([]);
    // The confirmation form, sent while blocked with the right code and its CSRF token: Cancel would deny the device.
    for (const decision of ['cancel', 'continue']) {
      const { result: refused, changed: byPost } = await stateChangedBy(database, () => browser.post(`${authz.issuer}/device`, { user_code: device.user_code, csrf, signin, decision }));
      expect(refused.status, decision).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(refused.html).not.toContain(device.user_code);
      expectStrictPage(`device POST 429 (${decision})`, refused);
      expect(byPost, decision).toEqual([]);
    }
    // And the device is still waiting for a decision.
    clock += 6_000;
    expect((await poll(clientId, device.device_code)).body.error).toBe('authorization_pending');
    clock += 15 * 60_000 + 1_000;
    const later = await startDevice(clientId); // the first one expired meanwhile (600 s), and so did that session
    const again = await signIn(later.verification_uri_complete);
    const allowed = await again.browser.get(again.page);
    expect(allowed.status).toBe(200);
    expect(allowed.html).toContain(later.user_code);
  });
});

describe('device requests and polls that must change nothing (review dcr-device, findings 2, 3 and 6)', () => {
  const database = () => ({ paths: { db: join(authz.home, 'delegate.db') } });
  const deviceRows = () => queryRows(database(), 'SELECT * FROM device_authorizations');
  const request = (clientId: string, headers: Record<string, string> = {}) => postForm(`${authz.issuer}/device_authorization`, { client_id: clientId, resource: authz.agentUrl }, headers);

  describe('a poll with another client’s device_code (RFC 8628 §3.5; found in review: it slowed the device down, and spent the code the user had approved)', () => {
    it('pending: invalid_grant, nothing changed, and the rightful device’s first poll is authorization_pending, not slow_down', async () => {
      const mine = await registerDeviceClient();
      const other = await registerDeviceClient();
      const device = await startDevice(mine);
      for (let i = 0; i < 4; i++) {
        const { result, changed } = await stateChangedBy(database(), () => poll(other, device.device_code));
        expect([result.status, result.body.error]).toEqual([400, 'invalid_grant']);
        expect(changed).toEqual([]);
      }
      const first = await poll(mine, device.device_code);
      expect([first.status, first.body.error]).toEqual([400, 'authorization_pending']);
    });

    it('approved: invalid_grant, nothing changed (the code not spent), and the rightful device then gets its tokens', async () => {
      const mine = await registerDeviceClient();
      const other = await registerDeviceClient();
      const device = await startDevice(mine);
      await decide(device.verification_uri_complete, 'approve');
      const { result, changed } = await stateChangedBy(database(), () => poll(other, device.device_code));
      expect([result.status, result.body.error]).toEqual([400, 'invalid_grant']);
      expect(result.body.access_token).toBeUndefined();
      expect(changed).toEqual([]);
      clock += 6_000;
      const tokens = await poll(mine, device.device_code);
      expect(tokens.status).toBe(200);
      expect(tokens.body.access_token).toEqual(expect.any(String));
    });
  });

  // RFC 8707 §2.2: the code and refresh grants answer a resource other than the request's with invalid_target.
  describe('a poll naming another resource than the device request’s (found in review s35fuzz: 200 with a token for the agent)', () => {
    it.each([
      ['the calendar backend', () => authz.calendarUrl],
      ['urn:x', () => 'urn:x'],
      ['another site', () => 'https://evil.example/'],
    ])('%s: invalid_target, no token, only the poll’s time recorded (the code not spent); the device then gets its tokens for the agent', async (_name, resource) => {
      const clientId = await registerDeviceClient();
      const device = await startDevice(clientId);
      await decide(device.verification_uri_complete, 'approve');
      const { result, changed } = await stateChangedBy(database(), () => postForm(`${authz.issuer}/token`, { grant_type: DEVICE_GRANT, device_code: device.device_code, client_id: clientId, resource: resource() }));
      expect([result.status, result.body.error]).toEqual([400, 'invalid_target']);
      expect(result.body.access_token).toBeUndefined();
      // Every poll is remembered, whatever its answer (RFC 8628 §3.5, slow_down): nothing else.
      expect(changed).toEqual(['device_authorizations']);
      clock += 6_000;
      const tokens = await postForm(`${authz.issuer}/token`, { grant_type: DEVICE_GRANT, device_code: device.device_code, client_id: clientId, resource: authz.agentUrl });
      expect(tokens.status).toBe(200);
      expect(decodeJwt(String(tokens.body.access_token)).aud).toBe(authz.agentUrl);
    });
  });

  describe('expired device authorizations (found in review: never deleted, their state and PKCE verifier kept in the clear)', () => {
    it('are blanked by the first sweep after they expire, still answered expired_token for a day, then deleted', async () => {
      const clientId = await registerDeviceClient();
      const devices = [await startDevice(clientId), await startDevice(clientId), await startDevice(clientId)];
      const secrets = deviceRows().flatMap((r) => [String(r.user_code), String(r.state), String(r.code_verifier)]);
      expect(secrets).toHaveLength(9);
      await authz.store.sweep(clock); // still live: untouched
      expect(deviceRows().map((r) => r.code_verifier).sort()).toEqual(secrets.filter((_, i) => i % 3 === 2).sort());

      clock += 601_000;
      await authz.store.sweep(clock);
      const blanked = deviceRows();
      expect(blanked).toHaveLength(3);
      const stored = JSON.stringify(blanked);
      for (const secret of secrets) expect(stored).not.toContain(secret);
      for (const device of devices) expect(stored).not.toContain(device.user_code);
      // A late poll within the grace still learns that its code expired.
      expect((await poll(clientId, devices[0]!.device_code)).body.error).toBe('expired_token');
      // Its user code is free and finds nothing.
      const signIn = await account('ida');
      const typed = await signIn(devices[1]!.verification_uri_complete);
      expect((await typed.browser.get(typed.page)).status).toBe(400);

      // A day later the rows are gone: the code is unknown (invalid_grant, asked by a client that is still there).
      // So is the client, which registered more than a day before and never got a grant (the registration sweep,
      // test/security/registration-limits.test.ts): its own poll is invalid_client.
      clock += 86_400_000;
      const liveClient = await registerDeviceClient();
      await authz.store.sweep(clock);
      expect(deviceRows()).toEqual([]);
      expect((await poll(liveClient, devices[2]!.device_code)).body.error).toBe('invalid_grant');
      expect(await authz.store.clientById(clientId)).toBeUndefined();
      expect((await poll(clientId, devices[2]!.device_code)).body.error).toBe('invalid_client');
    });
  });

  describe('a bound on device requests per source (found in review: 655 requests a second, each a row for ever)', () => {
    it('takes 30 in 10 minutes from loopback, whatever the client; the next is 429 with Retry-After and stores nothing, until the window passes', async () => {
      const [one, two] = [await registerDeviceClient(), await registerDeviceClient()];
      // Refused requests do not count.
      for (let i = 0; i < 5; i++) expect((await postForm(`${authz.issuer}/device_authorization`, { client_id: one, resource: 'http://127.0.0.1:1/mcp' })).body.error).toBe('invalid_target');
      for (let i = 0; i < 30; i++) expect((await request(i % 2 === 0 ? one : two)).status, `request ${i + 1}`).toBe(200);
      for (const clientId of [one, two, await registerDeviceClient()]) {
        const { result, changed } = await stateChangedBy(database(), () => request(clientId));
        expect([result.status, result.body.error]).toEqual([429, 'too_many_requests']);
        expect(Number(result.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(Number(result.headers.get('retry-after'))).toBeLessThanOrEqual(600);
        expect(result.headers.get('cache-control')).toBe('no-store');
        expect(changed).toEqual([]);
      }
      expect(deviceRows()).toHaveLength(30);
      clock += 600_000;
      expect((await request(one)).status).toBe(200);
    });
  });

  describe('the request’s encoding and where it comes from (RFC 8628 §3.1; found in review: JSON and cross-site form posts were taken)', () => {
    it.each([
      ['a JSON body', 'application/json', (id: string, resource: string) => JSON.stringify({ client_id: id, resource })],
      ['a text/plain body (a form a web page can post without CORS)', 'text/plain', (id: string, resource: string) => `client_id=${id}&resource=${encodeURIComponent(resource)}`],
      ['no Content-Type', undefined, (id: string, resource: string) => `client_id=${id}&resource=${encodeURIComponent(resource)}`],
    ])('refuses %s: 400 invalid_request, nothing stored', async (_name, type, body) => {
      const clientId = await registerDeviceClient();
      const { result, changed } = await stateChangedBy(database(), async () => {
        const res = await fetch(`${authz.issuer}/device_authorization`, { method: 'POST', headers: type ? { 'content-type': type } : {}, body: body(clientId, authz.agentUrl) });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      });
      expect([result.status, result.body.error]).toEqual([400, 'invalid_request']);
      expect(result.body.device_code).toBeUndefined();
      expect(changed).toEqual([]);
    });

    it.each([
      ['Origin of another site and Sec-Fetch-Site cross-site', { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }],
      ['Origin of another loopback port (same-site)', { origin: 'http://127.0.0.1:1', 'sec-fetch-site': 'same-site' }],
      ['Origin null (a sandboxed page)', { origin: 'null' }],
      ['Sec-Fetch-Site cross-site alone', { 'sec-fetch-site': 'cross-site' }],
    ])('refuses a form post with %s: 400 invalid_request, nothing stored', async (_name, headers) => {
      const clientId = await registerDeviceClient();
      const { result, changed } = await stateChangedBy(database(), () => request(clientId, headers));
      expect([result.status, result.body.error]).toEqual([400, 'invalid_request']);
      expect(result.body.device_code).toBeUndefined();
      expect(changed).toEqual([]);
    });

    it('takes a form post with no Origin or Fetch Metadata, as device clients send it (the control)', async () => {
      const device = await request(await registerDeviceClient());
      expect(device.status).toBe(200);
      expect(device.body.device_code).toEqual(expect.any(String));
    });
  });
});
