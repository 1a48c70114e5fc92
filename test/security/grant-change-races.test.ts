// A grant revoked, or narrowed on the consent page, while /token signs a token
// under it. Found in review (against real servers, as races): a code redeemed
// as `delegate grants revoke` ran got a live token that nothing refused for
// its 10 minutes (the grant was read only before the token was signed, and left
// the revocation list 1 ms after its revocation, having no token on record
// yet); a refresh racing a narrowing (30 days ahead down to 7) got a token with
// the old 30 days that the narrowing had not revoked. Here the change is made
// deterministically in that window: a pass-through wrapper of the store's
// recording step (redeemAuthCode, rotateRefreshToken) makes the change exactly
// as the CLI or the consent page does, then lets the step run. At the end: a
// device polling again while its first poll redeems the code (regress21e).
import { decodeJwt, importJWK, SignJWT, type CryptoKey } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { GrantRecord } from '../../src/store/index.js';
import { initializeBody, mcpHeaders, rawRequest } from '../agent/http.js';
import { postForm } from '../support/oauth-flow.js';
import { runCli } from '../../src/cli/program.js';
import { setTokens, TokenCache } from '../../src/client/cache.js';
import { fakeIo } from '../cli/fake-io.js';
import {
  approvedDevice,
  changeBefore,
  expectInvalidToken,
  grantOf,
  issuerSigningKey,
  ownerCode,
  queryRows,
  redeemCode,
  refusedSoon,
  startStack,
  userTokens,
  type RecordingStep,
  type Stack,
  type UserTokens,
} from './stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack?.close());
// A test that failed before its change ran leaves the store as it found it.
const restores: Array<() => void> = [];
afterEach(() => restores.splice(0).forEach((restore) => restore()));

const atAgent = (token: string) => rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(token), body: initializeBody });

/** The grant narrowed before each of the two next calls of the store's `step` (30 days to 7, then to 5): changed at both readings. */
function narrowedAtBothReadings(step: RecordingStep, grant: GrantRecord): { ran: () => boolean } {
  return changeBefore(
    stack.store,
    step,
    restores,
    () => narrowAsTheConsentPage(grant, 7),
    async () => narrowAsTheConsentPage((await stack.store.grantById(grant.id))!, 5),
  );
}

/** `delegate grants revoke`, as src/cli/commands/grants.ts calls the store. */
function revokeAsTheCli(grant: GrantRecord): Promise<boolean> {
  return stack.store.revokeGrant(grant.id, Date.now(), 'revoked from the command line', {
    event: 'grant_revoked',
    user: grant.userId,
    client: grant.clientId,
    grant: grant.id,
    resource: grant.resource,
    detail: { by: 'cli' },
  });
}

/** A consent that narrows the grant to `days` ahead, as src/authz/consent.ts calls the store. */
function narrowAsTheConsentPage(grant: GrantRecord, days: number): Promise<number> {
  const narrowed = { ...grant, authorizationDetails: grant.authorizationDetails.map((d) => ({ ...d, lookahead_days: days })) };
  const now = Date.now();
  return stack.store.updateGrant(narrowed, now, {
    now,
    event: (tokensRevoked) => ({ event: 'consent', user: grant.userId, client: grant.clientId, grant: grant.id, resource: grant.resource, detail: { decision: 'approved', narrowed: true, tokens_revoked: tokensRevoked } }),
  });
}

const tokensOf = (grantId: string) => queryRows(stack, 'SELECT jti, revoked_at FROM issued_tokens WHERE grant_id = ?', grantId);
const refreshTokensOf = (grantId: string) => queryRows(stack, 'SELECT token_hash FROM refresh_tokens WHERE grant_id = ?', grantId);

/** A token for the grant signed with the AS's key as /token signs one: what a token signed while the grant was revoked would be. */
async function signedFor(grant: GrantRecord): Promise<string> {
  const { kid, privateJwk } = await issuerSigningKey(stack);
  const iat = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: stack.issuer,
    sub: grant.userId,
    aud: stack.agentUrl,
    client_id: grant.clientId,
    scope: grant.scope,
    exp: iat + 600,
    iat,
    jti: `at_${crypto.randomUUID()}`,
    grant_id: grant.id,
    ...(grant.authorizationDetails.length > 0 ? { authorization_details: grant.authorizationDetails } : {}),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
    .sign((await importJWK(privateJwk, 'ES256')) as CryptoKey);
}

