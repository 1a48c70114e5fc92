// Authorization details that do not conform to the `calendar` type (RFC 9396
// §5), sent from outside wherever a client can send details: members the type
// does not define (`privileges`, `calendars_all`, `identifier`) or members of
// the wrong type. Found in review: an exchange asking for
// {"type":"calendar", …, "privileges":["admin"], "calendars_all":true} got a
// token carrying them, since the subset check looks only at the members it
// knows, so a child token could carry what its parent never had. Each is now
// refused with invalid_authorization_details and nothing is issued or stored.
// Where the parameter is not an entry point (the code, refresh and device
// requests), it is ignored, and nothing of it reaches a token.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownerLink, registerTestAgent, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, hiddenField, parseConsentForm, pkcePair, postForm, DEVICE_CODE_GRANT, registerDeviceClient, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { REDIRECT, exchangeAsAgent, expectExchangeRefusedOnly, startStack, stateChangedBy, userTokens, type Stack, type UserTokens } from './stack.js';
import { ONE_HELPER_AGENT, openAsOwner, ownerApproves, redeemCode } from '../support/owner-flow.js';

const CALENDAR_MEMBERS = ['type', 'locations', 'actions', 'datatypes', 'calendars', 'lookahead_days'];

let stack: Stack;
let user: UserTokens;

beforeAll(async () => {
  stack = await startStack();
  user = await userTokens(stack);
});
afterAll(async () => stack?.close());

/** A calendar detail for the calendar backend, as the grant allows it; `extra` is merged in. */
const calendarDetail = (extra: Record<string, unknown> = {}) => ({ type: 'calendar', locations: [stack.calendarUrl], actions: ['freebusy:read'], datatypes: ['freebusy'], ...extra });

/** Each way a detail can fail to conform to the calendar type, beside a control that conforms. */
const NONCONFORMING: Array<[string, Record<string, unknown>]> = [
  ['privileges and calendars_all (the reported request)', { privileges: ['admin'], calendars_all: true }],
  ['privileges alone (an RFC 9396 common member the type does not use)', { privileges: ['admin'] }],
  ['identifier (the other common member the type does not use)', { identifier: 'all-calendars' }],
  ['a member of its own invention', { scope_override: 'freebusy:read calendar:write' }],
  ['a __proto__ member', JSON.parse('{"__proto__": {"admin": true}}') as Record<string, unknown>],
  ['calendars as a string', { calendars: 'demo' }],
  ['lookahead_days as a string', { lookahead_days: '14' }],
  ['datatypes as a string', { datatypes: 'freebusy' }],
  ['actions as an object', { actions: { 'freebusy:read': true } }],
];

/** The members of every detail a token carries: only the type's own. */
function membersOf(token: string): string[] {
  const details = (decodeJwt(token).authorization_details ?? []) as Array<Record<string, unknown>>;
  return [...new Set(details.flatMap((d) => Object.keys(d)))];
}

describe('at the token exchange (RFC 8693 with RFC 9396 details)', () => {
  /** The subject token's own calendar detail, `extra` merged in: without it, all the subset checks pass. */
  const subjectDetail = (extra: Record<string, unknown> = {}) => {
    const details = decodeJwt(user.accessToken).authorization_details as Array<Record<string, unknown>>;
    return { ...details.find((d) => d.type === 'calendar')!, ...extra };
  };

  it.each(NONCONFORMING)('refuses a detail with %s: 400 invalid_authorization_details, nothing issued', async (_name, extra) => {
    const { result: res, changed } = await stateChangedBy(stack, () => exchangeAsAgent(stack, user.accessToken, { authorization_details: JSON.stringify([subjectDetail(extra)]) }));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'invalid_authorization_details' });
    expect(res.body.access_token).toBeUndefined();
    // The agent's assertion jti is spent (RFC 7523 §3), and the refusal recorded; nothing else.
    await expectExchangeRefusedOnly(stack, changed);
  });

  it('issues the conforming detail (the control), and the token carries the type’s members only', async () => {
    const res = await exchangeAsAgent(stack, user.accessToken, { authorization_details: JSON.stringify([subjectDetail({ lookahead_days: 7 })]) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    for (const member of membersOf(String(res.body.access_token))) expect(CALENDAR_MEMBERS).toContain(member);
    expect(decodeJwt(String(res.body.access_token)).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 7 })]);
  });

  it('a sub-agent (may_act) adding privileges at the second hop: invalid_authorization_details, nothing issued', async () => {
    const helper = await registerTestAgent(stack as unknown as TestAuthz, 'details-helper', 'http://127.0.0.1:9/details-helper');
    const helped = await userTokens(stack, { choices: ONE_HELPER_AGENT }); // a second hop needs a helper agent allowed
    const hop1 = await exchangeAsAgent(stack, helped.accessToken, { may_act: 'details-helper' });
    expect(hop1.status, JSON.stringify(hop1.body)).toBe(200);
    const hop1Detail = (decodeJwt(String(hop1.body.access_token)).authorization_details as Array<Record<string, unknown>>)[0]!;
    const { result: res, changed } = await stateChangedBy(stack, () =>
      exchangeAsAgent(stack, String(hop1.body.access_token), { authorization_details: JSON.stringify([{ ...hop1Detail, privileges: ['admin'] }]) }, helper),
    );
    expect(res.body).toMatchObject({ error: 'invalid_authorization_details' });
    await expectExchangeRefusedOnly(stack, changed);
  });
});

