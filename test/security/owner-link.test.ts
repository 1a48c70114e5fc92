// A stolen owner sign-in link. The CLI hands the link to the browser on a
// command line (xdg-open's, the browser's), and any user of the machine can
// read command lines in /proc; a review showed another user taking the link
// with curl before the browser did, and using the owner session it started
// to register their own client, approve it and get a token for the owner.
// The session a link starts is now bound to the one request the link was
// signed for: whoever opens the link first gets that request's pages and
// nothing else, and its code still goes to the CLI's own redirect URI, with
// the CLI's PKCE challenge.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, authorizeUrl, callbackParams, hiddenField, parseConsentForm, pkcePair, postForm, registerDeviceClient, registerPublicClient } from '../support/oauth-flow.js';
import { openAsOwner, ownerApproves } from '../support/owner-flow.js';
import { ownerLink } from '../support/authz.js';
import { REDIRECT, expectOwnerLinkRefusedOnly, startStack, stateChangedBy, type Stack } from './stack.js';

let stack: Stack;
/** One of the owner's delegations, which a thief would like to see or revoke. */
let ownerGrant: string;

beforeAll(async () => {
  stack = await startStack();
  const approved = await ownerApproves(stack, { redirectUri: REDIRECT });
  const token = await postForm(`${stack.issuer}/token`, {
    grant_type: 'authorization_code',
    code: approved.code,
    code_verifier: approved.verifier,
    redirect_uri: REDIRECT,
    client_id: approved.clientId,
    resource: stack.agentUrl,
  });
  expect(token.status).toBe(200);
  ownerGrant = (await stack.store.listGrants((await stack.store.ownerUser())!.id))[0]!.id;
});
afterAll(async () => stack?.close());

const thiefRequest = async () => {
  const clientId = await registerPublicClient(stack.issuer, ['http://127.0.0.1:50505/thief']);
  return authorizeUrl(stack.issuer, { clientId, redirectUri: 'http://127.0.0.1:50505/thief', resource: stack.agentUrl, scope: 'slots:find', state: 't', challenge: pkcePair().challenge });
};

/** The owner's sign-in link as the CLI makes it, opened by someone else first (curl, as the review did). */
async function stolen(href: string): Promise<{ thief: Browser; page: { status: number; html: string }; cookie: string; url: string }> {
  const link = await ownerLink(stack, href.slice(stack.issuer.length));
  const thief = new Browser();
  const signedIn = await thief.get(link);
  expect(signedIn.status).toBe(303);
  const url = new URL(signedIn.location!, stack.issuer).href;
  const page = await thief.get(url);
  return { thief, page, cookie: signedIn.headers.get('set-cookie') ?? '', url };
}

describe('a stolen owner sign-in link for an authorization request', () => {
  const cliRedirect = REDIRECT;
  let cliClient: string;
  let cliHref: string;
  let thief: Browser;
  let cookie: string;
  /** Where the link sent the thief's browser: the CLI's request with the sign-in value the AS added. */
  let landedAt: string;
  beforeAll(async () => {
    cliClient = await registerPublicClient(stack.issuer, [cliRedirect]);
    cliHref = authorizeUrl(stack.issuer, { clientId: cliClient, redirectUri: cliRedirect, resource: stack.agentUrl, scope: 'slots:find', state: 'cli', challenge: pkcePair().challenge });
    const taken = await stolen(cliHref);
    thief = taken.thief;
    cookie = taken.cookie;
    landedAt = taken.url;
    // What the link gives: the consent page of the CLI's own request (the control).
    expect(taken.page.status).toBe(200);
    expect(taken.page.html).toContain('name="decision"');
  });

  it('starts a session for as long as that request may wait for consent (10 minutes), not a day’s sign-in', () => {
    expect(cookie).toMatch(/Max-Age=600(;|$)/);
  });

  it('opens no other authorization request: the sign-in page, no consent page, nothing stored', async () => {
    for (const href of [await thiefRequest(), cliHref.replace('state=cli', 'state=other')]) {
      const { result: res, changed } = await stateChangedBy(stack, () => thief.get(href));
      expect(res.status).toBe(403);
      expect(res.location).toBeNull();
      expect(res.html).toContain('Sign in to continue');
      expect(res.html).not.toContain('name="decision"');
      expect(changed).toEqual([]);
    }
  });

  it('shows none of the owner’s delegations: /grants is the sign-in page', async () => {
    const res = await thief.get(`${stack.issuer}/grants`);
    expect(res.status).toBe(403);
    expect(res.html).not.toContain(ownerGrant);
    expect(res.html).not.toContain('name="grant"');
  });

  it('its one request still sends the code to the CLI’s redirect URI, where only the CLI’s PKCE verifier redeems it (the control)', async () => {
    const page = await thief.get(landedAt);
    expect(page.status).toBe(200);
    const decided = await thief.post(`${stack.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
    expect(decided.status).toBe(303);
    expect(decided.location!.startsWith(`${cliRedirect}?`)).toBe(true);
    const code = callbackParams(decided.location!).get('code')!;
    const redeemed = await postForm(`${stack.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: pkcePair().verifier, redirect_uri: cliRedirect, client_id: cliClient, resource: stack.agentUrl });
    expect(redeemed.body).toMatchObject({ error: 'invalid_grant' });
  });
});