describe('a grant revoked (delegate grants revoke) while a code is redeemed', () => {
  it('answers 400 invalid_grant and records no token; the grant stays on the revocation list as long as a token signed then would live, and CalendarAgent refuses one', async () => {
    const code = await ownerCode(stack);
    const grant = await grantOf(stack, code.clientId);
    // The control: a token signed for the grant as /token signs one is accepted while the grant stands.
    const inFlight = await signedFor(grant);
    expect((await atAgent(inFlight)).status).toBe(200);

    const hook = changeBefore(stack.store, 'redeemAuthCode', restores, () => revokeAsTheCli(grant));
    const res = await redeemCode(stack, code);
    expect(hook.ran()).toBe(true);
    expect([res.status, res.body.error]).toEqual([400, 'invalid_grant']);
    expect(res.body.access_token).toBeUndefined();
    expect(tokensOf(grant.id)).toEqual([]);
    expect(refreshTokensOf(grant.id)).toEqual([]);

    // The grant is listed until every token the AS could have signed for it when it was revoked has expired.
    const list = (await (await fetch(`${stack.issuer}/revocations?since=0`)).json()) as { grants: string[]; expires_at: Record<string, number> };
    expect(list.grants).toContain(grant.id);
    expect(list.expires_at[grant.id]).toBeGreaterThanOrEqual(Number(decodeJwt(inFlight).exp));
    expectInvalidToken(await refusedSoon(() => atAgent(inFlight)), 'agent, a token of the grant signed as it was revoked');
  });

  it('the device flow’s poll, which redeems its code the same way, is refused alike', async () => {
    const { grant, poll } = await approvedDevice(stack);
    const hook = changeBefore(stack.store, 'redeemAuthCode', restores, () => revokeAsTheCli(grant));
    const res = await poll();
    expect(hook.ran(), JSON.stringify(res.body)).toBe(true);
    expect([res.status, res.body.error]).toEqual([400, 'invalid_grant']);
    expect(res.body.access_token).toBeUndefined();
    expect(tokensOf(grant.id)).toEqual([]);
    expect(refreshTokensOf(grant.id)).toEqual([]);
  });
});

