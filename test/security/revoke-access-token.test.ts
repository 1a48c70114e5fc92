// RFC 7009 on an access token, from outside, against the three servers built as
// the CLI builds them. Found in review (s23deleg): a client that revoked its
// access token ended that token and the ones exchanged from it, while its
// refresh token went on renewing the delegation and `grants list` showed it
// active, though DESIGN.md (Tokens) has "RFC 7009 on any of its tokens" end
// the grant. Now the client the grant was given to ends it with either token;
// another client's attempt changes nothing; and the agent giving up a token it
// exchanged ends that token alone (src/authz/revoke.ts says why).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { postForm, registerPublicClient } from '../support/oauth-flow.js';
import { runCli } from '../e2e/run.js';
import { JWT_BEARER, agentAssertion, atAgent, atCalendar, exchangeAsAgent, expectInvalidToken, refusedSoon, startStack, stateChangedBy, userTokens, type Stack, type UserTokens } from './stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack?.close());

const refresh = (user: UserTokens) => postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: user.refreshToken, client_id: user.clientId });

/** The grant's status as `delegate grants list --all --json` (the built CLI, on this data directory) shows it. */
async function listedStatus(grantId: string): Promise<string | undefined> {
  const run = await runCli(['grants', 'list', '--all', '--json'], stack.home);
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as Array<{ id: string; status: string }>).find((g) => g.id === grantId)?.status;
}

/** The user's tokens and the calendar token CalendarAgent exchanged from them, each checked to work. */
async function delegationInUse(): Promise<{ user: UserTokens; calendarToken: string }> {
  const user = await userTokens(stack);
  const exchanged = await exchangeAsAgent(stack, user.accessToken);
  expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
  const calendarToken = String(exchanged.body.access_token);
  expect((await atAgent(stack, user.accessToken)).status).toBe(200);
  expect((await atCalendar(stack, calendarToken)).status).toBe(200);
  return { user, calendarToken };
}

describe('RFC 7009 on the access token of a grant, by the client it was issued to', () => {
  it('ends the grant: refresh is invalid_grant, grants list shows it revoked, both resource servers refuse every token derived from it', async () => {
    const { user, calendarToken } = await delegationInUse();
    expect(await listedStatus(user.grantId)).toBe('active');

    const res = await postForm(`${stack.issuer}/revoke`, { token: user.accessToken, token_type_hint: 'access_token', client_id: user.clientId });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');

    const renewed = await refresh(user);
    expect([renewed.status, renewed.body.error]).toEqual([400, 'invalid_grant']);
    expect(await listedStatus(user.grantId)).toBe('revoked');
    expectInvalidToken(await refusedSoon(() => atAgent(stack, user.accessToken)), 'agent');
    expectInvalidToken(await refusedSoon(() => atCalendar(stack, calendarToken)), 'calendar backend');
    expect((await exchangeAsAgent(stack, user.accessToken)).body.error).toBe('invalid_request');
    const list = (await (await fetch(`${stack.issuer}/revocations?since=0`)).json()) as { grants: string[] };
    expect(list.grants).toContain(user.grantId);
    const recorded = (await stack.store.listAudit({ grant: user.grantId })).filter((r) => r.event === 'grant_revoked');
    expect(recorded.map((r) => [r.client, r.detail])).toEqual([[user.clientId, { by: 'client', via: 'revocation endpoint', token_type: 'access_token', jti: decodeJwt(user.accessToken).jti }]]);

    // RFC 7009 §2.2: again, 200, and nothing changes.
    const { result: again, changed } = await stateChangedBy(stack, () => postForm(`${stack.issuer}/revoke`, { token: user.accessToken, client_id: user.clientId }));
    expect(again.status).toBe(200);
    expect(changed).toEqual([]);
  });

  it('another client presenting it is refused (unauthorized_client) and changes nothing; the rightful client then ends the grant', async () => {
    const { user, calendarToken } = await delegationInUse();
    const intruder = await registerPublicClient(stack.issuer);
    const { result: res, changed } = await stateChangedBy(stack, () => postForm(`${stack.issuer}/revoke`, { token: user.accessToken, client_id: intruder }));
    expect([res.status, res.body.error]).toEqual([400, 'unauthorized_client']);
    expect(changed).toEqual([]);
    expect(await listedStatus(user.grantId)).toBe('active');
    expect((await atAgent(stack, user.accessToken)).status).toBe(200);
    expect((await atCalendar(stack, calendarToken)).status).toBe(200);

    expect((await postForm(`${stack.issuer}/revoke`, { token: user.accessToken, client_id: user.clientId })).status).toBe(200);
    expect((await refresh(user)).body.error).toBe('invalid_grant');
    expect(await listedStatus(user.grantId)).toBe('revoked');
  });
});

describe('RFC 7009 on a token exchanged from a grant, by the agent it was issued to', () => {
  it('ends that token only: the calendar backend refuses it, the person’s grant and their own token stand', async () => {
    const { user, calendarToken } = await delegationInUse();
    const res = await postForm(`${stack.issuer}/revoke`, { token: calendarToken, client_assertion_type: JWT_BEARER, client_assertion: await agentAssertion(stack) });
    expect(res.status).toBe(200);
    expectInvalidToken(await refusedSoon(() => atCalendar(stack, calendarToken)), 'calendar backend');
    expect(await listedStatus(user.grantId)).toBe('active');
    expect((await atAgent(stack, user.accessToken)).status).toBe(200);
    expect((await refresh(user)).status).toBe(200);
    // A fresh exchange for the next call works: the delegation goes on.
    expect((await exchangeAsAgent(stack, user.accessToken)).status).toBe(200);
  });
});
