// Token exchange (RFC 8693) from outside: what the agent gets, and every way
// of asking for more than the delegation allows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { es256Key, registerTestAgent, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { stateChangedBy } from '../security/stack.js';
import { REDIRECT, clientAssertion, decodeJwt, exchange, obtainTokens, redeem, type UserTokens } from './helpers.js';

let authz: TestAuthz;
let user: UserTokens;
beforeAll(async () => {
  authz = await startTestAuthz();
  user = await obtainTokens(authz);
});
afterAll(async () => authz.close());

/** The owner's tokens for a fresh client, approved on the consent page with "May it ask another agent to help?" set to `maxDepth`. */
async function tokensWithDepth(maxDepth: 1 | 2): Promise<UserTokens> {
  const clientId = await registerPublicClient(authz.issuer, [REDIRECT]);
  const { verifier, challenge } = pkcePair();
  const browser = new Browser();
  const page = await signInAndOpenConsent(browser, authz.issuer, authz.ownerJwk, authorizeUrl(authz.issuer, { clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope: 'slots:find', state: 's', challenge }));
  expect(page.status).toBe(200);
  const decision = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(page.html), max_depth: String(maxDepth), decision: 'approve' });
  const res = await redeem(authz, { clientId, code: callbackParams(decision.location!).get('code')!, verifier });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect((await authz.store.grantById(String(decodeJwt(String(res.body.access_token)).grant_id)))?.maxDepth).toBe(maxDepth);
  return { clientId, accessToken: String(res.body.access_token), refreshToken: String(res.body.refresh_token), body: res.body };
}

describe('the agent exchanges the user’s token', () => {
  it('for a calendar token: calendar audience, freebusy:read only, the agent as current actor', async () => {
    const res = await exchange(authz, user.accessToken);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.issued_token_type).toBe('urn:ietf:params:oauth:token-type:access_token');
    expect(res.body.token_type).toBe('Bearer');
    const claims = decodeJwt(String(res.body.access_token));
    const subject = decodeJwt(user.accessToken);
    expect(claims).toMatchObject({
      iss: authz.issuer,
      aud: authz.calendarUrl,
      scope: 'freebusy:read',
      client_id: 'calendar-agent',
      sub: subject.sub,
      grant_id: subject.grant_id,
      act: { sub: 'calendar-agent', act: { sub: user.clientId } },
    });
    expect(claims.exp!).toBeLessThanOrEqual(subject.exp!);
    expect(claims.jti).not.toBe(subject.jti);
  });

  it('defaults to everything the delegation allows at the target when no scope is asked', async () => {
    const res = await exchange(authz, user.accessToken, { scope: undefined });
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('freebusy:read');
  });
});

