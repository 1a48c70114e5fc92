// Refresh-token rotations in a group commit (SqliteStore.rotateRefreshToken):
// the rotations asked for in one turn of the event loop run in one
// transaction on the next turn and share one commit and one sync of the WAL.
// Each must still come out exactly as in a transaction of its own: a replay in
// the group ends its own family only, a rotation that fails is its failure
// alone, a refusal is answered without waiting for the disk, and a rotation
// is acknowledged only once the sync that covers it is done.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type AuditEventInput, type GrantRecord, type RefreshTokenRecord, type Store } from '../../src/store/index.js';

const T0 = 1_800_000_000_000;
const GRACE_MS = 5_000;

/** A sync of the WAL that finishes at once, or, while `held`, when the test says. */
function syncSwitch() {
  const waiting: Array<() => void> = [];
  const state = { held: false, asked: 0 };
  const sync = () => {
    state.asked++;
    return state.held ? new Promise<void>((resolve) => waiting.push(resolve)) : Promise.resolve();
  };
  return { sync, state, finishAll: () => waiting.splice(0).forEach((finish) => finish()) };
}

const settledState = async (p: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> => {
  const marker = Symbol('pending');
  const outcome = await Promise.race([p.then(() => 'resolved' as const, () => 'rejected' as const), new Promise((r) => setImmediate(() => r(marker)))]);
  return outcome === marker ? 'pending' : (outcome as 'resolved' | 'rejected');
};

/** Two turns of the event loop: a group asked for in this one has been carried out. */
const turns = () => new Promise<void>((r) => setImmediate(() => setImmediate(r)));

describe('refresh-token rotations asked for together share one transaction and one sync', () => {
  let dir: string;
  let store: Store;
  let sync: ReturnType<typeof syncSwitch>;
  let other: Database.Database;
  let serial = 0;

  beforeEach(async () => {
    serial = 0;
    dir = mkdtempSync(join(tmpdir(), 'delegate-rotation-group-'));
    sync = syncSwitch();
    store = openStore(join(dir, 'delegate.db'), { syncFile: sync.sync });
    other = new Database(join(dir, 'delegate.db'), { readonly: true });
    await store.createUser({ id: 'usr_1', name: 'owner', passwordHash: null, isOwner: true, timeZone: 'UTC', createdAt: T0 });
  });

  afterEach(() => {
    sync.finishAll();
    other.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A client with its grant and one token family, as a redeemed code leaves them: the family's first refresh token. */
  async function family(): Promise<{ grant: GrantRecord; token: RefreshTokenRecord }> {
    const n = ++serial;
    const clientId = `cli_${n}`;
    await store.createClient({ clientId, clientName: null, kind: 'public', secretHash: null, redirectUris: [], grantTypes: ['authorization_code', 'refresh_token'], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: T0 });
    const grant: GrantRecord = { id: `grt_${n}`, userId: 'usr_1', clientId, resource: 'http://127.0.0.1:1/mcp', scope: 'slots:find', authorizationDetails: [], maxDepth: 1, createdAt: T0, expiresAt: T0 + 86_400_000, revokedAt: null };
    await store.createGrant(grant);
    const familyId = `fam_${n}`;
    await store.createAuthCode({ codeHash: `code_${n}`, clientId, redirectUri: 'http://127.0.0.1:2/cb', redirectUriGiven: true, codeChallenge: 'x', resource: grant.resource, scope: grant.scope, grantId: grant.id, userId: 'usr_1', familyId, createdAt: T0, expiresAt: T0 + 60_000, usedAt: null });
    const token = refreshToken(grant, familyId, `rt_${n}_0`, T0);
    const redeemed = await store.redeemAuthCode(`code_${n}`, T0, { refresh: token, access: accessToken(grant, familyId, `at_${n}_0`, T0), grant });
    expect(redeemed.status).toBe('redeemed');
    return { grant, token };
  }

  function refreshToken(grant: GrantRecord, familyId: string, tokenHash: string, now: number): RefreshTokenRecord {
    return { tokenHash, familyId, grantId: grant.id, clientId: grant.clientId, userId: grant.userId, resource: grant.resource, scope: grant.scope, createdAt: now, expiresAt: now + 3_600_000, usedAt: null };
  }

  function accessToken(grant: GrantRecord, familyId: string, jti: string, now: number) {
    return { jti, grantId: grant.id, familyId, parentJti: null, clientId: grant.clientId, audience: grant.resource, scope: grant.scope, createdAt: now, expiresAt: now + 600_000, revokedAt: null };
  }

  /** Rotates `token` to a new one named `next`, with the records the refresh grant writes. */
  function rotate(f: { grant: GrantRecord; token: RefreshTokenRecord }, next: string, now: number, record?: (grace: boolean) => AuditEventInput) {
    const { grant, token } = f;
    return store.rotateRefreshToken(
      token.tokenHash,
      now,
      { refresh: refreshToken(grant, token.familyId, next, now), access: accessToken(grant, token.familyId, `at_${next}`, now), grant },
      GRACE_MS,
      record ?? ((grace) => ({ event: 'token_refreshed', client: grant.clientId, grant: grant.id, detail: { next, ...(grace ? { within_grace: true } : {}) } })),
      () => true,
      (presented) => ({ event: 'refresh_replay', client: grant.clientId, grant: grant.id, detail: { family_revoked: token.familyId, presented } }),
    );
  }

  const spentAt = (tokenHash: string) => (other.prepare('SELECT used_at FROM refresh_tokens WHERE token_hash = ?').get(tokenHash) as { used_at: number | null } | undefined)?.used_at;
  const familyRevoked = (familyId: string) => (other.prepare('SELECT revoked_at FROM token_families WHERE id = ?').get(familyId) as { revoked_at: number | null }).revoked_at !== null;
  const events = () => (other.prepare('SELECT event, client_id FROM audit_log ORDER BY seq').all() as Array<{ event: string; client_id: string }>).map((r) => `${r.event} ${r.client_id}`);

  it('commits rotations asked for in one turn together: one sync covers them all, and none is acknowledged before it', async () => {
    const a = await family();
    const b = await family();
    sync.state.held = true;
    const asked = sync.state.asked;
    const rotations = [rotate(a, 'rt_a_1', T0 + 1_000), rotate(b, 'rt_b_1', T0 + 1_000)];
    await turns();
    // Both committed (another connection sees them), one sync asked for both, neither acknowledged yet.
    expect([spentAt('rt_1_0'), spentAt('rt_2_0')]).toEqual([T0 + 1_000, T0 + 1_000]);
    expect(sync.state.asked - asked).toBe(1);
    for (const p of rotations) expect(await settledState(p)).toBe('pending');
    // Each in a transaction of its own would have needed a second sync for the second commit.
    sync.finishAll();
    expect(await Promise.all(rotations)).toEqual([expect.objectContaining({ status: 'rotated' }), expect.objectContaining({ status: 'rotated' })]);
    expect(sync.state.asked - asked).toBe(1);
  });

  it('a replay in the group ends its own family and is recorded; the rotation beside it goes through as if alone', async () => {
    const a = await family();
    const b = await family();
    // b's token was rotated once already, past the grace window before it comes back.
    expect((await rotate(b, 'rt_b_1', T0 + 1_000)).status).toBe('rotated');
    const before = events().length;
    sync.state.held = true;
    const later = T0 + 1_000 + GRACE_MS + 1;
    const [rotated, replayed] = [rotate(a, 'rt_a_1', later), rotate(b, 'rt_b_2', later)];
    await turns();
    sync.finishAll();
    await expect(rotated).resolves.toMatchObject({ status: 'rotated' });
    await expect(replayed).resolves.toMatchObject({ status: 'replayed' });
    expect(familyRevoked(b.token.familyId)).toBe(true);
    expect(familyRevoked(a.token.familyId)).toBe(false);
    expect(spentAt('rt_b_2')).toBeUndefined(); // the replay's own next token was never recorded
    expect(events().slice(before)).toEqual(['token_refreshed cli_1', 'refresh_replay cli_2']);
    // b's newest token died with its family; a's new one rotates again.
    sync.state.held = false;
    expect((await rotate({ grant: b.grant, token: { ...b.token, tokenHash: 'rt_b_1' } }, 'rt_b_3', later + 1)).status).toBe('revoked');
    expect((await rotate({ grant: a.grant, token: { ...a.token, tokenHash: 'rt_a_1' } }, 'rt_a_2', later + 1)).status).toBe('rotated');
  });

  it('a rotation that fails in the group fails alone: the others are carried out, and nothing of it is written', async () => {
    const a = await family();
    const b = await family();
    const c = await family();
    const before = events().length;
    const failing = () => {
      throw new Error('the record cannot be written');
    };
    const [first, broken, last] = [rotate(a, 'rt_a_1', T0 + 1_000), rotate(b, 'rt_b_1', T0 + 1_000, failing), rotate(c, 'rt_c_1', T0 + 1_000)];
    await expect(first).resolves.toMatchObject({ status: 'rotated' });
    await expect(broken).rejects.toThrow('the record cannot be written');
    await expect(last).resolves.toMatchObject({ status: 'rotated' });
    expect([spentAt('rt_1_0'), spentAt('rt_2_0'), spentAt('rt_3_0')]).toEqual([T0 + 1_000, null, T0 + 1_000]);
    expect(spentAt('rt_b_1')).toBeUndefined();
    expect(events().slice(before)).toEqual(['token_refreshed cli_1', 'token_refreshed cli_3']);
    // The token of the rotation that failed was not spent: it rotates later, once.
    expect((await rotate(b, 'rt_b_1', T0 + 2_000)).status).toBe('rotated');
  });

  it('answers a refusal in the group without waiting for the sync, as a rotation alone that wrote nothing', async () => {
    const a = await family();
    sync.state.held = true;
    const rotated = rotate(a, 'rt_a_1', T0 + 1_000);
    const unknown = rotate({ grant: a.grant, token: { ...a.token, tokenHash: 'rt_nobody' } }, 'rt_x', T0 + 1_000);
    await expect(unknown).resolves.toEqual({ status: 'unknown' });
    expect(await settledState(rotated)).toBe('pending');
    sync.finishAll();
    await expect(rotated).resolves.toMatchObject({ status: 'rotated' });
  });

  it('carries out a rotation still waiting for its group when the store closes', async () => {
    const a = await family();
    const rotated = rotate(a, 'rt_a_1', T0 + 1_000);
    store.close();
    await expect(rotated).resolves.toMatchObject({ status: 'rotated' });
    expect(spentAt('rt_1_0')).toBe(T0 + 1_000);
  });
});
