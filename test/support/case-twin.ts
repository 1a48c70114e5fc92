// An account whose name differs from another's only in case, as databases
// from before names were unique ignoring case hold them: the migration that
// made them so marked the later one case_duplicate, left out of the unique
// index (test/store/name-case-migration.test.ts migrates such a database).
// Written straight to the database, as no command can add one any more.
import Database from 'better-sqlite3';

/** Adds the account `name` (id usr_upper, no password, UTC) to the database at `dbPath`, created at `createdAt`. */
export function addCaseTwin(dbPath: string, name: string, createdAt: number): void {
  const db = new Database(dbPath);
  try {
    db.prepare("INSERT INTO users (id, name, password_hash, is_owner, time_zone, created_at, case_duplicate) VALUES ('usr_upper', ?, NULL, 0, 'UTC', ?, 1)").run(name, createdAt);
  } finally {
    db.close();
  }
}
