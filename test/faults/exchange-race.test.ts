// A revocation that lands while a token exchange is being signed: found by
// crash.test.ts, where a child token exchanged from a user token whose family
// was revoked a moment before was still accepted by the calendar backend (the
// revocation had listed only the tokens that existed when it ran). The store
// now records an exchanged token only in one transaction with the check that
// its parent still stands; these checks drive that step directly, in order.
import { randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IssuedTokenRecord } from '../../src/store/index.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { exchange, obtainTokens, type UserTokens } from '../authz/helpers.js';

let authz: TestAuthz;
let user: UserTokens;
beforeAll(async () => {
  authz = await startTestAuthz();
  user = await obtainTokens(authz);
});
afterAll(async () => authz.close());

function childOf(parentJti: string, grantId: string, familyId: string | null): IssuedTokenRecord {
  const now = Date.now();
  return {
    jti: `at_${randomBytes(12).toString('base64url')}`,
    grantId,
    familyId,
    parentJti,
    clientId: 'calendar-agent',
    audience: authz.calendarUrl,
    scope: 'freebusy:read',
    createdAt: now,
    expiresAt: now + 300_000,
    revokedAt: null,
  };
}

describe('an exchange racing a revocation', () => {
  it('records a child of a standing token, refuses one whose parent was revoked first, and revokes the earlier child with its parent', async () => {
    const parent = String(decodeJwt(user.accessToken).jti);
    const record = (await authz.store.issuedToken(parent))!;
    const before = childOf(parent, record.grantId, record.familyId);
    expect(await authz.store.recordDerivedToken(before, Date.now())).toBe('recorded');

    await authz.store.revokeFamily(record.familyId!, Date.now(), 'test: revoked while an exchange was being signed');
    const after = childOf(parent, record.grantId, record.familyId);
    expect(await authz.store.recordDerivedToken(after, Date.now())).toBe('parent_revoked');
    expect(await authz.store.issuedToken(after.jti)).toBeUndefined();

    expect(await authz.store.tokenStanding(before.jti, Date.now())).toBe('revoked');
    const listed = await authz.store.revocationsSince(0, Date.now());
    expect(listed.tokens).toContain(before.jti);
    // And on the wire: the revoked token cannot be exchanged any more.
    expect((await exchange(authz, user.accessToken)).body.error).toBe('invalid_request');
  });
});
