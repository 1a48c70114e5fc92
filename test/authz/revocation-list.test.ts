// The revocation list from outside: what a resource server reads, and a held
// request that wakes as soon as something is revoked, even by another process
// writing the store directly (as `delegate grants revoke` does).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { hashSecret } from '../../src/authz/crypto.js';
import { openStore } from '../../src/store/index.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postForm } from '../support/oauth-flow.js';
import { obtainTokens } from './helpers.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

interface Page {
  cursor: number;
  grants: string[];
  tokens: string[];
  expires_at: Record<string, number>;
  stale_after: number;
}

const list = async (query: string): Promise<Page> => (await (await fetch(`${authz.issuer}/revocations?${query}`)).json()) as Page;

describe('the revocation list', () => {
  it('lists a revoked grant with when it may be forgotten, and is named in the metadata', async () => {
    const meta = (await (await fetch(`${authz.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(meta.revocation_list_endpoint).toBe(`${authz.issuer}/revocations`);
    const tokens = await obtainTokens(authz);
    const grant = String(decodeJwt(tokens.accessToken).grant_id);
    const before = await list('since=0');
    await authz.store.revokeGrant(grant, Date.now(), 'test');
    const after = await list(`since=${before.cursor}`);
    expect(after.grants).toEqual([grant]);
    expect(after.cursor).toBeGreaterThan(before.cursor);
    expect(after.expires_at[grant]).toBeGreaterThanOrEqual(decodeJwt(tokens.accessToken).exp!);
    expect(after.stale_after).toBe(30);
  });

  it('lists every token of a revoked refresh family, each with its expiry', async () => {
    // A family is revoked alone when its refresh token is replayed or its code reused (the store's revokeRefreshToken);
    // its client's revocation at /revoke ends the whole grant (below).
    const tokens = await obtainTokens(authz);
    const before = await list('since=0');
    expect(await authz.store.revokeRefreshToken(hashSecret(tokens.refreshToken), Date.now())).toBe(true);
    const after = await list(`since=${before.cursor}`);
    const jti = String(decodeJwt(tokens.accessToken).jti);
    expect(after.tokens).toContain(jti);
    expect(after.expires_at[jti]).toBe(decodeJwt(tokens.accessToken).exp);
  });

  it('lists the grant when its client revokes the refresh token at /revoke (RFC 7009 §2.1: the grant goes with it)', async () => {
    const tokens = await obtainTokens(authz);
    const grant = String(decodeJwt(tokens.accessToken).grant_id);
    const before = await list('since=0');
    expect((await postForm(`${authz.issuer}/revoke`, { token: tokens.refreshToken, client_id: tokens.clientId })).status).toBe(200);
    const after = await list(`since=${before.cursor}`);
    expect(after.grants).toContain(grant);
    expect(after.expires_at[grant]).toBeGreaterThanOrEqual(decodeJwt(tokens.accessToken).exp!);
  });

  it('holds a request until another process revokes something, then answers at once', async () => {
    const tokens = await obtainTokens(authz);
    const grant = String(decodeJwt(tokens.accessToken).grant_id);
    const { cursor } = await list('since=0');
    const held = list(`since=${cursor}&wait=20`);
    let answered = false;
    void held.then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    const other = openStore(`${authz.home}/delegate.db`);
    await other.revokeGrant(grant, Date.now(), 'revoked by another process');
    other.close();
    const page = await held;
    expect(page.grants).toEqual([grant]);
  });

  it('refuses a malformed cursor with invalid_request', async () => {
    const res = await fetch(`${authz.issuer}/revocations?since=-1`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
  });
});
