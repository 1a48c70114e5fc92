// The token endpoint from outside: codes, PKCE, refresh rotation and replay.
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { hashSecret } from '../../src/authz/crypto.js';
import { createLogger } from '../../src/http/logging.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, postJson, signInAndOpenConsent } from '../support/oauth-flow.js';
import { openAsOwner, ownerApproves } from '../support/owner-flow.js';
import { REDIRECT, clientAssertion, decodeJwt, exchange, exchangedFromNewGrant, obtainCode, obtainTokens, redeem, revokeAsAgent } from './helpers.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

describe('authorization_code grant', () => {
  it('issues an RFC 9068 access token for the agent and a refresh token', async () => {
    const tokens = await obtainTokens(authz);
    expect(tokens.body.token_type).toBe('Bearer');
    expect(tokens.body.expires_in).toBeLessThanOrEqual(600);
    expect(tokens.body.scope).toBe('slots:find');
    expect(tokens.refreshToken).toMatch(/^dlg_rt_/);
    const header = decodeProtectedHeader(tokens.accessToken);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    const claims = decodeJwt(tokens.accessToken);
    expect(claims).toMatchObject({ iss: authz.issuer, aud: authz.agentUrl, client_id: tokens.clientId, scope: 'slots:find', sub: authz.ownerId });
    expect(typeof claims.jti).toBe('string');
    expect(typeof claims.grant_id).toBe('string');
    expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(600);
  });

  it('signs access tokens, from the code and the refresh grant, that verify against the published JWKS with exactly alg, typ and kid in their header', async () => {
    const tokens = await obtainTokens(authz);
    const refreshed = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
    expect(refreshed.status).toBe(200);
    const jwks = createLocalJWKSet((await (await fetch(`${authz.issuer}/.well-known/jwks.json`)).json()) as JSONWebKeySet);
    for (const token of [tokens.accessToken, String(refreshed.body.access_token)]) {
      const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: authz.issuer, audience: authz.agentUrl, typ: 'at+jwt', algorithms: ['ES256'] });
      expect(protectedHeader).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: expect.any(String) });
      expect(payload).toMatchObject({ client_id: tokens.clientId, scope: 'slots:find', sub: authz.ownerId });
    }
  });

  it('answers with Cache-Control: no-store', async () => {
    const code = await obtainCode(authz);
    const res = await redeem(authz, code);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('refuses a wrong PKCE verifier, and a missing one', async () => {
    const code = await obtainCode(authz);
    const wrong = await redeem(authz, { ...code, verifier: 'x'.repeat(43) });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toBe('invalid_grant');
    const missing = await postForm(`${authz.issuer}/token`, { grant_type: 'authorization_code', code: code.code, redirect_uri: REDIRECT, client_id: code.clientId });
    expect(missing.body.error).toBe('invalid_grant');
    // The code was not spent by the failed attempts: the right verifier still works.
    expect((await redeem(authz, code)).status).toBe(200);
  });

  it('refuses a redirect_uri other than the one of the authorization request', async () => {
    const code = await obtainCode(authz);
    const res = await redeem(authz, code, { redirect_uri: 'http://127.0.0.1:43124/callback' });
    expect(res.body.error).toBe('invalid_grant');
  });

  it('refuses a code presented by another client', async () => {
    const code = await obtainCode(authz);
    const other = await obtainCode(authz);
    const res = await redeem(authz, { ...code, clientId: other.clientId });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  });

  it('refuses a resource other than the authorized one', async () => {
    const code = await obtainCode(authz);
    const res = await redeem(authz, code, { resource: authz.calendarUrl });
    expect(res.body.error).toBe('invalid_target');
  });

  it('refuses a replayed code and revokes what it issued', async () => {
    const code = await obtainCode(authz);
    const first = await redeem(authz, code);
    expect(first.status).toBe(200);
    const replay = await redeem(authz, code);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
    // The refresh token of the first redemption is dead...
    const refresh = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(first.body.refresh_token), client_id: code.clientId });
    expect(refresh.body.error).toBe('invalid_grant');
    // ...and so is its access token, at the exchange (a revoked subject token: RFC 8693 §2.2.2).
    const ex = await exchange(authz, String(first.body.access_token));
    expect(ex.body.error).toBe('invalid_request');
  });

  it('records a replay that raced the first redemption: read as unused, found used in the redemption’s transaction (found in review: 4 concurrent redemptions of one code revoked the family with no code_replay record)', async () => {
    const code = await obtainCode(authz);
    const first = await redeem(authz, code);
    expect(first.status).toBe(200);
    // The racing request read the code before the first redemption committed.
    const store = authz.store as unknown as Record<string, unknown>;
    const original = store.authCodeByHash;
    const read = authz.store.authCodeByHash.bind(authz.store);
    store.authCodeByHash = async (hash: string) => {
      const found = await read(hash);
      return found && { ...found, usedAt: null };
    };
    const before = (await authz.store.listAudit()).length;
    try {
      const replay = await redeem(authz, code);
      expect([replay.status, replay.body.error]).toEqual([400, 'invalid_grant']);
    } finally {
      store.authCodeByHash = original;
    }
    const grantId = String(decodeJwt(String(first.body.access_token)).grant_id);
    const added = (await authz.store.listAudit()).slice(before);
    expect(added).toEqual([expect.objectContaining({ event: 'code_replay', client: code.clientId, grant: grantId, detail: { family_revoked: expect.any(String) } })]);
    const refresh = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(first.body.refresh_token), client_id: code.clientId });
    expect(refresh.body.error).toBe('invalid_grant');
  });

  // RFC 8707 §2: several resource parameters may be sent; a target the server will not issue for is invalid_target.
  it('answers several resource parameters with invalid_target, for a code and for a refresh token, spending neither', async () => {
    const code = await obtainCode(authz);
    const several = await redeem(authz, code, { resource: [authz.agentUrl, authz.calendarUrl] });
    expect([several.status, several.body.error]).toEqual([400, 'invalid_target']);
    expect(String(several.body.error_description)).toMatch(/one resource/);
    const tokens = await redeem(authz, code);
    expect(tokens.status).toBe(200);
    const refresh = (resource?: string[]) => postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(tokens.body.refresh_token), client_id: code.clientId, resource });
    expect((await refresh([authz.agentUrl, authz.agentUrl])).body.error).toBe('invalid_target');
    expect((await refresh()).status).toBe(200);
  });

  it('refuses an unknown code and an unknown client', async () => {
    const code = await obtainCode(authz);
    expect((await redeem(authz, { ...code, code: 'nope' })).body.error).toBe('invalid_grant');
    const res = await redeem(authz, { ...code, clientId: 'cli_unknown' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client');
  });

  it('refuses a JSON body, a repeated parameter and an unknown grant type', async () => {
    const code = await obtainCode(authz);
    const json = await fetch(`${authz.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'authorization_code', code: code.code }),
    });
    expect(json.status).toBe(400);
    expect(((await json.json()) as { error: string }).error).toBe('invalid_request');
    const repeated = await fetch(`${authz.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `grant_type=authorization_code&code=${code.code}&code=${code.code}&client_id=${code.clientId}`,
    });
    expect(((await repeated.json()) as { error: string }).error).toBe('invalid_request');
    const unknown = await postForm(`${authz.issuer}/token`, { grant_type: 'password', client_id: code.clientId, username: 'a', password: 'b' });
    expect(unknown.body.error).toBe('unsupported_grant_type');
  });

  // Defence in depth, as for the refresh grant (RFC 6749 §6): a code mints under the grant as it stands when it is
  // redeemed, not under the scope recorded when it was approved. No command or page narrows a grant's scope today (a
  // consent only adds to it), so the grant row is narrowed through the Store API between approval and redemption.
  // Found in review (s18): the code minted its recorded scope whatever the grant had become.
  it('mints under the grant’s current scope when the grant was narrowed between approval and redemption, and refuses a code the grant holds nothing of', async () => {
    const wide = await ownerApproves(authz, { redirectUri: REDIRECT, scope: 'slots:find busy:read' });
    const code = (await authz.store.authCodeByHash(hashSecret(wide.code)))!;
    expect(code.scope).toBe('slots:find busy:read');
    const grant = (await authz.store.grantById(code.grantId))!;
    await authz.store.updateGrant({ ...grant, scope: 'slots:find' }, Date.now());

    const tokens = await redeem(authz, wide);
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    expect(tokens.body.scope).toBe('slots:find');
    expect(decodeJwt(String(tokens.body.access_token)).scope).toBe('slots:find');
    // The refresh token too: it was never the grant's to give (a later widening gives it back only through a consent).
    expect((await authz.store.refreshTokenByHash(hashSecret(String(tokens.body.refresh_token))))?.scope).toBe('slots:find');
    const issued = (await authz.store.listAudit()).filter((r) => r.event === 'token_issued' && r.client === wide.clientId);
    expect(issued.map((r) => r.detail)).toEqual([expect.objectContaining({ grant_type: 'authorization_code', scope: 'slots:find' })]);

    // A grant left with none of the code's scope: invalid_grant, nothing issued or recorded.
    const narrow = await ownerApproves(authz, { redirectUri: REDIRECT, scope: 'slots:find' });
    const narrowCode = (await authz.store.authCodeByHash(hashSecret(narrow.code)))!;
    await authz.store.updateGrant({ ...(await authz.store.grantById(narrowCode.grantId))!, scope: 'busy:read' }, Date.now());
    const none = await redeem(authz, narrow);
    expect([none.status, none.body.error]).toEqual([400, 'invalid_grant']);
    expect(none.body.access_token).toBeUndefined();
    expect((await authz.store.listAudit()).filter((r) => r.event === 'token_issued' && r.client === narrow.clientId)).toEqual([]);
  });
});

