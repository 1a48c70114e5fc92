// openStoreReadOnly (src/store/sqlite.ts): the store the reading commands fall
// back to when the data directory cannot be written. It reads the database as
// it stands, changes nothing (no file created, no migration), refuses every
// write, and says so when the database is older than this delegate. (On a real
// read-only disk: test/faults/disk.test.ts.)
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, openStoreReadOnly, StoreError } from '../../src/store/index.js';
import { MIGRATIONS, READABLE_FROM_VERSION } from '../../src/store/schema.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-store-ro-'));
  path = join(dir, 'delegate.db');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const user = { id: 'u1', name: 'olive', passwordHash: null, isOwner: true, timeZone: 'UTC', createdAt: 1 };

describe('openStoreReadOnly', () => {
  it('reads a database closed cleanly (no -wal), creates no file beside it, and refuses writes', async () => {
    const store = openStore(path);
    await store.createUser(user);
    await store.appendAudit({ event: 'test', user: 'u1' }, 2);
    store.close();
    expect(readdirSync(dir)).toEqual(['delegate.db']);
    const before = statSync(path).mtimeMs;

    const reader = openStoreReadOnly(path);
    try {
      expect(await reader.ownerUser()).toMatchObject({ name: 'olive' });
      expect(await reader.verifyAudit()).toMatchObject({ ok: true, count: 1 });
      const write = reader.createUser({ ...user, id: 'u2', name: 'mallory', isOwner: false });
      await expect(write).rejects.toBeInstanceOf(StoreError);
      await expect(write).rejects.toMatchObject({ code: 'STORE_READ_ONLY' });
      await expect(write).rejects.toThrow(`The database ${path} cannot be written`); // its path, not SQLite's ":memory:"
    } finally {
      reader.close();
    }
    expect(readdirSync(dir)).toEqual(['delegate.db']);
    expect(statSync(path).mtimeMs).toBe(before);
    expect(await countUsers()).toBe(1);
  });

  it('says a database older than this delegate cannot be upgraded while read-only, and does not upgrade it', () => {
    const old = new Database(path);
    for (const migration of MIGRATIONS.slice(0, READABLE_FROM_VERSION - 1)) old.exec(migration);
    old.pragma(`user_version = ${READABLE_FROM_VERSION - 1}`);
    old.close();
    expect(() => openStoreReadOnly(path)).toThrow(/older delegate and cannot be upgraded while it is read-only/);
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(READABLE_FROM_VERSION - 1);
    check.close();
  });

  // Found in review (regress17): the migration that lets the revocation list name withdrawn keys changes only a
  // CHECK, yet made a read-only copy of the previous build's database unreadable for `grants list` and `audit`.
  it('reads a database short only of migrations no read depends on, as it stands', async () => {
    const old = new Database(path);
    for (const migration of MIGRATIONS.slice(0, READABLE_FROM_VERSION)) old.exec(migration);
    old.pragma(`user_version = ${READABLE_FROM_VERSION}`);
    old.prepare("INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES ('grant', 'g1', 1, ?)").run(Date.now() + 60_000);
    old.close();
    expect(READABLE_FROM_VERSION).toBeLessThan(MIGRATIONS.length);
    const reader = openStoreReadOnly(path);
    try {
      expect(await reader.revocationsSince(0, Date.now())).toMatchObject({ cursor: 1, grants: ['g1'], tokens: [], keys: [] });
      expect(await reader.verifyAudit()).toMatchObject({ ok: true });
    } finally {
      reader.close();
    }
    const check = new Database(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(READABLE_FROM_VERSION);
    check.close();
  });

  it('refuses a -wal without its -shm, naming it, rather than read the file without what the -wal holds', async () => {
    const writer = new Database(path);
    writer.pragma('journal_mode = WAL');
    writer.pragma('wal_autocheckpoint = 0');
    writer.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
    const copy = mkdtempSync(join(tmpdir(), 'delegate-store-ro-copy-'));
    try {
      copyFileSync(path, join(copy, 'delegate.db'));
      copyFileSync(`${path}-wal`, join(copy, 'delegate.db-wal')); // a copy that kept the -wal but not the -shm
      expect(() => openStoreReadOnly(join(copy, 'delegate.db'))).toThrow(/its -wal file is there without its -shm file/);
    } finally {
      writer.close();
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('does not create a database that is not there', () => {
    expect(() => openStoreReadOnly(path)).toThrow(StoreError);
    expect(existsSync(path)).toBe(false);
  });
});

async function countUsers(): Promise<number> {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM users').get() as { n: number }).n;
  } finally {
    db.close();
  }
}