describe('a stolen owner sign-in link pointed at another request', () => {
  // Found in review after the session was bound to `next`: `next` was not signed, so the thief swapped in their own
  // /authorize request (the CLI's client_id, their own PKCE challenge and redirect port), approved it and got a token.
  it('is refused before any session: 403, no cookie, nothing stored; the CLI’s own link still works after (its jti unspent)', async () => {
    const cliClient = await registerPublicClient(stack.issuer, [REDIRECT]);
    const cliHref = authorizeUrl(stack.issuer, { clientId: cliClient, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 'cli', challenge: pkcePair().challenge });
    const link = new URL(await ownerLink(stack, cliHref.slice(stack.issuer.length)));
    for (const swapped of [
      await thiefRequest(),
      authorizeUrl(stack.issuer, { clientId: cliClient, redirectUri: 'http://127.0.0.1:50505/thief', resource: stack.agentUrl, scope: 'slots:find', state: 'cli', challenge: pkcePair().challenge }),
      cliHref.replace(/code_challenge=[^&]+/, `code_challenge=${pkcePair().challenge}`),
    ]) {
      const forged = new URL(link);
      forged.searchParams.set('next', swapped.slice(stack.issuer.length));
      const thief = new Browser();
      const { result: res, changed } = await stateChangedBy(stack, () => thief.get(forged.href));
      expect(res.status).toBe(403);
      expect(res.location).toBeNull();
      expect(thief.hasCookies()).toBe(false);
      await expectOwnerLinkRefusedOnly(stack, changed);
    }
    const owner = new Browser();
    const consent = await owner.follow(link.href);
    expect(consent.status).toBe(200);
    expect(consent.html).toContain('name="decision"');
  });
});

describe('a stolen owner sign-in link for a device’s code', () => {
  it('confirms that code only: another code, its confirmation form, /grants and a revoke are all refused, nothing changed', async () => {
    const deviceClient = await registerDeviceClient(stack.issuer);
    const start = () => postForm(`${stack.issuer}/device_authorization`, { client_id: deviceClient, resource: stack.agentUrl });
    const owners = await start();
    const other = await start();
    const otherCode = String(other.body.user_code);
    const { thief, page } = await stolen(String(owners.body.verification_uri_complete));
    expect(page.status).toBe(200);
    // The session's CSRF token, as the confirmation page shows it: enough for any form of a session that is not bound.
    const csrf = hiddenField(page.html, 'csrf');
    const attempts: Array<[string, () => Promise<{ status: number; html: string }>]> = [
      ['GET another code', () => thief.get(`${stack.issuer}/device?user_code=${encodeURIComponent(otherCode)}`)],
      ['POST another code', () => thief.post(`${stack.issuer}/device`, { user_code: otherCode, csrf, decision: 'continue' })],
      ['POST another code, cancel', () => thief.post(`${stack.issuer}/device`, { user_code: otherCode, csrf, decision: 'cancel' })],
      ['/grants', () => thief.get(`${stack.issuer}/grants`)],
      ['revoke the owner’s grant', () => thief.post(`${stack.issuer}/grants/revoke`, { grant: ownerGrant, csrf })],
    ];
    for (const [name, attempt] of attempts) {
      const { result: res, changed } = await stateChangedBy(stack, attempt);
      expect(res.status, name).toBe(403);
      // The sign-in page repeats the code the request itself typed only in the `delegate approve` line it shows for
      // it (for the owner at that computer): nothing of the other device's request.
      expect(res.html.replace(/<pre><code>delegate approve [^<]*<\/code><\/pre>/, ''), name).not.toContain(otherCode);
      expect(changed, name).toEqual([]);
    }
    expect((await stack.store.grantById(ownerGrant))!.revokedAt).toBeNull();
    // The code form needs no session (the sign-in that follows it is for the code typed): it shows nothing of anyone's.
    const { result: form, changed } = await stateChangedBy(stack, () => thief.get(`${stack.issuer}/device`));
    expect(form.status).toBe(200);
    expect(form.html).not.toContain(otherCode);
    expect(form.html).not.toContain(String(owners.body.user_code));
    expect(changed).toEqual([]);
    // The other device is still waiting, and the link's own code still reaches the consent page (the control).
    const polled = await postForm(`${stack.issuer}/token`, { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: String(other.body.device_code), client_id: deviceClient });
    expect(polled.body).toMatchObject({ error: 'authorization_pending' });
    const confirmed = await thief.post(`${stack.issuer}/device`, { user_code: String(owners.body.user_code), csrf, signin: hiddenField(page.html, 'signin'), decision: 'continue' });
    expect(confirmed.status).toBe(200);
    expect(confirmed.html).toContain('name="decision"');
  });
});

