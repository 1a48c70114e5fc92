// Login CSRF on the owner's sign-in, at the authorization server (found in
// review "local", finding 2). The CLI's authorization request (state, PKCE
// challenge, callback port) passes on command lines other users can read; one
// with an account here approves that very request and sends the code to the
// CLI, which redeems it with its own verifier. The CLI's token request then
// carries owner_assertion, signed with the owner key for the token endpoint:
// a code that another account approved is refused (invalid_grant), spent,
// nothing is issued, and the grant that approval made is revoked, on the
// record. An assertion that is not the owner CLI's for this endpoint, once,
// issues nothing and changes nothing. Without the parameter nothing changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../src/authz/users.js';
import { signOwnerTokenAssertion } from '../../src/client/owner-login.js';
import { NOT_THE_OWNER_DESCRIPTION } from '../../src/delegation/index.js';
import { es256Key, ownerAssertion } from '../support/authz.js';
import { Browser, DEVICE_CODE_GRANT, authorizeUrl, callbackParams, csrfOf, hiddenField, parseConsentForm, pkcePair, postForm, registerDeviceClient, registerPublicClient } from '../support/oauth-flow.js';
import { REDIRECT, expectOwnerLinkRefusedOnly, ownerCode, queryRows, redeemCode, rowCounts, startStack, stateChangedBy, type Stack } from './stack.js';

const PASSWORD = 'mallory has a long password';
let stack: Stack;
let tokenEndpoint: string;

beforeAll(async () => {
  stack = await startStack();
  tokenEndpoint = `${stack.issuer}/token`;
  await addUser(stack.store, { name: 'mallory', password: PASSWORD, timeZone: 'UTC' }, Date.now());
});
afterAll(async () => stack?.close());

/** The owner's token assertion as the CLI signs it (src/client/owner-login.ts). */
const cliAssertion = () => signOwnerTokenAssertion({ key: stack.ownerJwk, tokenEndpoint, now: Date.now });

/** Mallory, signed in with her password for `href` (a session is good for the page its sign-in led to): her browser and where it was sent. */
async function malloryFor(href: string): Promise<{ browser: Browser; url: string }> {
  const browser = new Browser();
  const next = href.slice(stack.issuer.length);
  const form = await browser.get(`${stack.issuer}/login?next=${encodeURIComponent(next)}`);
  const signedIn = await browser.post(`${stack.issuer}/login`, { csrf: csrfOf(form.html), next, username: 'mallory', password: PASSWORD });
  expect(signedIn.status).toBe(303);
  return { browser, url: new URL(signedIn.location!, stack.issuer).href };
}

/** Mallory, signed in with her password, approves a request of the (owner CLI's) client `clientId` read off a command line. */

async function malloryApproves(clientId: string): Promise<{ clientId: string; code: string; verifier: string }> {
  const { verifier, challenge } = pkcePair(); // the CLI's: she only ever sees the challenge
  const { browser, url } = await malloryFor(authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 'cli-state', challenge }));
  const consent = await browser.follow(url);
  expect(consent.html).toContain('signed in as mallory');
  const approved = await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
  const code = callbackParams(approved.location!).get('code')!;
  expect(code).toBeTruthy();
  return { clientId, code, verifier };
}

const ISSUED = ['issued_tokens', 'refresh_tokens', 'token_families'] as const;

describe('a code another account approved, redeemed by the owner’s CLI (owner_assertion)', () => {
  it('is invalid_grant: nothing issued, the code spent, her grant revoked, on the record', async () => {
    const cli = await registerPublicClient(stack.issuer, [REDIRECT]);
    const stolen = await malloryApproves(cli);
    const mallory = (await stack.store.userByName('mallory'))!;
    const [grant] = (await stack.store.listGrants(mallory.id)).filter((g) => g.clientId === cli);
    expect(grant!.revokedAt).toBeNull();
    const issuedBefore = rowCounts(stack, ISSUED);

    const res = await redeemCode(stack, stolen, { owner_assertion: await cliAssertion() });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'invalid_grant', error_description: NOT_THE_OWNER_DESCRIPTION });
    expect(res.headers.get('cache-control')).toContain('no-store');
    expect(res.body.access_token).toBeUndefined();

    expect(rowCounts(stack, ISSUED)).toEqual(issuedBefore);
    expect((await stack.store.grantById(grant!.id))!.revokedAt).not.toBeNull();
    expect(queryRows(stack, 'SELECT used_at FROM auth_codes WHERE grant_id = ?', grant!.id)[0]!.used_at).not.toBeNull();
    const records = await stack.store.listAudit({ grant: grant!.id });
    expect(records.map((r) => r.event)).not.toContain('token_issued');
    expect(records.find((r) => r.event === 'grant_revoked')).toMatchObject({
      user: mallory.id,
      client: cli,
      detail: { by: 'authorization server', via: 'owner_assertion', owner: (await stack.store.ownerUser())!.id },
    });
    // Spent: neither the CLI again nor anyone without the assertion gets tokens for it.
    const again = await redeemCode(stack, stolen);
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_grant');
    expect(rowCounts(stack, ISSUED)).toEqual(issuedBefore);
  });

  it('without owner_assertion (any other client, a remote issuer) is redeemed as before', async () => {
    const other = await malloryApproves(await registerPublicClient(stack.issuer, [REDIRECT]));
    const res = await redeemCode(stack, other);
    expect(res.status).toBe(200);
    expect(res.body.access_token).toEqual(expect.any(String));
  });
});

