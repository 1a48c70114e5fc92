// Token exchange (RFC 8693) from outside: what the agent gets, and every way
// of asking for more than the delegation allows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { es256Key, registerTestAgent, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postForm } from '../support/oauth-flow.js';
import { clientAssertion, decodeJwt, exchange, obtainTokens, type UserTokens } from './helpers.js';

let authz: TestAuthz;
let user: UserTokens;
beforeAll(async () => {
  authz = await startTestAuthz();
  user = await obtainTokens(authz);
});
afterAll(async () => authz.close());

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
    const hop1 = await exchange(authz, user.accessToken, { may_act: 'sub-agent' });
    expect(hop1.status, JSON.stringify(hop1.body)).toBe(200);
    expect(decodeJwt(String(hop1.body.access_token)).may_act).toEqual({ sub: 'sub-agent' });
    // Only the agent it was handed to may exchange it.
    expect((await exchange(authz, String(hop1.body.access_token), {}, third)).body.error).toBe('invalid_request');
    const hop2 = await exchange(authz, String(hop1.body.access_token), { may_act: 'third-agent' }, sub);
    expect(hop2.status, JSON.stringify(hop2.body)).toBe(200);
    expect(decodeJwt(String(hop2.body.access_token)).act).toEqual({ sub: 'sub-agent', act: { sub: 'calendar-agent', act: { sub: user.clientId } } });
    const hop3 = await exchange(authz, String(hop2.body.access_token), {}, third);
    expect(hop3.body.error).toBe('invalid_request');
    expect(String(hop3.body.error_description)).toMatch(/at most 2 hops/);
    const events = (await authz.store.listAudit({ grant: String(decodeJwt(user.accessToken).grant_id) })).filter((r) => r.event === 'token_exchanged');
    expect(events.at(-1)!.actors).toEqual(['sub-agent', 'calendar-agent', user.clientId, authz.ownerId]);
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
