// A grant's revocation and its grant_revoked record commit together or not at
// all, at /revoke (a refresh token) and at `delegate grants revoke` (the
// grants page: accounts.test.ts). Found in review: with the audit write
// failing (a disk full, simulated by a trigger on audit_log), the grant was
// revoked with no record, and a retry took the "already revoked" branch and
// wrote none either.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grantsRevokeCommand } from '../../src/cli/commands/grants.js';
import { resolvePaths } from '../../src/config.js';
import { fakeIo } from '../cli/fake-io.js';
import { failAuditRecords } from '../support/fail-audit.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postForm } from '../support/oauth-flow.js';
import { obtainTokens } from './helpers.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

async function recordsOf(grant: string): Promise<string[]> {
  return (await authz.store.listAudit({ grant })).filter((r) => r.event === 'grant_revoked').map((r) => JSON.stringify(r.detail));
}

describe('a revocation whose audit record cannot be written', () => {
  it('at /revoke (a refresh token): fails, leaves the grant active; a retry revokes it and writes one record', async () => {
    const tokens = await obtainTokens(authz);
    const grant = String(decodeJwt(tokens.accessToken).grant_id);
    const restore = failAuditRecords(authz.home, 'grant_revoked');
    try {
      const failed = await postForm(`${authz.issuer}/revoke`, { token: tokens.refreshToken, client_id: tokens.clientId });
      expect(failed.status).toBe(500);
      expect((await authz.store.grantById(grant))!.revokedAt).toBeNull();
      expect(await recordsOf(grant)).toEqual([]);
    } finally {
      restore();
    }
    expect((await postForm(`${authz.issuer}/revoke`, { token: tokens.refreshToken, client_id: tokens.clientId })).status).toBe(200);
    expect((await authz.store.grantById(grant))!.revokedAt).not.toBeNull();
    expect(await recordsOf(grant)).toHaveLength(1);
    expect((await authz.store.verifyAudit()).ok).toBe(true);
  });

  it('at delegate grants revoke: fails, leaves the grant active; a retry revokes it and writes one record', async () => {
    const tokens = await obtainTokens(authz);
    const grant = String(decodeJwt(tokens.accessToken).grant_id);
    const paths = resolvePaths({ DELEGATE_HOME: authz.home });
    const restore = failAuditRecords(authz.home, 'grant_revoked');
    try {
      await expect(grantsRevokeCommand({ paths, id: grant }, fakeIo())).rejects.toThrow(/database or disk is full/);
      expect((await authz.store.grantById(grant))!.revokedAt).toBeNull();
      expect(await recordsOf(grant)).toEqual([]);
    } finally {
      restore();
    }
    const io = fakeIo();
    expect(await grantsRevokeCommand({ paths, id: grant }, io)).toBe(0);
    expect(io.err).toBe(`Revoked ${grant}: every token derived from it is refused from now on (by the resource servers once their revocation list hears of it, normally within a second).\n`);
    expect((await authz.store.grantById(grant))!.revokedAt).not.toBeNull();
    expect(await recordsOf(grant)).toEqual([JSON.stringify({ by: 'owner', via: 'cli' })]);
    expect((await authz.store.verifyAudit()).ok).toBe(true);
  });
});