describe('a client registered without the refresh_token grant', () => {
  // RFC 7591 §2: grant_types defaults to authorization_code alone, and this server refuses such a client the
  // refresh grant (unauthorized_client); a refresh token it may not use is only a credential to steal.
  it('gets no refresh token from the code grant, and none is stored', async () => {
    const reg = await postJson(`${authz.issuer}/register`, { client_name: 'no refresh', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' });
    expect(reg.body.grant_types).toEqual(['authorization_code']);
    const clientId = String(reg.body.client_id);
    const res = await redeem(authz, await obtainCode(authz, clientId));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.access_token).toEqual(expect.any(String));
    expect(res.body).not.toHaveProperty('refresh_token');
    expect(res.body).not.toHaveProperty('refresh_token_expires_in');
    const db = new Database(join(authz.home, 'delegate.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) AS n FROM refresh_tokens WHERE client_id = ?').get(clientId)).toEqual({ n: 0 });
    } finally {
      db.close();
    }
  });
});

describe('refresh_token grant', () => {
  it('rotates the refresh token; the old one dies, and presenting it after the grace window ends the family', async () => {
    let clock = Date.now();
    const timed = await startTestAuthz({ now: () => clock });
    try {
      const tokens = await obtainTokens(timed);
      const refresh = (token: string) => postForm(`${timed.issuer}/token`, { grant_type: 'refresh_token', refresh_token: token, client_id: tokens.clientId });
      const first = await refresh(tokens.refreshToken);
      expect(first.status).toBe(200);
      expect(first.body.refresh_token).not.toBe(tokens.refreshToken);
      expect(decodeJwt(String(first.body.access_token)).grant_id).toBe(decodeJwt(tokens.accessToken).grant_id);

      clock += 6_000; // past the 5-second grace window
      const replay = await refresh(tokens.refreshToken);
      expect(replay.body.error).toBe('invalid_grant');
      expect(String(replay.body.error_description)).toMatch(/already used/);
      // Reuse detection revoked the family: the newest refresh token is dead too.
      expect((await refresh(String(first.body.refresh_token))).body.error).toBe('invalid_grant');
      const events = (await timed.store.listAudit()).map((r) => r.event);
      expect(events).toContain('refresh_replay');
    } finally {
      await timed.close();
    }
  });

  it('refuses a replay and ends its family while another client’s refresh sent at the same moment goes through', async () => {
    // Sent together, the two are likely rotated in one group commit (SqliteStore.rotateRefreshToken); each comes out as alone.
    let clock = Date.now();
    const timed = await startTestAuthz({ now: () => clock });
    try {
      const a = await obtainTokens(timed);
      const b = await obtainTokens(timed);
      const refresh = (token: string, clientId: string) => postForm(`${timed.issuer}/token`, { grant_type: 'refresh_token', refresh_token: token, client_id: clientId });
      const b1 = await refresh(b.refreshToken, b.clientId);
      expect(b1.status).toBe(200);
      clock += 6_000; // past the grace window: b's first token comes back as a replay
      const [rotated, replayed] = await Promise.all([refresh(a.refreshToken, a.clientId), refresh(b.refreshToken, b.clientId)]);
      expect(rotated.status).toBe(200);
      expect([replayed.status, replayed.body.error]).toEqual([400, 'invalid_grant']);
      expect(String(replayed.body.error_description)).toMatch(/already used/);
      expect((await refresh(String(b1.body.refresh_token), b.clientId)).body.error).toBe('invalid_grant');
      expect((await refresh(String(rotated.body.refresh_token), a.clientId)).status).toBe(200);
      const records = (await timed.store.listAudit()).filter((r) => r.event === 'refresh_replay');
      expect(records.map((r) => r.client)).toEqual([b.clientId]);
    } finally {
      await timed.close();
    }
  });

  it('logs one line for a refresh, its access line, naming the client and the grant type and no token', async () => {
    const lines: string[] = [];
    const stream = new PassThrough();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)));
    const logged = await startTestAuthz({ logger: createLogger('info', stream) });
    try {
      const tokens = await obtainTokens(logged);
      const res = await postForm(`${logged.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
      expect(res.status).toBe(200);
      await new Promise((r) => setImmediate(r));
      const own = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.reqId === res.headers.get('x-request-id'));
      expect(own).toEqual([
        expect.objectContaining({ msg: 'request completed', client: tokens.clientId, grant_type: 'refresh_token', req: expect.objectContaining({ path: '/token' }), res: { statusCode: 200 } }),
      ]);
      const text = lines.join('\n');
      for (const secret of [tokens.refreshToken, String(res.body.refresh_token), String(res.body.access_token)]) expect(text).not.toContain(secret);
    } finally {
      await logged.close();
    }
  });

  it('lets two near-simultaneous refreshes of one token both succeed without revoking the family; the one kept goes on', async () => {
    const tokens = await obtainTokens(authz);
    const refresh = (token: string) => postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: token, client_id: tokens.clientId });
    const [a, b] = await Promise.all([refresh(tokens.refreshToken), refresh(tokens.refreshToken)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.body.refresh_token).not.toBe(b.body.refresh_token);
    // The family was not revoked: the token the client kept (the last answer it saved) goes on. The other is
    // superseded by that rotation, so that two chains never both live on (test/security/refresh-grace.test.ts).
    const again = await refresh(String(b.body.refresh_token));
    expect(again.status).toBe(200);
    expect((await refresh(String(again.body.refresh_token))).status).toBe(200);
  });

  it('says which end the delegation behind a refresh token met: revoked, or expired (the CLI tells the person why their sign-in ended)', async () => {
    let clock = Date.now();
    const timed = await startTestAuthz({ now: () => clock });
    try {
      const refresh = (tokens: { refreshToken: string; clientId: string }) =>
        postForm(`${timed.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
      const revoked = await obtainTokens(timed);
      await timed.store.revokeGrant(String(decodeJwt(revoked.accessToken).grant_id), clock, 'test');
      expect((await refresh(revoked)).body).toMatchObject({ error: 'invalid_grant', error_description: 'The delegation behind this token was revoked.' });

      const expired = await obtainTokens(timed);
      const grant = await timed.store.grantById(String(decodeJwt(expired.accessToken).grant_id));
      clock = grant!.expiresAt + 1000;
      expect((await refresh(expired)).body).toMatchObject({ error: 'invalid_grant', error_description: 'The delegation behind this token has expired.' });
    } finally {
      await timed.close();
    }
  });

  it('refuses a refresh by another client without spending the token', async () => {
    const tokens = await obtainTokens(authz);
    const other = await obtainTokens(authz);
    const res = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: other.clientId });
    expect(res.body.error).toBe('invalid_grant');
    const own = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
    expect(own.status).toBe(200);
  });

  it('records each refresh on the audit log in the same transaction: when the record cannot be written, nothing is rotated', async () => {
    const tokens = await obtainTokens(authz);
    const refresh = (token: string) => postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: token, client_id: tokens.clientId });
    const first = await refresh(tokens.refreshToken);
    expect(first.status).toBe(200);
    const recorded = (await authz.store.listAudit()).filter((r) => r.event === 'token_refreshed').at(-1);
    expect(recorded?.detail).toMatchObject({ jti: decodeJwt(String(first.body.access_token)).jti, scope: 'slots:find' });
    expect(recorded?.client).toBe(tokens.clientId);

    // The audit log refuses writes (a trigger, from another connection): the refresh fails as a whole.
    const db = new Database(join(authz.home, 'delegate.db'));
    try {
      db.exec("CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END");
      const state = () => db.prepare('SELECT (SELECT count(*) FROM audit_log) AS audit, (SELECT count(*) FROM issued_tokens) AS issued, (SELECT count(*) FROM refresh_tokens WHERE used_at IS NULL) AS unspent, (SELECT count(*) FROM refresh_tokens) AS refresh').get();
      const before = state();
      const refused = await refresh(String(first.body.refresh_token));
      expect(refused.status).toBe(500);
      expect(refused.body.error).toBe('server_error');
      db.exec('DROP TRIGGER audit_down');
      expect(state()).toEqual(before); // no token issued, none spent, no record
    } finally {
      db.close();
    }
    // The refresh token was not spent: it still rotates, once.
    const again = await refresh(String(first.body.refresh_token));
    expect(again.status).toBe(200);
    expect((await authz.store.listAudit()).filter((r) => r.event === 'token_refreshed').at(-1)?.detail).toMatchObject({ jti: decodeJwt(String(again.body.access_token)).jti });
  });

  it('narrows scope on request and refuses to widen it', async () => {
    const tokens = await obtainTokens(authz);
    const wider = await postForm(`${authz.issuer}/token`, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refreshToken,
      client_id: tokens.clientId,
      scope: 'slots:find freebusy:read',
    });
    expect(wider.body.error).toBe('invalid_scope');
  });

  // RFC 6749 §6: a new refresh token's scope MUST be identical to that of the one presented; the grant
  // behind it may have grown since (a step-up for another family), and that must not leak into this one.
  it('keeps the presented refresh token’s scope after a step-up widened the grant through another family', async () => {
    const first = await obtainCode(authz);
    const family1 = await redeem(authz, first);
    expect(family1.body.scope).toBe('slots:find');
    const stepUp = await ownerApproves(authz, { clientId: first.clientId, redirectUri: REDIRECT, scope: 'busy:read' });
    expect((await redeem(authz, stepUp)).status).toBe(200);
    expect((await authz.store.grantById(String(decodeJwt(String(family1.body.access_token)).grant_id)))?.scope).toBe('slots:find busy:read');

    const refresh = (token: unknown, scope?: string) => postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(token), client_id: first.clientId, scope });
    const once = await refresh(family1.body.refresh_token);
    expect(once.status).toBe(200);
    expect(once.body.scope).toBe('slots:find');
    // The refresh token that came back is still for slots:find alone: refreshed again it gives no more, and busy:read is refused.
    const twice = await refresh(once.body.refresh_token);
    expect(twice.body.scope).toBe('slots:find');
    expect(decodeJwt(String(twice.body.access_token)).scope).toBe('slots:find');
    expect((await refresh(twice.body.refresh_token, 'busy:read')).body.error).toBe('invalid_scope');
  });

  it('gives a code’s refresh token the code’s scope, not that of a wider grant covering it', async () => {
    const wide = await ownerApproves(authz, { redirectUri: REDIRECT, scope: 'slots:find busy:read' });
    expect((await redeem(authz, wide)).body.scope).toBe('slots:find busy:read');
    // The owner's sign-in link for exactly this request assures the client's identity: the code comes back without a consent page.
    const { verifier, challenge } = pkcePair();
    const covered = await signInAndOpenConsent(
      new Browser(),
      authz.issuer,
      authz.ownerJwk,
      authorizeUrl(authz.issuer, { clientId: wide.clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope: 'slots:find', state: 's', challenge }),
    );
    const code = callbackParams(covered.location ?? 'http://invalid/').get('code');
    expect(code, covered.location ?? covered.html.slice(0, 200)).toBeTruthy();
    const tokens = await redeem(authz, { clientId: wide.clientId, code: code!, verifier });
    expect(tokens.body.scope).toBe('slots:find');
    const refreshed = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(tokens.body.refresh_token), client_id: wide.clientId });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.scope).toBe('slots:find');
  });

  it('still narrows the access token on request, while the refresh token keeps its own scope', async () => {
    const wide = await ownerApproves(authz, { redirectUri: REDIRECT, scope: 'slots:find busy:read' });
    const tokens = await redeem(authz, wide);
    const refresh = (token: unknown, scope?: string) => postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(token), client_id: wide.clientId, scope });
    const narrowed = await refresh(tokens.body.refresh_token, 'busy:read');
    expect(narrowed.body.scope).toBe('busy:read');
    const whole = await refresh(narrowed.body.refresh_token);
    expect(whole.body.scope).toBe('slots:find busy:read');
  });

  // RFC 6749 §6: the refreshed scope MUST NOT include any scope not granted by the resource owner. No command or
  // page narrows a grant's scope today (a consent only adds to it), so the grant row is narrowed through the Store
  // API: the refresh must mint under the grant as it stands, not under the scope recorded with the refresh token.
  it('mints under the grant’s current scope when the grant was narrowed below the refresh token’s, and refuses a scope the grant no longer holds', async () => {
    const wide = await ownerApproves(authz, { redirectUri: REDIRECT, scope: 'slots:find busy:read' });
    const tokens = await redeem(authz, wide);
    expect(tokens.body.scope).toBe('slots:find busy:read');
    const grant = (await authz.store.grantById(String(decodeJwt(String(tokens.body.access_token)).grant_id)))!;
    await authz.store.updateGrant({ ...grant, scope: 'slots:find' }, Date.now());
    const refresh = (token: unknown, scope?: string) => postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(token), client_id: wide.clientId, scope });

    // Asking for a scope the grant no longer holds (though the refresh token was issued with it): invalid_scope, nothing spent.
    const wider = await refresh(tokens.body.refresh_token, 'busy:read');
    expect(wider.status).toBe(400);
    expect(wider.body.error).toBe('invalid_scope');
    expect(wider.body.access_token).toBeUndefined();
    expect((await authz.store.refreshTokenByHash(hashSecret(String(tokens.body.refresh_token))))?.usedAt).toBeNull();

    const refreshed = await refresh(tokens.body.refresh_token);
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.scope).toBe('slots:find');
    expect(decodeJwt(String(refreshed.body.access_token)).scope).toBe('slots:find');
    const recorded = (await authz.store.listAudit()).filter((r) => r.event === 'token_refreshed').at(-1);
    expect(recorded?.detail).toMatchObject({ scope: 'slots:find' });

    // The refresh token that came back still carries its own scope (RFC 6749 §6), and is bound by the grant each time.
    await authz.store.updateGrant({ ...grant, scope: 'busy:read' }, Date.now());
    const other = await refresh(refreshed.body.refresh_token);
    expect(other.status).toBe(200);
    expect(decodeJwt(String(other.body.access_token)).scope).toBe('busy:read');

    // Narrowed to nothing this refresh token was issued for: no token with an empty scope.
    await authz.store.updateGrant({ ...grant, scope: '' }, Date.now());
    const none = await refresh(other.body.refresh_token);
    expect(none.status).toBe(400);
    expect(none.body.error).toBe('invalid_grant');
    expect(none.body.access_token).toBeUndefined();
  });
});

