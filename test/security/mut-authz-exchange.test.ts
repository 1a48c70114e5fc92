// Token exchange (RFC 8693) and the token endpoint's gates, attacked from
// outside against the three servers as the CLI starts them: a hand-off
// (`may_act`) to what is no agent, a request naming two targets, a detail
// for another location than the target, a client_id other than the
// assertion's, a short assertion jti, a grant the client did not register,
// a client that is no agent exchanging, an agent at /authorize, and a
// subject token without aud. Written
// for the mutation review (s32 M1): each refusal below had no test that
// failed when its check was dropped (or, for the last ones, shows the layer
// that refuses the attack all the same). Each is checked on the wire and in
// the database.
import { SignJWT, decodeJwt, importJWK, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerTestAgent, type TestAuthz } from '../support/authz.js';
import { authorizeUrl, pkcePair, postForm, registerPublicClient } from '../support/oauth-flow.js';
import { ONE_HELPER_AGENT } from '../support/owner-flow.js';
import { ACCESS_TOKEN_TYPE, JWT_BEARER, REDIRECT, TOKEN_EXCHANGE, agentAssertion, claims, exchangeAsAgent, issuerSigningKey, expectExchangeRefusedOnly, startStack, stateChangedBy, userTokens, type Stack, type UserTokens } from './stack.js';

let stack: Stack;
let user: UserTokens;

beforeAll(async () => {
  stack = await startStack();
  // A grant of depth 2, so that a hand-off (may_act) is allowed at all.
  user = await userTokens(stack, { choices: ONE_HELPER_AGENT });
});
afterAll(async () => stack?.close());

/** 400 with `error`, no token in the answer. */
function expectRefused(res: { status: number; body: Record<string, unknown> }, error: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.error, JSON.stringify(res.body)).toBe(error);
  expect(res.body.access_token).toBeUndefined();
}

describe('an exchange handing the token on (may_act) to what is no registered agent', () => {
  it('an unknown id, or a public client’s id: invalid_request, nothing issued; to a registered agent it works (the control)', async () => {
    const publicClient = await registerPublicClient(stack.issuer, [REDIRECT]);
    for (const mayAct of ['no-such-agent', publicClient]) {
      const { result, changed } = await stateChangedBy(stack, () => exchangeAsAgent(stack, user.accessToken, { may_act: mayAct }));
      expectRefused(result, 'invalid_request');
      await expectExchangeRefusedOnly(stack, changed);
    }
    await registerTestAgent(stack as unknown as TestAuthz, 'helper-agent', 'http://127.0.0.1:9/helper');
    expect((await exchangeAsAgent(stack, user.accessToken, { may_act: 'helper-agent' })).status).toBe(200);
  });
});

describe('an exchange naming two targets (RFC 8693 §2.1 resource and audience)', () => {
  it('resource the calendar backend, audience CalendarAgent: invalid_target, nothing issued', async () => {
    const { result, changed } = await stateChangedBy(stack, () => exchangeAsAgent(stack, user.accessToken, { resource: stack.calendarUrl, audience: stack.agentUrl }));
    expectRefused(result, 'invalid_target');
    await expectExchangeRefusedOnly(stack, changed);
  });
});

describe('an exchange asking for a detail (RFC 9396) that names another location besides the target', () => {
  it('invalid_authorization_details, nothing issued (the location check; the subset check would refuse it too)', async () => {
    const detail = [{ type: 'calendar', locations: [stack.calendarUrl, 'https://calendar.evil.example'], actions: ['freebusy:read'], datatypes: ['freebusy'] }];
    const { result, changed } = await stateChangedBy(stack, () => exchangeAsAgent(stack, user.accessToken, { authorization_details: JSON.stringify(detail) }));
    expectRefused(result, 'invalid_authorization_details');
    await expectExchangeRefusedOnly(stack, changed);
  });
});

describe('the agent’s client assertion (RFC 7523)', () => {
  it('with a client_id in the body that is not the assertion’s sub: invalid_client, nothing issued or spent', async () => {
    const other = await registerTestAgent(stack as unknown as TestAuthz, 'other-agent', 'http://127.0.0.1:9/other');
    const { result, changed } = await stateChangedBy(stack, () => exchangeAsAgent(stack, user.accessToken, { client_id: other.clientId }));
    expectRefused(result, 'invalid_client');
    expect(changed).toEqual([]);
  });

  it('with a jti of 8 characters (at least 16 asked, so that it is unique): invalid_client, nothing issued', async () => {
    const assertion = await agentAssertion(stack, {}, { jti: 'abcdefgh' });
    const { result, changed } = await stateChangedBy(stack, () =>
      postForm(`${stack.issuer}/token`, { grant_type: TOKEN_EXCHANGE, subject_token: user.accessToken, subject_token_type: ACCESS_TOKEN_TYPE, resource: stack.calendarUrl, scope: 'freebusy:read', client_assertion_type: JWT_BEARER, client_assertion: assertion }),
    );
    expectRefused(result, 'invalid_client');
    expect(changed).toEqual([]);
  });
});

describe('a grant type the client did not register (RFC 7591 §2 grant_types)', () => {
  it('a client registered for authorization_code alone posting grant_type=refresh_token: unauthorized_client, nothing changed', async () => {
    const codeOnly = await registerPublicClient(stack.issuer, [REDIRECT], ['authorization_code']);
    const { result, changed } = await stateChangedBy(stack, () => postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: user.refreshToken, client_id: codeOnly }));
    expectRefused(result, 'unauthorized_client');
    expect(changed).toEqual([]);
  });

  it('a public client exchanging a user’s token as if it were an agent: unauthorized_client, nothing changed', async () => {
    const { result, changed } = await stateChangedBy(stack, () =>
      postForm(`${stack.issuer}/token`, { grant_type: TOKEN_EXCHANGE, subject_token: user.accessToken, subject_token_type: ACCESS_TOKEN_TYPE, resource: stack.calendarUrl, client_id: user.clientId }),
    );
    expectRefused(result, 'unauthorized_client');
    expect(changed).toEqual([]);
  });
});

describe('an agent’s client_id at /authorize (agents act only through delegations given to other apps)', () => {
  it('is a 400 page, no Location, nothing stored', async () => {
    const href = authorizeUrl(stack.issuer, { clientId: stack.agent.clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge });
    const { result, changed } = await stateChangedBy(stack, () => fetch(href, { redirect: 'manual' }));
    expect(result.status).toBe(400);
    expect(result.headers.get('location')).toBeNull();
    expect(changed).toEqual([]);
  });
});

describe('a subject token without aud, signed with the authorization server’s own key', () => {
  it('is invalid_request at the exchange, nothing issued (the aud claim required; the audience check refuses it too)', async () => {
    const key = await issuerSigningKey(stack);
    const forged = await new SignJWT(claims(decodeJwt(user.accessToken), { aud: undefined }))
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.kid })
      .sign((await importJWK(key.privateJwk, 'ES256')) as CryptoKey);
    const { result, changed } = await stateChangedBy(stack, () => exchangeAsAgent(stack, forged));
    expectRefused(result, 'invalid_request');
    await expectExchangeRefusedOnly(stack, changed);
  });
});