describe('at the authorization endpoint (RFC 9396 §2, §5)', () => {
  let browser: Browser;
  let clientId: string;

  beforeAll(async () => {
    // The owner is signed in (for one request: /authorize refuses a bad request before it reads the session);
    // on the old code, the refused requests would have reached the consent page.
    clientId = await registerPublicClient(stack.issuer, [REDIRECT]);
    browser = new Browser();
    const page = await signInAndOpenConsent(browser, stack.issuer, stack.ownerJwk, request([]));
    expect(page.status).toBe(200);
  });

  function request(details: unknown[] | undefined, challenge = pkcePair().challenge): string {
    return authorizeUrl(stack.issuer, {
      clientId,
      redirectUri: REDIRECT,
      resource: stack.agentUrl,
      scope: 'slots:find',
      state: 'st-details',
      challenge,
      ...(details ? { extra: { authorization_details: JSON.stringify(details) } } : {}),
    });
  }

  it.each(NONCONFORMING)('refuses a detail with %s: redirected with invalid_authorization_details, no consent page, nothing stored', async (_name, extra) => {
    const { result: res, changed } = await stateChangedBy(stack, () => browser.get(request([calendarDetail(extra)])));
    expect(res.status).toBe(302);
    const params = callbackParams(res.location!);
    expect(params.get('error')).toBe('invalid_authorization_details');
    expect(params.get('state')).toBe('st-details');
    expect(params.get('code')).toBeNull();
    expect(res.html).not.toContain('action="/consent"');
    expect(changed).toEqual([]);
  });

  it('the conforming detail (the control) reaches the consent page; the grant and token it leads to carry the type’s members only', async () => {
    const { verifier, challenge } = pkcePair();
    const { browser: owner, page } = await openAsOwner(stack, request([calendarDetail({ lookahead_days: 7 })], challenge));
    expect(page.status).toBe(200);
    const decided = await owner.post(`${stack.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
    const code = callbackParams(decided.location!).get('code')!;
    const redeemed = await postForm(`${stack.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId, resource: stack.agentUrl });
    expect(redeemed.status, JSON.stringify(redeemed.body)).toBe(200);
    const token = String(redeemed.body.access_token);
    for (const member of membersOf(token)) expect(CALENDAR_MEMBERS).toContain(member);
    const grant = await stack.store.grantById(String(decodeJwt(token).grant_id));
    for (const detail of grant!.authorizationDetails) for (const member of Object.keys(detail)) expect(CALENDAR_MEMBERS).toContain(member);
    expect(decodeJwt(token).authorization_details).toEqual([expect.objectContaining({ type: 'calendar', locations: [stack.calendarUrl] })]);
  });
});

describe('where details are not an entry point, they are ignored and reach no token', () => {
  const hostile = () => JSON.stringify([calendarDetail({ privileges: ['admin'], calendars_all: true })]);

  it('the authorization code and refresh token requests at /token', async () => {
    const approved = await ownerApproves(stack, { redirectUri: REDIRECT });
    const clientId = approved.clientId;
    const redeemed = await redeemCode(stack, approved, { authorization_details: hostile() }, REDIRECT);
    expect(redeemed.status, JSON.stringify(redeemed.body)).toBe(200);
    for (const member of membersOf(String(redeemed.body.access_token))) expect(CALENDAR_MEMBERS).toContain(member);
    const refreshed = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(redeemed.body.refresh_token), client_id: clientId, authorization_details: hostile() });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    for (const member of membersOf(String(refreshed.body.access_token))) expect(CALENDAR_MEMBERS).toContain(member);
  });

  it('the device authorization request', async () => {
    const clientId = await registerDeviceClient(stack.issuer);
    const device = await postForm(`${stack.issuer}/device_authorization`, { client_id: clientId, resource: stack.agentUrl, authorization_details: hostile() });
    expect(device.status, JSON.stringify(device.body)).toBe(200);
    const complete = String(device.body.verification_uri_complete);
    const browser = new Browser();
    const confirm = await browser.follow(await ownerLink(stack, complete.slice(stack.issuer.length)));
    const consent = await browser.post(`${stack.issuer}/device`, { user_code: String(device.body.user_code), csrf: hiddenField(confirm.html, 'csrf'), decision: 'continue' });
    const decided = await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
    await browser.get(new URL(decided.location!, stack.issuer).href);
    const tokens = await postForm(`${stack.issuer}/token`, { grant_type: DEVICE_CODE_GRANT, device_code: String(device.body.device_code), client_id: clientId });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    for (const member of membersOf(String(tokens.body.access_token))) expect(CALENDAR_MEMBERS).toContain(member);
  });
});