describe('revocation (RFC 7009)', () => {
  it('revoking the refresh token ends it and the access tokens of its family', async () => {
    const tokens = await obtainTokens(authz);
    const res = await postForm(`${authz.issuer}/revoke`, { token: tokens.refreshToken, token_type_hint: 'refresh_token', client_id: tokens.clientId });
    expect(res.status).toBe(200);
    const refresh = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
    expect(refresh.body.error).toBe('invalid_grant');
    expect((await exchange(authz, tokens.accessToken)).body.error).toBe('invalid_request');
  });

  // RFC 7009 §2.1 lets a server revoke "the underlying authorization grant" with a token. delegate's policy (DESIGN.md,
  // Tokens: "RFC 7009 on any of its tokens"): the client the grant was given to ends it with its refresh token or its
  // access token alike. A token exchanged from it, given up by the agent it was issued to, ends only itself and its own.
  it('revoking the refresh token revokes its grant: recorded, listed for the resource servers, and consent is asked again', async () => {
    const tokens = await obtainTokens(authz);
    const grantId = String(decodeJwt(tokens.accessToken).grant_id);
    const seq = (await authz.store.listAudit()).at(-1)!.seq;
    const res = await postForm(`${authz.issuer}/revoke`, { token: tokens.refreshToken, token_type_hint: 'refresh_token', client_id: tokens.clientId });
    expect(res.status).toBe(200);

    expect((await authz.store.grantById(grantId))?.revokedAt).not.toBeNull();
    const records = (await authz.store.listAudit()).filter((r) => r.seq > seq);
    expect(records.map((r) => r.event)).toEqual(['grant_revoked']);
    expect(records[0]).toMatchObject({ grant: grantId, client: tokens.clientId, detail: { by: 'client', via: 'revocation endpoint', token_type: 'refresh_token' } });
    const list = (await (await fetch(`${authz.issuer}/revocations?since=0`)).json()) as { grants: string[] };
    expect(list.grants).toContain(grantId);
    expect(await introspect(tokens.accessToken)).toEqual({ active: false });

    // The same client asks again, through the owner's own sign-in link: no grant covers it now, so the consent page shows.
    const again = await openAsOwner(authz, authorizeUrl(authz.issuer, { clientId: tokens.clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge }));
    expect(again.page.status).toBe(200);
    expect(again.page.location).toBeNull();
    expect(parseConsentForm(again.page.html).request).toBeTruthy();
  });

  it('revoking the access token revokes its grant too, recorded as such; a client without its refresh token can end its delegation', async () => {
    const tokens = await obtainTokens(authz);
    const { grant_id: grantId, jti } = decodeJwt(tokens.accessToken) as { grant_id: string; jti: string };
    const seq = (await authz.store.listAudit()).at(-1)!.seq;
    expect((await postForm(`${authz.issuer}/revoke`, { token: tokens.accessToken, token_type_hint: 'access_token', client_id: tokens.clientId })).status).toBe(200);
    expect(await introspect(tokens.accessToken)).toEqual({ active: false });
    expect((await authz.store.grantById(grantId))?.revokedAt).not.toBeNull();
    const records = (await authz.store.listAudit()).filter((r) => r.seq > seq);
    expect(records.map((r) => r.event)).toEqual(['grant_revoked']);
    expect(records[0]).toMatchObject({ grant: grantId, client: tokens.clientId, detail: { by: 'client', via: 'revocation endpoint', token_type: 'access_token', jti } });
    const refresh = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
    expect([refresh.status, refresh.body.error]).toEqual([400, 'invalid_grant']);
    // No grant covers the client now: consent is asked again.
    const again = await openAsOwner(authz, authorizeUrl(authz.issuer, { clientId: tokens.clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge }));
    expect(again.page.location).toBeNull();
    expect(parseConsentForm(again.page.html).request).toBeTruthy();
  });

  it('an exchanged token given up by the agent it was issued to ends that token only: the grant stands', async () => {
    const { tokens, grantId, calendarToken } = await exchangedFromNewGrant(authz);
    expect((await revokeAsAgent(authz, calendarToken)).status).toBe(200);
    expect(await introspect(calendarToken)).toEqual({ active: false });
    expect(await introspect(tokens.accessToken)).toMatchObject({ active: true });
    expect((await authz.store.grantById(grantId))?.revokedAt).toBeNull();
    expect((await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId })).status).toBe(200);
  });

  it('answers 200 for an unknown token, and refuses another client’s token', async () => {
    const tokens = await obtainTokens(authz);
    const other = await obtainTokens(authz);
    expect((await postForm(`${authz.issuer}/revoke`, { token: 'nothing', client_id: tokens.clientId })).status).toBe(200);
    const foreign = await postForm(`${authz.issuer}/revoke`, { token: tokens.refreshToken, client_id: other.clientId });
    expect(foreign.status).toBe(400);
    expect(foreign.body.error).toBe('unauthorized_client');
    // Nothing changed: the owner's refresh token still works.
    const refresh = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
    expect(refresh.status).toBe(200);
  });

  // RFC 7009 §2.1: the hint only helps the search; a server that cannot use it searches every type.
  const oddHints = ['urn:ietf:params:oauth:token-type:refresh_token', 'urn:ietf:params:oauth:token-type:access_token', 'foo', 'id_token', ''];

  it.each(oddHints)('revokes a live refresh token sent with token_type_hint=%j, which /token then refuses', async (hint) => {
    const tokens = await obtainTokens(authz);
    const res = await postForm(`${authz.issuer}/revoke`, { token: tokens.refreshToken, token_type_hint: hint, client_id: tokens.clientId });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const refresh = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
    expect(refresh.status).toBe(400);
    expect(refresh.body.error).toBe('invalid_grant');
  });

  it('revokes an access token sent with the other type’s hint or an unknown one', async () => {
    for (const hint of ['refresh_token', 'foo']) {
      const tokens = await obtainTokens(authz);
      expect(await introspect(tokens.accessToken)).toMatchObject({ active: true });
      const res = await postForm(`${authz.issuer}/revoke`, { token: tokens.accessToken, token_type_hint: hint, client_id: tokens.clientId });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(await introspect(tokens.accessToken)).toEqual({ active: false });
    }
  });

  it.each(oddHints)('answers 200 for an unknown token sent with token_type_hint=%j', async (hint) => {
    const tokens = await obtainTokens(authz);
    const res = await postForm(`${authz.issuer}/revoke`, { token: 'dlg_rt_nothing', token_type_hint: hint, client_id: tokens.clientId });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    // The client's own tokens were not touched.
    expect(await introspect(tokens.accessToken)).toMatchObject({ active: true });
  });
});

