// A grant reaches only the calendar locations the owner approved (RFC 9396
// `locations`). When the calendar backend moves (delegate started on other
// ports, or `serve-auth --calendar-url` changed), CalendarAgent reads it at an
// address the grant was never approved for. Found in review: a sign-in was
// answered from the old grant without a consent page (grantCovers compared
// only scopes and limits), so `delegate login` printed the old calendar as
// authorized and the agent stayed refused; and the refusal said nothing of
// what to do. Now: the exchange for the new address is refused (nothing
// issued) with a description that says the calendar moved; the owner's next
// sign-in shows the consent page naming the new address; Deny leaves the
// grant as it was; only Approve moves the grant, on the audit record with
// what it was before. A location is never added without the owner's consent.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ResourceRecord } from '../../src/store/index.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, signInAndOpenConsent } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { REDIRECT, auditSince, exchangeAsAgent, expectExchangeRefusedOnly, lastAuditSeq, startStack, stateChangedBy, userTokens, type Stack, type UserTokens } from './stack.js';

let stack: Stack;
let user: UserTokens;
let oldCalendar: string;
let newCalendar: string;
let agentBefore: ResourceRecord;

beforeAll(async () => {
  stack = await startStack();
  user = await userTokens(stack);
  oldCalendar = stack.calendarUrl;
  newCalendar = `http://127.0.0.1:${await freePort()}`;
  // The move, as a start on another calendar port records it (bootstrap → registerAgent): CalendarAgent now reads there.
  agentBefore = (await stack.store.resourceByUrl(stack.agentUrl))!;
  await stack.store.upsertResource({ ...agentBefore, downstream: agentBefore.downstream.map((d) => ({ ...d, resource: newCalendar })) });
});
afterAll(async () => stack?.close());

const locationsOf = (details: readonly Record<string, unknown>[]) => details.flatMap((d) => (d.locations as string[] | undefined) ?? []);
const grantLocations = async () => locationsOf((await stack.store.grantById(user.grantId))!.authorizationDetails);

/** The owner's own CLI asks again for the same client (the identity-assured case, where a covering grant gets a code unasked). */
async function signInAgain() {
  const { challenge, verifier } = pkcePair();
  const browser = new Browser();
  const href = authorizeUrl(stack.issuer, { clientId: user.clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 'moved', challenge });
  const page = await signInAndOpenConsent(browser, stack.issuer, stack.ownerJwk, href);
  return { browser, page, verifier };
}

describe('a grant approved for the calendar at its old address', () => {
  it('is not exchanged for the new address: invalid_target saying the calendar moved, nothing issued', async () => {
    const { result: res, changed } = await stateChangedBy(stack, () => exchangeAsAgent(stack, user.accessToken, { resource: newCalendar }));
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_target');
    expect(res.body.error_description).toBe(`The delegation reaches ${oldCalendar}, not ${newCalendar}, where the agent now reads the calendar: the calendar moved since it was approved.`);
    await expectExchangeRefusedOnly(stack, changed);
    expect(await grantLocations()).toEqual([oldCalendar]);
  });

  it('a target the agent does not read is still only "does not reach" (the advice to sign in again would not help)', async () => {
    const elsewhere = `http://127.0.0.1:${await freePort()}`;
    const res = await exchangeAsAgent(stack, user.accessToken, { resource: elsewhere });
    expect(res.body).toMatchObject({ error: 'invalid_target', error_description: `The delegation does not reach ${elsewhere}.` });
  });

  it('the owner’s next sign-in shows the consent page naming the new address, not a code; Deny leaves the grant as it was', async () => {
    const { browser, page } = await signInAgain();
    expect(page.status, page.html.slice(0, 300)).toBe(200);
    expect(page.location).toBeNull();
    expect(page.html).toContain('It asks to also be able to');
    expect(page.html).toContain(`from the calendar service at <strong>${new URL(newCalendar).host}</strong>; you allowed it at ${new URL(oldCalendar).host}, where it no longer reads`);

    const { result: denied, changed } = await stateChangedBy(stack, () => browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'deny' }));
    expect(denied.status).toBe(303);
    expect(callbackParams(denied.location!).get('error')).toBe('access_denied');
    expect(changed).not.toContain('grants');
    expect(await grantLocations()).toEqual([oldCalendar]);
    // Still no code without the page: the refusal did not mark the new address as approved.
    expect((await signInAgain()).page.status).toBe(200);
  });

  it('Approve moves the grant to the new address (keeping the limits), records what it was, and its tokens reach only there', async () => {
    const before = (await stack.store.grantById(user.grantId))!;
    const seq = await lastAuditSeq(stack);
    const { browser, page, verifier } = await signInAgain();
    expect(page.status).toBe(200);
    const answer = await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
    expect(answer.status).toBe(303);
    const code = callbackParams(answer.location!).get('code')!;
    expect(code).toBeTruthy();

    const after = (await stack.store.grantById(user.grantId))!;
    expect(locationsOf(after.authorizationDetails)).toEqual([newCalendar]);
    const { locations: _old, ...limitsBefore } = before.authorizationDetails[0]!;
    const { locations: _new, ...limitsAfter } = after.authorizationDetails[0]!;
    expect(limitsAfter).toEqual(limitsBefore);
    const consent = (await auditSince(stack, seq)).find((r) => r.event === 'consent')!;
    expect(consent.detail).toMatchObject({ decision: 'approved', previous_authorization_details: before.authorizationDetails, authorization_details: after.authorizationDetails });
    // The grant no longer reaches the old address: that is a narrowing, and the tokens issued for it are taken back.
    expect(consent.detail).toMatchObject({ narrowed: true });
    expect((await exchangeAsAgent(stack, user.accessToken, { resource: newCalendar })).body).toMatchObject({ error: 'invalid_request', error_description: 'The subject token has been revoked.' });

    const redeemed = await postForm(`${stack.issuer}/token`, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: user.clientId, code_verifier: verifier, resource: stack.agentUrl });
    expect(redeemed.status, JSON.stringify(redeemed.body)).toBe(200);
    const token = String(redeemed.body.access_token);
    expect(locationsOf(decodeJwt(token).authorization_details as Record<string, unknown>[])).toEqual([newCalendar]);
    expect((await exchangeAsAgent(stack, token, { resource: newCalendar })).status).toBe(200);
    expect((await exchangeAsAgent(stack, token, { resource: oldCalendar })).body.error).toBe('invalid_target');

    // Once approved, the next sign-in for the same request asks nothing.
    const again = await signInAgain();
    expect(again.page.location).not.toBeNull();
    expect(callbackParams(again.page.location!).get('code')).toBeTruthy();
  });
});
