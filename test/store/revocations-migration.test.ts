// The migration that lets the revocation list name withdrawn signing keys
// (`delegate keys rotate --now`) copies the `revocations` table to change its
// CHECK. A resource server's cursor is the table's AUTOINCREMENT sequence: it
// must come through unchanged, or a server polling from its cursor would be
// told the list started over, or be sent nothing new. Real SQLite files.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/schema.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-revocations-migration-'));
  path = join(dir, 'delegate.db');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The migration under test: the one that copies `revocations` to change its CHECK. */
const THIS_MIGRATION = MIGRATIONS.findIndex((sql) => sql.includes('revocations_next'));

/** A database as the delegate before this migration left it: every migration before it applied. */
function databaseBefore(fill: (db: Database.Database) => void): void {
  expect(THIS_MIGRATION).toBeGreaterThan(0);
  const db = new Database(path);
  for (const [i, sql] of MIGRATIONS.slice(0, THIS_MIGRATION).entries()) {
    db.exec(sql);
    db.pragma(`user_version = ${i + 1}`);
  }
  fill(db);
  db.close();
}

describe('the migration that lists withdrawn keys', () => {
  it('keeps every row and the cursor, even when the newest rows were swept', async () => {
    const now = Date.now();
    databaseBefore((db) => {
      const insert = db.prepare('INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES (?, ?, ?, ?)');
      insert.run('grant', 'g1', now, now + 3600_000);
      insert.run('token', 't1', now, now + 3600_000);
      insert.run('token', 't2', now, now + 3600_000);
      insert.run('grant', 'g2', now, now + 3600_000);
      // The sweep deleted the two newest: the sequence (4) is ahead of the highest row left (2).
      db.prepare('DELETE FROM revocations WHERE seq > 2').run();
    });
    const store = openStore(path);
    try {
      const page = await store.revocationsSince(0, now);
      expect(page).toMatchObject({ cursor: 4, grants: ['g1'], tokens: ['t1'], keys: [] });
      expect((await store.revocationsSince(4, now)).cursor).toBe(4);
    } finally {
      store.close();
    }
    const db = new Database(path, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    // The next revocation continues the sequence rather than reusing a cursor a resource server has seen.
    db.close();
    const writer = new Database(path);
    const next = writer.prepare("INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES ('key', 'k1', ?, ?)").run(now, now + 3600_000);
    expect(Number(next.lastInsertRowid)).toBe(5);
    writer.close();
  });

  it('migrates a database that never revoked anything; the first revocation is cursor 1', async () => {
    databaseBefore(() => {});
    const store = openStore(path);
    store.close();
    const db = new Database(path);
    const first = db.prepare("INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES ('grant', 'g', 1, 2)").run();
    expect(Number(first.lastInsertRowid)).toBe(1);
    expect(() => db.prepare("INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES ('other', 'x', 1, 2)").run()).toThrow(/CHECK constraint/);
    db.close();
  });
});