describe('introspection (RFC 7662)', () => {
  it('shows what the token carries: act and authorization_details; no may_act where the token has none (a handed token’s: test/security/tokens.test.ts)', async () => {
    const tokens = await obtainTokens(authz);
    const answer = await introspect(tokens.accessToken);
    expect(answer).toMatchObject({ active: true, token_type: 'Bearer', authorization_details: decodeJwt(tokens.accessToken).authorization_details });
    expect(answer).not.toHaveProperty('may_act');
    expect(answer).not.toHaveProperty('act');
  });

  it('ignores a token_type_hint it does not know, or that names the other type (§2.1)', async () => {
    const tokens = await obtainTokens(authz);
    for (const hint of ['refresh_token', 'urn:ietf:params:oauth:token-type:access_token', 'foo']) {
      expect(await introspect(tokens.accessToken, hint), hint).toMatchObject({ active: true, sub: authz.ownerId });
    }
  });
});

/** RFC 7662 as CalendarAgent, which may ask about tokens issued for its own resource. */
async function introspect(token: string, hint?: string): Promise<Record<string, unknown>> {
  const res = await postForm(`${authz.issuer}/introspect`, {
    token,
    token_type_hint: hint,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion(authz.agent.privateJwk, authz.agent.clientId, authz.issuer),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  // RFC 6749 §5.1: an answer holding a token's claims is not to be cached, by HTTP/1.0 caches either (s30spec).
  expect([res.headers.get('cache-control'), res.headers.get('pragma')]).toEqual(['no-store', 'no-cache']);
  return res.body;
}