describe('exchanges that are refused', () => {
  it('a scope the delegation does not allow → invalid_scope', async () => {
    const res = await exchange(authz, user.accessToken, { scope: 'freebusy:read calendar:write' });
    expect(res.body.error).toBe('invalid_scope');
  });

  it('a target the delegation does not reach → invalid_target', async () => {
    expect((await exchange(authz, user.accessToken, { resource: 'http://127.0.0.1:1' })).body.error).toBe('invalid_target');
    expect((await exchange(authz, user.accessToken, { resource: authz.agentUrl })).body.error).toBe('invalid_target');
  });

  // RFC 8707 §2 and RFC 8693 §2.2.2: targets the server will not issue one token for are invalid_target.
  it('several resource or audience parameters → invalid_target', async () => {
    for (const params of [{ resource: [authz.calendarUrl, authz.calendarUrl] }, { resource: undefined, audience: [authz.calendarUrl, authz.agentUrl] }]) {
      const res = await exchange(authz, user.accessToken, params);
      expect([res.status, res.body.error], JSON.stringify(params)).toEqual([400, 'invalid_target']);
      expect(String(res.body.error_description)).toMatch(/one (resource|audience)/);
    }
  });

  it('hands a token to a sub-agent (may_act), whose exchange nests the chain; a hop beyond the grant’s depth is refused', async () => {
    const sub = await registerTestAgent(authz, 'sub-agent', 'http://127.0.0.1:9/sub');
    const third = await registerTestAgent(authz, 'third-agent', 'http://127.0.0.1:9/third');
    // A helper agent allowed on the consent page, explicitly: a first consent preselects none.
    const helped = await tokensWithDepth(2);
    const hop1 = await exchange(authz, helped.accessToken, { may_act: 'sub-agent' });
    expect(hop1.status, JSON.stringify(hop1.body)).toBe(200);
    expect(decodeJwt(String(hop1.body.access_token)).may_act).toEqual({ sub: 'sub-agent' });
    // Only the agent it was handed to may exchange it.
    expect((await exchange(authz, String(hop1.body.access_token), {}, third)).body.error).toBe('invalid_request');
    // Hop 2 is the last the grant (depth 2) allows, so it hands on to no one (naming third-agent is refused: see below).
    const hop2 = await exchange(authz, String(hop1.body.access_token), {}, sub);
    expect(hop2.status, JSON.stringify(hop2.body)).toBe(200);
    expect(decodeJwt(String(hop2.body.access_token)).act).toEqual({ sub: 'sub-agent', act: { sub: 'calendar-agent', act: { sub: helped.clientId } } });
    expect((await exchange(authz, String(hop2.body.access_token), {}, third)).body.error).toBe('invalid_request');
    const events = (await authz.store.listAudit({ grant: String(decodeJwt(helped.accessToken).grant_id) })).filter((r) => r.event === 'token_exchanged');
    expect(events.at(-1)!.actors).toEqual(['sub-agent', 'calendar-agent', helped.clientId, authz.ownerId]);

    // A hop beyond the grant's depth: the user narrowed the grant to depth 1 after hop 1 had handed its token on.
    const narrowed = await tokensWithDepth(2);
    const handed = await exchange(authz, narrowed.accessToken, { may_act: 'sub-agent' });
    expect(handed.status, JSON.stringify(handed.body)).toBe(200);
    const grant = (await authz.store.grantById(String(decodeJwt(narrowed.accessToken).grant_id)))!;
    await authz.store.updateGrant({ ...grant, maxDepth: 1 });
    const beyond = await exchange(authz, String(handed.body.access_token), {}, sub);
    expect(beyond.body.error).toBe('invalid_request');
    expect(String(beyond.body.error_description)).toMatch(/at most 1 hops/);
  });

  // RFC 8693 §4.4: may_act says the named party is authorized to act next, so it is one more hop from the user;
  // a hop the grant's depth does not allow is not to be authorized (docs/delegation.md: depth is hops from the user).
  it('a may_act naming a hop beyond the grant’s depth → invalid_request, nothing issued: under depth 1, any may_act at all', async () => {
    await registerTestAgent(authz, 'helper-1', 'http://127.0.0.1:9/helper-1');
    const only = await tokensWithDepth(1);
    for (const mayAct of ['helper-1', 'calendar-agent']) {
      const { result: res, changed } = await stateChangedBy({ paths: { db: join(authz.home, 'delegate.db') } }, () => exchange(authz, only.accessToken, { may_act: mayAct }));
      expect([res.status, res.body.error], mayAct).toEqual([400, 'invalid_request']);
      expect(String(res.body.error_description)).toMatch(/at most 1 hop/);
      // Nothing issued; the refusal is recorded (token_exchange_refused), once per token and error code a minute.
      expect(changed).toEqual(mayAct === 'helper-1' ? ['audit_log', 'used_once'] : ['used_once']);
    }
    // The control: the same exchange without may_act is hop 1, which the grant allows.
    const own = await exchange(authz, only.accessToken);
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    expect(decodeJwt(String(own.body.access_token))).not.toHaveProperty('may_act');
  });

  it('under depth 2, CalendarAgent may hand on (hop 2), and the helper may not hand on again (hop 3)', async () => {
    const helper = await registerTestAgent(authz, 'helper-2', 'http://127.0.0.1:9/helper-2');
    await registerTestAgent(authz, 'helper-3', 'http://127.0.0.1:9/helper-3');
    const two = await tokensWithDepth(2);
    const hop1 = await exchange(authz, two.accessToken, { may_act: 'helper-2' });
    expect(hop1.status, JSON.stringify(hop1.body)).toBe(200);
    const { result: handOn, changed } = await stateChangedBy({ paths: { db: join(authz.home, 'delegate.db') } }, () => exchange(authz, String(hop1.body.access_token), { may_act: 'helper-3' }, helper));
    expect([handOn.status, handOn.body.error]).toEqual([400, 'invalid_request']);
    expect(String(handOn.body.error_description)).toMatch(/at most 2 hops/);
    expect(changed).toEqual(['audit_log', 'used_once']); // nothing issued; the refusal recorded
    expect((await authz.store.listAudit()).at(-1)).toMatchObject({ event: 'token_exchange_refused', client: 'helper-2', detail: { error: 'invalid_request', asked: { may_act: 'helper-3' } } });
    expect((await exchange(authz, String(hop1.body.access_token), {}, helper)).status).toBe(200);
  });

  // RFC 8693 §2.2.2: a subject token that is invalid or unacceptable by policy is invalid_request.
  it('by a client not bound to the subject token’s audience → invalid_request', async () => {
    const other = await registerTestAgent(authz, 'other-agent', 'http://127.0.0.1:9/mcp');
    const res = await exchange(authz, user.accessToken, {}, other);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(String(res.body.error_description)).toMatch(/issued for another resource/);
  });

  it('by a public client → unauthorized_client', async () => {
    const res = await postForm(`${authz.issuer}/token`, {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: user.accessToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      resource: authz.calendarUrl,
      client_id: user.clientId,
    });
    expect(res.body.error).toBe('unauthorized_client');
  });

  it('with a forged, replayed or misdirected client assertion → invalid_client', async () => {
    const stranger = await es256Key();
    const forged = await exchange(authz, user.accessToken, {}, { clientId: 'calendar-agent', privateJwk: { ...stranger.privateJwk, kid: authz.agent.privateJwk.kid } });
    expect(forged.status).toBe(400);
    expect(forged.body.error).toBe('invalid_client');

    const assertion = await clientAssertion(authz.agent.privateJwk, 'calendar-agent', authz.issuer);
    const params = { client_assertion: assertion };
    expect((await exchange(authz, user.accessToken, params)).status).toBe(200);
    expect((await exchange(authz, user.accessToken, params)).body.error).toBe('invalid_client');

    const wrongAud = await clientAssertion(authz.agent.privateJwk, 'calendar-agent', 'http://127.0.0.1:1');
    expect((await exchange(authz, user.accessToken, { client_assertion: wrongAud })).body.error).toBe('invalid_client');
    const longLived = await clientAssertion(authz.agent.privateJwk, 'calendar-agent', authz.issuer, { expSec: 3600 });
    expect((await exchange(authz, user.accessToken, { client_assertion: longLived })).body.error).toBe('invalid_client');
  });

  it('a subject token that is not this server’s, or is tampered → invalid_request', async () => {
    const [h, p, s] = user.accessToken.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const widened = Buffer.from(JSON.stringify({ ...claims, scope: 'slots:find admin' })).toString('base64url');
    expect((await exchange(authz, `${h}.${widened}.${s}`)).body.error).toBe('invalid_request');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.`;
    expect((await exchange(authz, none)).body.error).toBe('invalid_request');
    expect((await exchange(authz, 'not-a-token')).body.error).toBe('invalid_request');
  });

  it('after the user’s delegation is revoked → invalid_request', async () => {
    const fresh = await obtainTokens(authz);
    expect((await exchange(authz, fresh.accessToken)).status).toBe(200);
    await authz.store.revokeGrant(String(decodeJwt(fresh.accessToken).grant_id), Date.now(), 'test');
    const refused = await exchange(authz, fresh.accessToken);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toBe('invalid_request');
    expect(String(refused.body.error_description)).toMatch(/revoked|ended/);
  });

  it('an actor_token or another requested token type → invalid_request', async () => {
    expect((await exchange(authz, user.accessToken, { actor_token: 'x', actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' })).body.error).toBe('invalid_request');
    expect((await exchange(authz, user.accessToken, { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' })).body.error).toBe('invalid_request');
  });
});

// Found in review (audit-trail): a registered agent asking for more than it was delegated was refused, and nothing
// was recorded. Now one token_exchange_refused record per subject token, error code and minute (exchange-refusals.ts).
describe('refused exchanges are on the audit log, boundedly', () => {
  const db = () => ({ paths: { db: join(authz.home, 'delegate.db') } });
  const refusals = async (grant: string) => (await authz.store.listAudit({ grant })).filter((r) => r.event === 'token_exchange_refused');

  it('a wider scope: 400 invalid_scope and one record naming calendar-agent ← client ← user, the grant and what was asked', async () => {
    const mine = await obtainTokens(authz);
    const { grant_id: grant, jti, sub } = decodeJwt(mine.accessToken) as { grant_id: string; jti: string; sub: string };
    const { result: res, changed } = await stateChangedBy(db(), () => exchange(authz, mine.accessToken, { scope: 'freebusy:read admin' }));
    expect([res.status, res.body.error]).toEqual([400, 'invalid_scope']);
    expect(changed).toEqual(['audit_log', 'used_once']);
    const [record, ...more] = await refusals(grant);
    expect(more).toEqual([]);
    expect(record).toMatchObject({ user: sub, client: 'calendar-agent', grant, resource: authz.calendarUrl, actors: ['calendar-agent', mine.clientId, sub] });
    expect(record!.detail).toMatchObject({ error: 'invalid_scope', subject_jti: jti, asked: { scope: 'freebusy:read admin', resource: authz.calendarUrl } });
    // Never the token.
    expect(JSON.stringify(record)).not.toContain(mine.accessToken.split('.')[2]);
    expect((await authz.store.verifyAudit()).ok).toBe(true);
  });

  it('repeats within a minute are not recorded again; another refusal of the same token is, once', async () => {
    const mine = await obtainTokens(authz);
    const grant = String(decodeJwt(mine.accessToken).grant_id);
    for (let i = 0; i < 5; i++) {
      const { result: res, changed } = await stateChangedBy(db(), () => exchange(authz, mine.accessToken, { scope: 'freebusy:read admin' }));
      expect([res.status, res.body.error]).toEqual([400, 'invalid_scope']);
      expect(changed).toEqual(i === 0 ? ['audit_log', 'used_once'] : ['used_once']);
    }
    const wider = JSON.stringify([{ type: 'calendar', locations: [authz.calendarUrl], actions: ['freebusy:read'], lookahead_days: 365 }]);
    for (let i = 0; i < 3; i++) {
      expect((await exchange(authz, mine.accessToken, { authorization_details: wider })).body.error).toBe('invalid_authorization_details');
      expect((await exchange(authz, mine.accessToken, { resource: authz.agentUrl })).body.error).toBe('invalid_target');
    }
    expect((await refusals(grant)).map((r) => r.detail.error)).toEqual(['invalid_scope', 'invalid_authorization_details', 'invalid_target']);
  });

  // Found in review (s30attack): the key was the subject token and error code alone, so one agent's refusal hid another
  // agent's attempt on the same token for a minute: no record named the second agent.
  it('the same refusal of one token by two agents: a record for each, naming it', async () => {
    await registerTestAgent(authz, 'helper-refused', 'http://127.0.0.1:9/helper-refused');
    const other = await registerTestAgent(authz, 'other-refused', 'http://127.0.0.1:9/other-refused');
    const mine = await tokensWithDepth(1);
    const grant = String(decodeJwt(mine.accessToken).grant_id);
    // calendar-agent: a hop beyond the grant's depth; the other agent: a token issued for another resource. Both invalid_request.
    expect((await exchange(authz, mine.accessToken, { may_act: 'helper-refused' })).body.error).toBe('invalid_request');
    for (let i = 0; i < 2; i++) expect((await exchange(authz, mine.accessToken, {}, other)).body.error).toBe('invalid_request');
    const records = await refusals(grant);
    expect(records.map((r) => [r.client, r.detail.error])).toEqual([['calendar-agent', 'invalid_request'], ['other-refused', 'invalid_request']]);
  });

  it('a revoked subject token: 400 invalid_request, recorded once', async () => {
    const mine = await obtainTokens(authz);
    const grant = String(decodeJwt(mine.accessToken).grant_id);
    expect((await postForm(`${authz.issuer}/revoke`, { token: mine.accessToken, client_id: mine.clientId })).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await exchange(authz, mine.accessToken)).body.error).toBe('invalid_request');
    const records = await refusals(grant);
    expect(records.map((r) => [r.detail.error, r.detail.reason])).toEqual([['invalid_request', 'The subject token has been revoked.']]);
  });

  it('a subject token that does not verify is not recorded (nothing to attribute it to): only the assertion is spent', async () => {
    const forged = `${user.accessToken.slice(0, -4)}AAAA`;
    const { result: res, changed } = await stateChangedBy(db(), () => exchange(authz, forged));
    expect([res.status, res.body.error]).toEqual([400, 'invalid_request']);
    expect(changed).toEqual(['used_once']);
  });
});
