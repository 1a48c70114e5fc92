// openStore's say in a migration (review s24upgrade): the caller is asked before anything is written to a database
// below this build's schema and may refuse (its error comes back as it is, the database left at its version), and is
// told which migrations the open applied, so that the CLI can look for older servers first and say what it changed.
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/schema.js';
import { databaseBefore, databaseFileEachTest } from './migration-support.js';

const file = databaseFileEachTest('delegate-migration-veto-');
const OLD = MIGRATIONS.findIndex((sql) => sql.includes('validators_from'));
const versionOf = (path: string) => {
  const db = new Database(path, { readonly: true });
  try {
    return [db.pragma('user_version', { simple: true }), db.pragma('journal_mode', { simple: true })];
  } finally {
    db.close();
  }
};

describe('a database below the current schema', () => {
  it('beforeMigrate is asked (from, to) first; what it throws comes back as it is, nothing written', () => {
    databaseBefore(file(), 'validators_from', () => {});
    const veto = new Error('servers of an older version run here');
    const asked: number[][] = [];
    const open = () =>
      openStore(file(), {
        beforeMigrate: (from, to) => {
          asked.push([from, to]);
          throw veto;
        },
      });
    expect(open).toThrow(veto);
    expect(asked).toEqual([[OLD, MIGRATIONS.length]]);
    expect(versionOf(file())).toEqual([OLD, 'delete']); // not even switched to WAL
  });

  it('migrated reports the migrations the open applied, once; a current database reports none', () => {
    databaseBefore(file(), 'validators_from', () => {});
    const migrated: number[][] = [];
    openStore(file(), { migrated: (from, to) => migrated.push([from, to]) }).close();
    openStore(file(), { migrated: (from, to) => migrated.push([from, to]), beforeMigrate: () => expect.fail('asked with the schema current') }).close();
    expect(migrated).toEqual([[OLD, MIGRATIONS.length]]);
    expect(versionOf(file())[0]).toBe(MIGRATIONS.length);
  });
});
