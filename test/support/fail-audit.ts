// A full disk for one kind of audit record, as the review simulated it: a
// trigger on audit_log, made through a second connection to the database,
// aborts every insert of that event until it is dropped.
import Database from 'better-sqlite3';
import { join } from 'node:path';

/** Makes every `event` record in `home`'s database fail as a full disk would, until the returned function is called. */
export function failAuditRecords(home: string, event: string): () => void {
  const db = new Database(join(home, 'delegate.db'));
  db.prepare(`CREATE TRIGGER full_disk BEFORE INSERT ON audit_log WHEN NEW.event = ${JSON.stringify(event).replace(/"/g, "'")} BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`).run();
  return () => {
    db.exec('DROP TRIGGER full_disk');
    db.close();
  };
}