describe('a grant narrowed on the consent page (30 days ahead to 7) while a token is signed under it', () => {
  it('a refresh gets a token under the narrowed grant (7 days), which stands; nothing carrying 30 days is recorded', async () => {
    const user = await userTokens(stack);
    const grant = await grantOf(stack, user.clientId);
    expect(grant.authorizationDetails).toEqual([expect.objectContaining({ lookahead_days: 30 })]);

    const hook = changeBefore(stack.store, 'rotateRefreshToken', restores, () => narrowAsTheConsentPage(grant, 7));
    const res = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: user.refreshToken, client_id: user.clientId });
    expect(hook.ran()).toBe(true);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const token = String(res.body.access_token);
    expect(decodeJwt(token).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 7 })]);
    expect(res.body.authorization_details).toEqual([expect.objectContaining({ lookahead_days: 7 })]);
    // On record: the first token, revoked by the narrowing, and the new one, standing; no other.
    const rows = tokensOf(grant.id);
    expect(rows).toEqual(
      expect.arrayContaining([
        { jti: decodeJwt(user.accessToken).jti, revoked_at: expect.any(Number) },
        { jti: decodeJwt(token).jti, revoked_at: null },
      ]),
    );
    expect(rows).toHaveLength(2);
    expect((await atAgent(token)).status).toBe(200);
    expectInvalidToken(await refusedSoon(() => atAgent(user.accessToken)), 'agent, the token from before the narrowing');
    // The presented refresh token was rotated once: the new one refreshes, under 7 days.
    const again = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(res.body.refresh_token), client_id: user.clientId });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(decodeJwt(String(again.body.access_token)).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 7 })]);
  });

  it('a code redeemed as the grant is narrowed gets a token under the narrowed grant (7 days), which stands', async () => {
    const code = await ownerCode(stack);
    const grant = await grantOf(stack, code.clientId);
    expect(grant.authorizationDetails).toEqual([expect.objectContaining({ lookahead_days: 30 })]);

    const hook = changeBefore(stack.store, 'redeemAuthCode', restores, () => narrowAsTheConsentPage(grant, 7));
    const res = await redeemCode(stack, code);
    expect(hook.ran()).toBe(true);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const token = String(res.body.access_token);
    expect(decodeJwt(token).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 7 })]);
    expect(tokensOf(grant.id)).toEqual([{ jti: decodeJwt(token).jti, revoked_at: null }]);
    expect((await atAgent(token)).status).toBe(200);
  });

  it('a grant narrowed again at the second reading too: 500 server_error (no invalid_grant: the sign-in has not ended), nothing rotated or recorded, and the refresh token still refreshes', async () => {
    const user = await userTokens(stack);
    const grant = await grantOf(stack, user.clientId);
    const hook = narrowedAtBothReadings('rotateRefreshToken', grant);
    const res = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: user.refreshToken, client_id: user.clientId });
    expect(hook.ran()).toBe(true);
    expect([res.status, res.body.error, res.body.error_description]).toEqual([500, 'server_error', 'The delegation changed while this refresh was carried out; try again.']);
    expect(res.body.access_token).toBeUndefined();
    expect(tokensOf(grant.id)).toEqual([{ jti: decodeJwt(user.accessToken).jti, revoked_at: expect.any(Number) }]);
    expect(refreshTokensOf(grant.id)).toHaveLength(1);
    const again = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: user.refreshToken, client_id: user.clientId });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(decodeJwt(String(again.body.access_token)).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 5 })]);
  });

  it('a code whose grant is narrowed again at the second reading too: 500 server_error "try again" (no invalid_grant: the code is not spent), nothing recorded, and the same request then gets tokens, once', async () => {
    const code = await ownerCode(stack);
    const grant = await grantOf(stack, code.clientId);
    const hook = narrowedAtBothReadings('redeemAuthCode', grant);
    const res = await redeemCode(stack, code);
    expect(hook.ran()).toBe(true);
    expect([res.status, res.body.error, res.body.error_description]).toEqual([500, 'server_error', 'The delegation changed while this code was redeemed; try again.']);
    expect(res.body.access_token).toBeUndefined();
    expect(tokensOf(grant.id)).toEqual([]);
    expect(refreshTokensOf(grant.id)).toEqual([]);
    expect(queryRows(stack, 'SELECT used_at FROM auth_codes WHERE grant_id = ?', grant.id)).toEqual([{ used_at: null }]);

    const again = await redeemCode(stack, code);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    const token = String(again.body.access_token);
    expect(decodeJwt(token).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 5 })]);
    expect((await atAgent(token)).status).toBe(200);
    // Still single-use (RFC 6749 §4.1.2): a third presentation is a replay, and ends what the second got.
    const third = await redeemCode(stack, code);
    expect([third.status, third.body.error]).toEqual([400, 'invalid_grant']);
  });

  it('a code whose grant is narrowed at the first reading and revoked before the second: invalid_grant, the delegation ended', async () => {
    const code = await ownerCode(stack);
    const grant = await grantOf(stack, code.clientId);
    const hook = changeBefore(
      stack.store,
      'redeemAuthCode',
      restores,
      () => narrowAsTheConsentPage(grant, 7),
      async () => revokeAsTheCli((await stack.store.grantById(grant.id))!),
    );
    const res = await redeemCode(stack, code);
    expect(hook.ran()).toBe(true);
    expect([res.status, res.body.error, res.body.error_description]).toEqual([400, 'invalid_grant', 'The delegation behind this code has ended.']);
    expect(tokensOf(grant.id)).toEqual([]);
  });

  it('the device’s poll whose grant is narrowed at both readings: 500 server_error "try again", and its next poll, after the interval, gets the tokens (found in review, s21: invalid_grant, and the device request was spent)', { timeout: 20_000 }, async () => {
    const { grant, poll } = await approvedDevice(stack);
    const hook = narrowedAtBothReadings('redeemAuthCode', grant);
    const res = await poll();
    expect(hook.ran()).toBe(true);
    expect([res.status, res.body.error, res.body.error_description]).toEqual([500, 'server_error', 'The delegation changed while this code was redeemed; try again.']);
    expect(tokensOf(grant.id)).toEqual([]);
    expect(refreshTokensOf(grant.id)).toEqual([]);

    // RFC 8628 §3.5: the device waits its interval (5 s) between polls.
    await new Promise((resolve) => setTimeout(resolve, 5_100));
    const again = await poll();
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(decodeJwt(String(again.body.access_token)).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 5 })]);
  });

  it('the CLI refreshing then (`delegate token`) keeps its sign-in: a failure it says as one, no "delegation ended" note, and the next run refreshes. Found in review: the invalid_grant deleted the tokens', async () => {
    const user = await userTokens(stack);
    const grant = await grantOf(stack, user.clientId);
    await signedInCli(user);
    narrowedAtBothReadings('rotateRefreshToken', grant);
    const raced = fakeIo({ DELEGATE_HOME: stack.home }, Date.now);
    expect(await runCli(['token', ...portFlags()], raced)).toBe(1);
    expect(raced.out).toBe('');
    expect(raced.err).toBe(`delegate: Could not refresh the access token at ${stack.issuer}: server_error: The delegation changed while this refresh was carried out; try again.\n`);
    const cached = await cliCache().read();
    expect(cached.ended).toBeUndefined();
    expect(cached.tokens[stack.issuer]?.[stack.agentUrl]?.refresh_token).toBe(user.refreshToken);

    const again = fakeIo({ DELEGATE_HOME: stack.home }, Date.now);
    expect(await runCli(['token', ...portFlags()], again), again.err).toBe(0);
    expect(decodeJwt(again.out.trim()).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 5 })]);
  });
});

