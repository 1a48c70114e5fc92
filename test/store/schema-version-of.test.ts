// schemaVersionOf: the schema version a database has now, read again by a command that found a migration due and then
// waited (refuseUpgradeWhileServed). It leaves nothing behind: a database closed cleanly (no -wal) is read from its
// header, where opening it with SQLite left a -wal and a -shm beside it (found in review, s28new).
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CURRENT_SCHEMA_VERSION, openStore, schemaVersionOf } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/schema.js';
import { databaseBefore, databaseFileEachTest } from './migration-support.js';

const dbFile = databaseFileEachTest('delegate-schema-version-');

describe('schemaVersionOf', () => {
  it('reads a database closed cleanly from its header, leaving no -wal or -shm', () => {
    openStore(dbFile()).close();
    expect([existsSync(`${dbFile()}-wal`), existsSync(`${dbFile()}-shm`)]).toEqual([false, false]);
    expect(schemaVersionOf(dbFile())).toBe(CURRENT_SCHEMA_VERSION);
    expect([existsSync(`${dbFile()}-wal`), existsSync(`${dbFile()}-shm`)]).toEqual([false, false]);
  });

  it('reads an older database as it stands', () => {
    databaseBefore(dbFile(), 'validators_from', () => {});
    const old = MIGRATIONS.findIndex((sql) => sql.includes('validators_from'));
    expect(schemaVersionOf(dbFile())).toBe(old);
  });

  it('reads one another connection holds open (its -wal there), as SQLite sees it', () => {
    databaseBefore(dbFile(), 'validators_from', () => {});
    const store = openStore(dbFile()); // migrates it, in the WAL
    try {
      expect(existsSync(`${dbFile()}-wal`)).toBe(true);
      expect(schemaVersionOf(dbFile())).toBe(CURRENT_SCHEMA_VERSION);
    } finally {
      store.close();
    }
  });

  it('is undefined for a database that is not there', () => {
    expect(schemaVersionOf(`${dbFile()}.missing`)).toBeUndefined();
  });
});
