// Test support for the schema's migrations: a real SQLite file per test, and a database as the delegate before a
// given migration left it, to open with the current store and see what the migration made of its rows.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect } from 'vitest';
import { MIGRATIONS } from '../../src/store/schema.js';

/** A database file in a directory of its own for each test (removed after it): call at the top of a test file. */
export function databaseFileEachTest(prefix: string): () => string {
  let dir: string | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterEach(() => rmSync(dir!, { recursive: true, force: true }));
  return () => join(dir!, 'delegate.db');
}

/**
 * Writes at `path` a database with every migration before the one whose SQL contains `marker` applied, then the
 * rows `fill` writes (foreign keys off: a test writes the rows it reads, not everything they refer to).
 */
export function databaseBefore(path: string, marker: string, fill: (db: Database.Database) => void): void {
  const migration = MIGRATIONS.findIndex((sql) => sql.includes(marker));
  expect(migration).toBeGreaterThan(0);
  const db = new Database(path);
  for (const [i, sql] of MIGRATIONS.slice(0, migration).entries()) {
    db.exec(sql);
    db.pragma(`user_version = ${i + 1}`);
  }
  db.pragma('foreign_keys = OFF');
  fill(db);
  db.close();
}