const portFlags = () => ['--auth-port', String(stack.ports.auth), '--calendar-port', String(stack.ports.calendar), '--agent-port', String(stack.ports.agent)];
const cliCache = () => new TokenCache({ files: stack.paths, now: Date.now });

/** The CLI's token cache in the stack's data directory as a sign-in leaves it, with the user's tokens, their access token expired. */
async function signedInCli(user: UserTokens): Promise<void> {
  const metadata = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
  await cliCache().update((data) => {
    data.discovery[stack.agentUrl] = { authorizationServerUrl: stack.issuer, authorizationServerMetadata: metadata } as never;
    data.clients[stack.issuer] = { client_id: user.clientId, token_endpoint_auth_method: 'none', issuer: stack.issuer } as never;
    const obtained = Date.now() - 700_000;
    setTokens(data, stack.agentUrl, { access_token: user.accessToken, token_type: 'Bearer', refresh_token: user.refreshToken, expires_at: obtained + 600_000, issuer: stack.issuer, resource: stack.agentUrl, obtained_at: obtained });
  });
}

// A device's second poll while its first poll's redemption is still running.
// Found in review (regress21e): with the redemption held 5.6 s, a poll after
// the 5 s interval redeemed the code (200, tokens), and the first poll's
// redemption then found the code spent and revoked the tokens just issued as
// for a replayed code (RFC 6749 §4.1.2). A device code's authorization code is
// redeemed by the server alone, with a PKCE verifier only it holds, so a
// spent one is the same device polling again: it is answered "used already"
// (RFC 8628 §3.5 invalid_grant) and ends nothing. The first poll is held
// here, at the store's reading of the code or at its recording of the tokens,
// until the second poll has its answer: the two orders the race can take.

/** RFC 8628 §3.5: the device waits its interval (5 s) between polls. */
const INTERVAL_MS = 5_100;

describe('a device polling again while its first poll redeems the code (RFC 8628 §3.4)', () => {
  it.each(['authCodeByHash', 'redeemAuthCode'] as const)(
    'the first poll held at %s: the second gets the tokens, the first "used already", and nothing is revoked',
    { timeout: 30_000 },
    async (step) => {
      const { clientId, grant, poll } = await approvedDevice(stack);
      let second: Awaited<ReturnType<typeof poll>> | undefined;
      const hook = changeBefore(stack.store, step, restores, async () => {
        await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
        second = await poll();
      });
      const first = await poll();
      expect(hook.ran()).toBe(true);
      expect([second?.status, second?.body.error]).toEqual([200, undefined]);
      expect([first.status, first.body.error, first.body.error_description]).toEqual([400, 'invalid_grant', 'The device code was used already.']);

      // The tokens the second poll got stand: nothing revoked, no replay on record, and they work.
      expect(queryRows(stack, 'SELECT revoked_at FROM token_families WHERE grant_id = ?', grant.id)).toEqual([{ revoked_at: null }]);
      expect(queryRows(stack, 'SELECT revoked_at FROM issued_tokens WHERE grant_id = ?', grant.id)).toEqual([{ revoked_at: null }]);
      expect((await stack.store.listAudit()).filter((r) => r.event === 'code_replay' && r.grant === grant.id)).toEqual([]);
      const access = String(second!.body.access_token);
      expect(decodeJwt(access).grant_id).toBe(grant.id);
      expect((await atAgent(access)).status).toBe(200);
      const refreshed = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(second!.body.refresh_token), client_id: clientId });
      expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    },
  );
});
