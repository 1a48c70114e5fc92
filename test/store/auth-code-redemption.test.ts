// SqliteStore.redeemAuthCode's own checks, in the transaction that records the
// tokens: a code is redeemed for its own client only (RFC 6749 §4.1.3), and a
// second redemption by that client is a replay that ends the family (§4.1.2).
// The token endpoint checks the client before it signs anything (grant-code.ts);
// these show the store holds to it too, where a replay racing the first
// redemption is found (found in review regress21b: another client's
// presentation of a spent code ended the family there).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type GrantRecord, type Store } from '../../src/store/index.js';

const T0 = 1_800_000_000_000;

describe('redeemAuthCode and the code’s client', () => {
  let dir: string;
  let store: Store;
  let other: Database.Database;
  const grant: GrantRecord = { id: 'grt_1', userId: 'usr_1', clientId: 'cli_victim', resource: 'http://127.0.0.1:1/mcp', scope: 'slots:find', authorizationDetails: [], maxDepth: 1, createdAt: T0, expiresAt: T0 + 86_400_000, revokedAt: null };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'delegate-code-redemption-'));
    store = openStore(join(dir, 'delegate.db'));
    other = new Database(join(dir, 'delegate.db'), { readonly: true });
    await store.createUser({ id: 'usr_1', name: 'owner', passwordHash: null, isOwner: true, timeZone: 'UTC', createdAt: T0 });
    for (const clientId of ['cli_victim', 'cli_evil']) {
      await store.createClient({ clientId, clientName: null, kind: 'public', secretHash: null, redirectUris: [], grantTypes: ['authorization_code'], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: T0 });
    }
    await store.createGrant(grant);
    await store.createAuthCode({ codeHash: 'code_1', clientId: 'cli_victim', redirectUri: 'http://127.0.0.1:2/cb', redirectUriGiven: true, codeChallenge: 'x', resource: grant.resource, scope: grant.scope, grantId: grant.id, userId: 'usr_1', familyId: 'fam_1', createdAt: T0, expiresAt: T0 + 60_000, usedAt: null });
  });

  afterEach(() => {
    other.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Redeems code_1 for `clientId`, with the records the code grant writes; `device`: for that device authorization's poll. */
  const redeem = (clientId: string, jti: string, now = T0 + 1_000, device?: string) =>
    store.redeemAuthCode(
      'code_1',
      now,
      {
        refresh: null,
        access: { jti, grantId: grant.id, familyId: 'fam_1', parentJti: null, clientId, audience: grant.resource, scope: grant.scope, createdAt: now, expiresAt: now + 600_000, revokedAt: null },
        grant,
        ...(device !== undefined ? { device } : {}),
      },
      { event: 'code_replay', client: clientId, grant: grant.id, detail: { family_revoked: 'fam_1' } },
    );
  const familyRevoked = () => (other.prepare('SELECT revoked_at FROM token_families WHERE id = ?').get('fam_1') as { revoked_at: number | null } | undefined)?.revoked_at ?? null;
  const issued = () => (other.prepare('SELECT jti, revoked_at FROM issued_tokens ORDER BY jti').all() as Array<{ jti: string; revoked_at: number | null }>).map((r) => `${r.jti} ${r.revoked_at === null ? 'live' : 'revoked'}`);
  const events = () => (other.prepare('SELECT event FROM audit_log ORDER BY seq').all() as Array<{ event: string }>).map((r) => r.event);
  const codeUsedAt = () => (other.prepare('SELECT used_at FROM auth_codes WHERE code_hash = ?').get('code_1') as { used_at: number | null }).used_at;

  it('a spent code for another client is other_client: nothing written, the family and its token live, and its own client’s replay still ends it', async () => {
    expect((await redeem('cli_victim', 'at_1')).status).toBe('redeemed');
    expect(await redeem('cli_evil', 'at_evil', T0 + 86_400_000)).toEqual({ status: 'other_client' });
    expect(familyRevoked()).toBeNull();
    expect(issued()).toEqual(['at_1 live']);
    expect(events()).toEqual([]);
    // The control: the code's own client presenting it again is a replay.
    expect(await redeem('cli_victim', 'at_2')).toEqual({ status: 'replayed' });
    expect(familyRevoked()).not.toBeNull();
    expect(issued()).toEqual(['at_1 revoked']);
    expect(events()).toEqual(['code_replay']);
  });

  it('an unspent code for another client is other_client and stays unspent for its own', async () => {
    expect(await redeem('cli_evil', 'at_evil')).toEqual({ status: 'other_client' });
    expect(codeUsedAt()).toBeNull();
    expect(issued()).toEqual([]);
    expect((await redeem('cli_victim', 'at_1')).status).toBe('redeemed');
  });

  /** A device authorization of cli_victim, approved with code_1 unless `approved` is false. */
  async function deviceRequest(approved = true): Promise<string> {
    const request = { deviceCodeHash: 'dev_1', userCode: 'BCDFGHJK', clientId: 'cli_victim', scope: grant.scope, resource: grant.resource, state: 'st_1', codeVerifier: 'v', status: 'pending' as const, code: null, intervalSec: 5, lastPolledAt: null, createdAt: T0, expiresAt: T0 + 600_000 };
    expect(await store.createDeviceAuthorization(request)).toBe(true);
    if (approved) expect(await store.settleDeviceAuthorization('st_1', { status: 'approved', code: 'the code' }, T0)).toBe(true);
    return request.deviceCodeHash;
  }

  // Found in review (regress21e): a device's second poll during a slow redemption got the tokens, and the first poll's
  // redemption then found the code spent and revoked them. Only the server holds a device code's verifier, so a spent
  // one is the device polling again, not a replay.
  it('a device’s code spent by another of its polls is device_consumed: nothing written, nothing revoked, the tokens live', async () => {
    const device = await deviceRequest();
    expect(await redeem('cli_victim', 'at_1', T0 + 1_000, device)).toEqual({ status: 'redeemed' });
    expect(await redeem('cli_victim', 'at_2', T0 + 2_000, device)).toEqual({ status: 'device_consumed' });
    expect(familyRevoked()).toBeNull();
    expect(issued()).toEqual(['at_1 live']);
    expect(events()).toEqual([]);
  });

  it('a device authorization no longer approved redeems nothing: device_consumed, the code unspent', async () => {
    const device = await deviceRequest(false);
    expect(await redeem('cli_victim', 'at_1', T0 + 1_000, device)).toEqual({ status: 'device_consumed' });
    expect(codeUsedAt()).toBeNull();
    expect(issued()).toEqual([]);
  });
});