describe('a device code another account approved, polled by the owner’s CLI (owner_assertion)', () => {
  it('is invalid_grant: nothing issued, her grant revoked', async () => {
    const cli = await registerDeviceClient(stack.issuer);
    const started = await postForm(`${stack.issuer}/device_authorization`, { client_id: cli, resource: stack.agentUrl });
    expect(started.status).toBe(200);
    const userCode = String(started.body.user_code);
    // The code, read off the owner's terminal or the printed link, confirmed and approved by mallory.
    const { browser, url } = await malloryFor(`${stack.issuer}/device?user_code=${encodeURIComponent(userCode)}`);
    const confirm = await browser.get(url);
    const consent = await browser.post(`${stack.issuer}/device`, { user_code: userCode, csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
    expect(consent.html).toContain('signed in as mallory');
    const approved = await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
    expect((await browser.get(new URL(approved.location!, stack.issuer).href)).status).toBe(200);
    const mallory = (await stack.store.userByName('mallory'))!;
    const [grant] = (await stack.store.listGrants(mallory.id)).filter((g) => g.clientId === cli);
    const issuedBefore = rowCounts(stack, ISSUED);

    const poll = await postForm(tokenEndpoint, { grant_type: DEVICE_CODE_GRANT, device_code: String(started.body.device_code), client_id: cli, resource: stack.agentUrl, owner_assertion: await cliAssertion() });
    expect(poll.status).toBe(400);
    expect(poll.body).toEqual({ error: 'invalid_grant', error_description: NOT_THE_OWNER_DESCRIPTION });
    expect(rowCounts(stack, ISSUED)).toEqual(issuedBefore);
    expect((await stack.store.grantById(grant!.id))!.revokedAt).not.toBeNull();
    expect((await stack.store.listAudit({ grant: grant!.id })).map((r) => r.event)).toEqual(['consent', 'grant_revoked']);
  });
});

describe('the owner’s own code with an owner assertion', () => {
  it('is redeemed (control)', async () => {
    const own = await ownerCode(stack);
    const res = await redeemCode(stack, own, { owner_assertion: await cliAssertion() });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.access_token).toEqual(expect.any(String));
  });
});

describe('an owner assertion that is not the owner CLI’s, for this token endpoint, once', () => {
  const refused = async (assertion: string, error = 'invalid_grant') => {
    const own = await ownerCode(stack);
    const { result: res, changed } = await stateChangedBy(stack, () => redeemCode(stack, own, { owner_assertion: assertion }));
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error).toBe(error);
    expect(res.body.access_token).toBeUndefined();
    expect(changed).toEqual([]);
    // The code is left as it was: the owner's CLI, with a valid assertion, still redeems it.
    expect((await redeemCode(stack, own, { owner_assertion: await cliAssertion() })).status).toBe(200);
  };

  it('signed with another key is refused, nothing issued or changed', async () => {
    const other = await es256Key();
    await refused(await signOwnerTokenAssertion({ key: { ...other.privateJwk, kid: stack.ownerJwk.kid }, tokenEndpoint, now: Date.now }));
  });

  it('made for the sign-in link (audience: the issuer, a next) is refused here', async () => {
    await refused(await ownerAssertion(stack.ownerJwk, stack.issuer, { next: '/authorize?client_id=x' }));
  });

  it('for another audience, issuer or lifetime is refused', async () => {
    await refused(await ownerAssertion(stack.ownerJwk, stack.issuer));
    await refused(await ownerAssertion(stack.ownerJwk, tokenEndpoint, { iss: 'someone' }));
    await refused(await ownerAssertion(stack.ownerJwk, tokenEndpoint, { expSec: 600 }));
    await refused(await ownerAssertion(stack.ownerJwk, tokenEndpoint, { expSec: -10 }));
  });

  it('used once already is refused', async () => {
    const assertion = await ownerAssertion(stack.ownerJwk, tokenEndpoint, { jti: 'a-single-use-jti-of-enough-length' });
    expect((await redeemCode(stack, await ownerCode(stack), { owner_assertion: assertion })).status).toBe(200);
    await refused(assertion);
  });

  it('that is no JWT at all is invalid_request', async () => {
    await refused('not-a-jwt', 'invalid_request');
  });

  it('made for the token endpoint cannot open the sign-in link either', async () => {
    const next = authorizeUrl(stack.issuer, { clientId: 'x', redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge }).slice(stack.issuer.length);
    const assertion = await cliAssertion();
    const { result: res, changed } = await stateChangedBy(stack, () =>
      fetch(`${stack.issuer}/login/owner?assertion=${encodeURIComponent(assertion)}&next=${encodeURIComponent(next)}`, { redirect: 'manual' }),
    );
    expect(res.status).toBe(403);
    expect(res.headers.get('set-cookie')).toBeNull();
    // Nothing but the refused link's own record (sign_in_failed, method owner_link: c5a2706).
    await expectOwnerLinkRefusedOnly(stack, changed);
    expect(changed).toEqual(['audit_log']);
  });
});
