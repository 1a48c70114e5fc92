// The migration that honours a spent refresh token once within the grace window (review s24bcp). A family that a
// retry left with two unused refresh tokens before the upgrade is found (`forked`): its next rotation supersedes the
// other token, whose presentation is then a replay that ends the family. A family with one unused token is not
// marked, so its rotations pay nothing more. Real SQLite files.
import { expect, it } from 'vitest';
import { openStore, type GrantRecord, type RefreshTokenRecord } from '../../src/store/index.js';
import { databaseBefore, databaseFileEachTest } from './migration-support.js';

const databaseFile = databaseFileEachTest('delegate-refresh-retry-migration-');
const T0 = Date.now();
const GRACE_MS = 5_000;
const grant: GrantRecord = { id: 'grt_1', userId: 'usr_1', clientId: 'cli_1', resource: 'http://127.0.0.1:1/mcp', scope: 'slots:find', authorizationDetails: [], maxDepth: 1, createdAt: T0, expiresAt: T0 + 86_400_000, revokedAt: null };

function refreshToken(familyId: string, tokenHash: string, now: number): RefreshTokenRecord {
  return { tokenHash, familyId, grantId: grant.id, clientId: grant.clientId, userId: grant.userId, resource: grant.resource, scope: grant.scope, createdAt: now, expiresAt: now + 3_600_000, usedAt: null };
}

const next = (familyId: string, tokenHash: string, now: number) => ({
  refresh: refreshToken(familyId, tokenHash, now),
  access: { jti: `at_${tokenHash}`, grantId: grant.id, familyId, parentJti: null, clientId: grant.clientId, audience: grant.resource, scope: grant.scope, createdAt: now, expiresAt: now + 600_000, revokedAt: null },
  grant,
});

it('marks a family a retry forked before the upgrade: its next rotation supersedes the other unused token, a replay when presented', async () => {
  const path = databaseFile();
  databaseBefore(path, 'retried_at', (db) => {
    db.prepare(`INSERT INTO grants (id, user_id, client_id, resource, scope, authorization_details, max_depth, created_at, expires_at) VALUES (?, ?, ?, ?, ?, '[]', 1, ?, ?)`).run(
      grant.id, grant.userId, grant.clientId, grant.resource, grant.scope, grant.createdAt, grant.expiresAt,
    );
    const token = db.prepare(`INSERT INTO refresh_tokens (token_hash, family_id, grant_id, client_id, user_id, resource, scope, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    for (const family of ['fam_forked', 'fam_one']) db.prepare('INSERT INTO token_families (id, grant_id, client_id, created_at) VALUES (?, ?, ?, ?)').run(family, grant.id, grant.clientId, T0);
    // fam_forked: its first token was spent, then presented again within the window: two unused tokens of it.
    token.run('rt_f0', 'fam_forked', grant.id, grant.clientId, grant.userId, grant.resource, grant.scope, T0, T0 + 3_600_000, T0 + 1);
    token.run('rt_f1', 'fam_forked', grant.id, grant.clientId, grant.userId, grant.resource, grant.scope, T0 + 1, T0 + 3_600_000, null);
    token.run('rt_f2', 'fam_forked', grant.id, grant.clientId, grant.userId, grant.resource, grant.scope, T0 + 2, T0 + 3_600_000, null);
    token.run('rt_o0', 'fam_one', grant.id, grant.clientId, grant.userId, grant.resource, grant.scope, T0, T0 + 3_600_000, T0 + 1);
    token.run('rt_o1', 'fam_one', grant.id, grant.clientId, grant.userId, grant.resource, grant.scope, T0 + 1, T0 + 3_600_000, null);
  });
  const store = openStore(path);
  try {
    const later = T0 + GRACE_MS + 1_000;
    expect(await store.rotateRefreshToken('rt_f2', later, next('fam_forked', 'rt_f3', later), GRACE_MS)).toMatchObject({ status: 'rotated' });
    expect(await store.rotateRefreshToken('rt_o1', later, next('fam_one', 'rt_o2', later), GRACE_MS)).toMatchObject({ status: 'rotated' });
    // The forked family's other unused token is superseded: presenting it ends the family.
    expect(await store.rotateRefreshToken('rt_f1', later + 1, next('fam_forked', 'rt_f4', later + 1), GRACE_MS)).toMatchObject({ status: 'replayed', presented: 'superseded' });
    expect(await store.rotateRefreshToken('rt_f3', later + 2, next('fam_forked', 'rt_f5', later + 2), GRACE_MS)).toEqual({ status: 'revoked' });
    // The other family goes on.
    expect(await store.rotateRefreshToken('rt_o2', later + 2, next('fam_one', 'rt_o3', later + 2), GRACE_MS)).toMatchObject({ status: 'rotated' });
  } finally {
    store.close();
  }
});
