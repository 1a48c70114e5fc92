// The local owner has no password: it signs in with `delegate login`. One given by an earlier `delegate users add
// <owner> --replace` (before addUser refused it, s23accounts) was a second way in nobody asked for, and was kept
// (found in review, s24accounts). The store takes it away when it opens, with the owner's password sessions, in one
// transaction with a `password_cleared` record; an owner without one gets no record. Real SQLite files.
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { verifyPassword } from '../../src/authz/password.js';
import { openStore, type SessionRecord } from '../../src/store/index.js';
import { databaseFileEachTest } from '../store/migration-support.js';
import { hashWithCost } from './password-hashes.js';

const databaseFile = databaseFileEachTest('delegate-owner-password-');

const session = (id: string, userId: string, signedInBy: SessionRecord['signedInBy']): SessionRecord => ({
  idHash: id,
  userId,
  createdAt: 1,
  expiresAt: Date.now() + 3_600_000,
  boundRequestHash: 'b',
  signedInBy,
});

/** A database whose owner `olive` has `passwordHash`, with a password session and an owner-link session, and a named account `nina` with a password. */
async function databaseWithOwner(passwordHash: string | null): Promise<string> {
  const path = databaseFile();
  const store = openStore(path);
  try {
    await store.createUser({ id: 'usr_owner', name: 'olive', passwordHash: null, isOwner: true, timeZone: 'UTC', createdAt: 1 });
    await store.createUser({ id: 'usr_nina', name: 'nina', passwordHash: hashWithCost('nina has a password', 1 << 10), isOwner: false, timeZone: 'UTC', createdAt: 1 });
    for (const s of [session('s_password', 'usr_owner', 'password'), session('s_link', 'usr_owner', 'owner_link'), session('s_nina', 'usr_nina', 'password')]) await store.createSession(s);
  } finally {
    store.close();
  }
  // As `users add olive --replace` left it before it was refused.
  const db = new Database(path);
  db.prepare("UPDATE users SET password_hash = ? WHERE id = 'usr_owner'").run(passwordHash);
  db.close();
  return path;
}

describe('a local owner with a password, when the store opens', () => {
  it('loses it and its password sessions, in one transaction with a password_cleared record; the next open changes nothing', async () => {
    const path = await databaseWithOwner(hashWithCost('olive has a password', 1 << 10));
    const store = openStore(path, { now: 5_000 });
    try {
      const owner = await store.ownerUser();
      expect(owner?.passwordHash).toBeNull();
      expect(await verifyPassword('olive has a password', owner?.passwordHash)).toBe(false);
      expect(await store.sessionByHash('s_password', 2)).toBeUndefined();
      expect(await store.sessionByHash('s_link', 2)).toMatchObject({ userId: 'usr_owner', signedInBy: 'owner_link' });
      // A named account's password and sessions are not the owner's.
      expect(await verifyPassword('nina has a password', (await store.userByName('nina'))?.passwordHash)).toBe(true);
      expect(await store.sessionByHash('s_nina', 2)).toBeDefined();
      expect((await store.listAudit()).map((r) => [r.at, r.event, r.user, r.detail])).toEqual([[5_000, 'password_cleared', 'usr_owner', { by: 'upgrade', name: 'olive' }]]);
    } finally {
      store.close();
    }
    const again = openStore(path);
    try {
      expect((await again.listAudit()).map((r) => r.event)).toEqual(['password_cleared']);
      expect((await again.verifyAudit()).ok).toBe(true);
    } finally {
      again.close();
    }
  });

  it('without one: nothing changed or recorded', async () => {
    const path = await databaseWithOwner(null);
    const store = openStore(path);
    try {
      expect(await store.sessionByHash('s_password', 2)).toBeDefined();
      expect(await store.listAudit()).toEqual([]);
    } finally {
      store.close();
    }
  });
});