// Found in review (readme, finding 4): `delegate login --device` printed a 2-minute link while it waited 10 minutes, so
// a person who opened it on another device later got "not valid". A link to a device's code page may now live as long
// as that device request (600 s), and that is all: these are the links a thief (or a forger with no owner key) might
// hope the longer life opens.
describe('a long-lived owner sign-in link (the device sign-in’s)', () => {
  let deviceClient: string;
  const deviceRequest = async () => {
    const res = await postForm(`${stack.issuer}/device_authorization`, { client_id: deviceClient, resource: stack.agentUrl });
    expect(res.status).toBe(200);
    return { userCode: String(res.body.user_code), page: String(res.body.verification_uri_complete).slice(stack.issuer.length) };
  };
  beforeAll(async () => {
    deviceClient = await registerDeviceClient(stack.issuer);
  });

  it('is refused for anything but a device request that waits and was made before it: 403, no session, nothing changed', async () => {
    const cliClient = await registerPublicClient(stack.issuer, [REDIRECT]);
    const authorize = authorizeUrl(stack.issuer, { clientId: cliClient, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 'long', challenge: pkcePair().challenge }).slice(stack.issuer.length);
    const waiting = await deviceRequest();
    const denied = await deviceRequest();
    const record = (await stack.store.deviceAuthorizationByUserCode(denied.userCode, Date.now()))!;
    expect(await stack.store.settleDeviceAuthorization(record.state, { status: 'denied' }, Date.now())).toBe(true);
    const cases: Array<[string, string, Parameters<typeof ownerLink>[2]]> = [
      ['an authorization request, 600 s', authorize, { expSec: 600 }],
      ['an authorization request, 121 s (the limit for every page but a device’s)', authorize, { expSec: 121 }],
      ['a waiting device request, 601 s', waiting.page, { expSec: 601 }],
      ['a waiting device request, signed 5 s before it was made', waiting.page, { expSec: 600, iatOffsetSec: -5 }],
      ['a device code no request holds, 600 s', '/device?user_code=BCDF-GHJK', { expSec: 600 }],
      ['a waiting device request’s page written another way, 600 s', `/device?user_code=${waiting.userCode.replace('-', '').toLowerCase()}`, { expSec: 600 }],
      ['a device request already denied, 600 s', denied.page, { expSec: 600 }],
    ];
    for (const [name, next, overrides] of cases) {
      const link = await ownerLink(stack, next, overrides);
      const browser = new Browser();
      const { result: res, changed } = await stateChangedBy(stack, () => browser.get(link));
      expect(res.status, name).toBe(403);
      expect(res.location, name).toBeNull();
      expect(res.html, name).toContain('not valid');
      expect(browser.hasCookies(), name).toBe(false);
      expect(changed, name).toEqual([]);
    }
  });

  it('opens the code page of a waiting device request for the device code’s 10 minutes (the control)', async () => {
    const waiting = await deviceRequest();
    const owner = new Browser();
    const confirm = await owner.follow(await ownerLink(stack, waiting.page, { expSec: 600 }));
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain(waiting.userCode);
  });
});

describe('the owner’s own use is unchanged', () => {
  it('each request the CLI opens gets its own link, and each link its consent page', async () => {
    for (const state of ['one', 'two']) {
      const clientId = await registerPublicClient(stack.issuer, [REDIRECT]);
      const { page } = await openAsOwner(stack, authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state, challenge: pkcePair().challenge }));
      expect(page.status, state).toBe(200);
      expect(page.html, state).toContain('name="decision"');
    }
  });
});
