// The sweep deletes refresh tokens, access tokens and token families once
// nothing can use them (review "store-keys", finding 1: none was ever deleted,
// so every refresh grew the database by about 600 bytes for ever). From
// outside: a real authorization server on a loopback port whose clock the test
// moves, tokens obtained, rotated, exchanged and revoked over HTTP, and the
// server's own sweep (`Store.sweep`, which it runs every 10 minutes) called at
// the moved clock. What must survive a sweep survives it: a live family of
// another grant with its spent refresh tokens (a late replay of one still ends
// the family, RFC 9700 §4.14.2), a token exchanged from a live one, and the
// revocation list entry of a revoked token that has not expired.
import { join } from 'node:path';
import { SignJWT, decodeJwt, importJWK, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_SWEEP_BATCH } from '../../src/store/sqlite.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { exchange, obtainTokens, redeem, REDIRECT } from '../authz/helpers.js';
import { queryRows, stateChangedBy, type WithDatabase } from '../security/stack.js';

const DAY = 86_400_000;
const ROTATIONS = 50;

let offset = 0;
const clock = () => Date.now() + offset;
let authz: TestAuthz;
let db: WithDatabase;

beforeAll(async () => {
  authz = await startTestAuthz({ now: clock });
  db = { paths: { db: join(authz.home, 'delegate.db') } };
});
afterAll(async () => authz?.close());

/** A private_key_jwt assertion signed at the server's (moved) clock, as the agent would sign it then. */
async function assertionAt(as: { clientId: string; privateJwk: JWK }): Promise<string> {
  const key = (await importJWK(as.privateJwk, 'ES256')) as CryptoKey;
  const now = Math.floor(clock() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: as.privateJwk.kid })
    .setIssuer(as.clientId)
    .setSubject(as.clientId)
    .setAudience(authz.issuer)
    .setJti(crypto.randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign(key);
}

const agentAuth = async () => ({
  client_id: authz.agent.clientId,
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  client_assertion: await assertionAt(authz.agent),
});

const refresh = (refreshToken: string, clientId: string) => postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId });

/** The owner approves a new public client for 90 days (the longest choice on the consent page) and it redeems the code. */
async function ninetyDayTokens(): Promise<{ clientId: string; accessToken: string; refreshToken: string }> {
  const clientId = await registerPublicClient(authz.issuer, [REDIRECT]);
  const { verifier, challenge } = pkcePair();
  const browser = new Browser();
  const page = await signInAndOpenConsent(browser, authz.issuer, authz.ownerJwk, authorizeUrl(authz.issuer, { clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope: 'slots:find', state: 'st', challenge }));
  expect(page.status).toBe(200);
  const decision = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(page.html), expires_days: '90', decision: 'approve' });
  const code = callbackParams(decision.location ?? 'http://invalid/').get('code');
  if (!code) throw new Error(`consent gave no code: ${decision.location}`);
  const res = await redeem(authz, { clientId, code, verifier });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { clientId, accessToken: String(res.body.access_token), refreshToken: String(res.body.refresh_token) };
}

const rowsOf = (grantId: string) => ({
  refresh_tokens: queryRows(db, 'SELECT * FROM refresh_tokens WHERE grant_id = ? ORDER BY token_hash', grantId),
  issued_tokens: queryRows(db, 'SELECT * FROM issued_tokens WHERE grant_id = ? ORDER BY jti', grantId),
  token_families: queryRows(db, 'SELECT * FROM token_families WHERE grant_id = ? ORDER BY id', grantId),
});
const countsOf = (grantId: string) => Object.fromEntries(Object.entries(rowsOf(grantId)).map(([table, rows]) => [table, rows.length]));
const revocationList = async (): Promise<{ tokens: string[]; grants: string[] }> => (await (await fetch(`${authz.issuer}/revocations?since=0`)).json()) as { tokens: string[]; grants: string[] };

