// Store.activeGrantsOfClient: every user's live grants to one client, read through an index on the client's id
// (grants_by_client). A metadata document that changes its redirect URIs ends its client's grants
// (client-documents.ts); found in review, that read every grant of every client, on every such change.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openStore, type GrantRecord, type Store } from '../../src/store/index.js';

const NOW = 1_800_000_000_000;
let dir: string;
let store: Store;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-grants-of-client-'));
  store = openStore(join(dir, 'delegate.db'));
  for (const id of ['usr_1', 'usr_2']) await store.createUser({ id, name: id, passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 1 });
  for (const clientId of ['cli_a', 'cli_b']) {
    await store.createClient({ clientId, clientName: null, kind: 'public', secretHash: null, redirectUris: [], grantTypes: [], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: 1 });
  }
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const grant = (id: string, userId: string, clientId: string, createdAt: number, expiresAt = NOW + 3_600_000): GrantRecord => ({
  id,
  userId,
  clientId,
  resource: 'http://127.0.0.1:1/mcp',
  scope: 'slots:find',
  authorizationDetails: [],
  maxDepth: 1,
  createdAt,
  expiresAt,
  revokedAt: null,
});

it("returns every user's live grants to the client, oldest first, and no revoked, expired or other client's grant", async () => {
  await store.createGrant(grant('grt_a2', 'usr_2', 'cli_a', 20));
  await store.createGrant(grant('grt_a1', 'usr_1', 'cli_a', 10));
  await store.createGrant(grant('grt_revoked', 'usr_1', 'cli_a', 30));
  await store.revokeGrant('grt_revoked', NOW - 1, 'test');
  await store.createGrant(grant('grt_expired', 'usr_1', 'cli_a', 40, NOW));
  await store.createGrant(grant('grt_b', 'usr_1', 'cli_b', 50));
  expect((await store.activeGrantsOfClient('cli_a', NOW)).map((g) => g.id)).toEqual(['grt_a1', 'grt_a2']);
  expect((await store.activeGrantsOfClient('cli_b', NOW))[0]).toMatchObject({ id: 'grt_b', userId: 'usr_1', scope: 'slots:find' });
  expect(await store.activeGrantsOfClient('cli_none', NOW)).toEqual([]);
});

it('is an index search on the client id, not a scan of the grants table', () => {
  const db = new Database(join(dir, 'delegate.db'), { readonly: true });
  try {
    const plan = db.prepare('EXPLAIN QUERY PLAN SELECT * FROM grants WHERE client_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at, id').all('cli_a', NOW) as { detail: string }[];
    expect(plan.map((step) => step.detail).join('\n')).toMatch(/SEARCH grants USING INDEX grants_by_client \(client_id=\?\)/);
  } finally {
    db.close();
  }
});