describe('the sweep of tokens nobody can use any more', () => {
  it('deletes a family rotated 50 times (and the token exchanged from it) once it has expired, and leaves another grant’s live family, its spent tokens and the revocation list alone', { timeout: 60_000 }, async () => {
    // Grant A (30 days, the default): redeemed, refreshed 50 times, its last access token exchanged by CalendarAgent.
    const a = await obtainTokens(authz);
    const grantA = String(decodeJwt(a.accessToken).grant_id);
    let refreshA = a.refreshToken;
    let accessA = a.accessToken;
    for (let i = 0; i < ROTATIONS; i++) {
      const res = await refresh(refreshA, a.clientId);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      refreshA = String(res.body.refresh_token);
      accessA = String(res.body.access_token);
    }
    const exchanged = await exchange(authz, accessA);
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    expect(countsOf(grantA)).toEqual({ refresh_tokens: ROTATIONS + 1, issued_tokens: ROTATIONS + 2, token_families: 1 });

    // Grant B (90 days): redeemed now, refreshed 20 days on, so its family lives until day 50; its first refresh token is spent.
    const b = await ninetyDayTokens();
    const grantB = String(decodeJwt(b.accessToken).grant_id);
    offset = 20 * DAY;
    const b2 = await refresh(b.refreshToken, b.clientId);
    expect(b2.status, JSON.stringify(b2.body)).toBe(200);

    // Day 32: everything of A expired over a day ago (its refresh tokens at day 30, with the grant); B's first refresh token too.
    offset = 32 * DAY;
    const liveB = rowsOf(grantB);
    expect(liveB.refresh_tokens).toHaveLength(2);
    await authz.store.sweep(clock());

    expect(countsOf(grantA)).toEqual({ refresh_tokens: 0, issued_tokens: 0, token_families: 0 });
    expect(queryRows(db, 'SELECT id FROM grants WHERE id = ?', grantA)).toEqual([{ id: grantA }]); // the grant stays: `delegate grants` lists it
    // B's live family is untouched, its spent and expired first refresh token with it; only its long-expired access tokens went.
    const afterB = rowsOf(grantB);
    expect(afterB.refresh_tokens).toEqual(liveB.refresh_tokens);
    expect(afterB.token_families).toEqual(liveB.token_families);
    expect(afterB.issued_tokens).toEqual([]);

    // A's refresh tokens are now unknown: invalid_grant, and nothing changes.
    const late = await stateChangedBy(db, () => refresh(refreshA, a.clientId));
    expect(late.result.status).toBe(400);
    expect(late.result.body.error).toBe('invalid_grant');
    expect(late.changed).toEqual([]);
    // An audit report about A's swept access token is refused as one about no token, and writes nothing.
    const claimsA = decodeJwt(accessA) as { sub: string; jti: string; grant_id: string; client_id: string };
    const report = await stateChangedBy(db, async () =>
      postForm(`${authz.issuer}/audit`, {
        ...(await agentAuth()),
        record: JSON.stringify({ event: 'tool_call', user: claimsA.sub, client: claimsA.client_id, grant: claimsA.grant_id, resource: authz.agentUrl, detail: { jti: claimsA.jti, tool: 'find_slot', outcome: 'ok' } }),
      }),
    );
    expect(report.result.status).toBe(400);
    expect(report.result.body.error).toBe('invalid_request');
    expect(report.result.body.error_description).toContain('names no access token');
    expect(report.changed).toEqual(['used_once']); // only the client assertion's jti is spent (RFC 7523 §3)

    // B goes on: refreshed, its new access token exchanged (the parent is looked up), then revoked with the exchanged one.
    const b3 = await refresh(String(b2.body.refresh_token), b.clientId);
    expect(b3.status, JSON.stringify(b3.body)).toBe(200);
    const accessB = String(b3.body.access_token);
    const child = await postForm(`${authz.issuer}/token`, {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: accessB,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      resource: authz.calendarUrl,
      scope: 'freebusy:read',
      ...(await agentAuth()),
    });
    expect(child.status, JSON.stringify(child.body)).toBe(200);
    const jtiB = String(decodeJwt(accessB).jti);
    const childJti = String(decodeJwt(String(child.body.access_token)).jti);
    // The agent gives up its exchanged token (RFC 7009): that token alone is revoked (its client's access token would
    // end grant B itself, as a refresh token does: test/security/revoke-access-token.test.ts).
    const revoked = await postForm(`${authz.issuer}/revoke`, { token: String(child.body.access_token), ...(await agentAuth()) });
    expect(revoked.status).toBe(200);
    expect((await revocationList()).tokens).toEqual(expect.arrayContaining([childJti]));
    expect((await revocationList()).tokens).not.toContain(jtiB);

    // A sweep a minute later: it is revoked but not expired, so the resource servers must still be told.
    offset += 60_000;
    await authz.store.sweep(clock());
    expect((await revocationList()).tokens).toEqual(expect.arrayContaining([childJti]));
    expect(queryRows(db, 'SELECT jti FROM issued_tokens WHERE jti IN (?, ?) AND revoked_at IS NOT NULL ORDER BY jti', jtiB, childJti)).toEqual([{ jti: childJti }]);

    // B's first refresh token, spent on day 20 and expired on day 30, presented again: the sweep kept it, so the replay still ends the family.
    const replay = await refresh(b.refreshToken, b.clientId);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
    expect(queryRows(db, 'SELECT revoked_reason FROM token_families WHERE grant_id = ?', grantB)).toEqual([{ revoked_reason: 'refresh token reused' }]);
    const afterReplay = await refresh(String(b3.body.refresh_token), b.clientId);
    expect(afterReplay.body.error).toBe('invalid_grant');

    // Once B's last refresh token (day 62) has expired over a day ago, its family goes too; the revocation list has let go of its tokens.
    offset = 64 * DAY;
    await authz.store.sweep(clock());
    expect(countsOf(grantB)).toEqual({ refresh_tokens: 0, issued_tokens: 0, token_families: 0 });
    expect((await revocationList()).tokens).not.toContain(childJti);
  });

  it('keeps an expired access token while a token exchanged from it is still on record, and deletes both once neither is', async () => {
    // Written straight to the store: the server never issues a child that outlives its parent, but a database from elsewhere may hold one.
    offset = 0;
    const a = await obtainTokens(authz);
    const parent = String(decodeJwt(a.accessToken).jti);
    const record = (await authz.store.issuedToken(parent))!;
    const now = clock();
    await authz.store.recordIssuedToken({ ...record, jti: 'at_sweep_child', parentJti: parent, expiresAt: now + 10 * DAY });
    await authz.store.sweep(now + 5 * DAY);
    expect(queryRows(db, 'SELECT jti FROM issued_tokens WHERE jti IN (?, ?) ORDER BY jti', parent, 'at_sweep_child').map((r) => r.jti)).toEqual(['at_sweep_child', parent].sort());
    await authz.store.sweep(now + 12 * DAY);
    expect(queryRows(db, 'SELECT jti FROM issued_tokens WHERE jti IN (?, ?)', parent, 'at_sweep_child')).toEqual([]);
  });

  // Found in review (regress16): the first sweep of a database that had kept every token deleted them all in one
  // transaction, 1.6 s with the event loop held for 600,000 rows. Now in batches, the loop free between them.
  it('works off a backlog larger than one batch in several short transactions, letting the event loop run between them', async () => {
    offset = 0;
    const a = await obtainTokens(authz);
    const record = (await authz.store.issuedToken(String(decodeJwt(a.accessToken).jti)))!;
    const now = clock();
    const backlog = TOKEN_SWEEP_BATCH * 2 + 17;
    for (let i = 0; i < backlog; i++) await authz.store.recordIssuedToken({ ...record, jti: `at_backlog_${i}`, parentJti: null, expiresAt: now - 2 * DAY });
    const seen: number[] = [];
    const watching = setImmediate(function watch() {
      seen.push(queryRows(db, "SELECT count(*) AS n FROM issued_tokens WHERE jti LIKE 'at_backlog_%'")[0]!.n as number);
    });
    try {
      await authz.store.sweep(now);
    } finally {
      clearImmediate(watching);
    }
    expect(queryRows(db, "SELECT count(*) AS n FROM issued_tokens WHERE jti LIKE 'at_backlog_%'")[0]!.n).toBe(0);
    // The watcher ran while the sweep was under way, between its batches: part of the backlog was gone, part not.
    expect(seen).toHaveLength(1);
    expect(seen[0]!).toBeGreaterThan(0);
    expect(seen[0]!).toBeLessThan(backlog);
  });
});
