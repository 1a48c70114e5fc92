// Each account's last sign-in (`users list`, Store.lastSignIns) is read through the partial index audit_log_sign_ins,
// one seek per account, not by scanning the whole audit log (found in review, s26: its plan was `SCAN audit_log` and
// a temporary b-tree for the GROUP BY). The migration that adds the index, on a database with sign-ins already on its
// log, answers as before. Real SQLite files.
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { LAST_SIGN_INS } from '../../src/store/sqlite.js';
import { databaseBefore, databaseFileEachTest } from './migration-support.js';

const databaseFile = databaseFileEachTest('delegate-sign-in-index-');

/** EXPLAIN QUERY PLAN's lines for `sql` on the database at `path`. */
function planOf(path: string, sql: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((r) => r.detail);
  } finally {
    db.close();
  }
}

describe('the last sign-in of each account', () => {
  it('is read in one pass over audit_log_sign_ins, which holds the sign-ins alone: no scan of the audit log', () => {
    const path = databaseFile();
    openStore(path).close();
    const plan = planOf(path, LAST_SIGN_INS);
    expect(plan).toEqual(['SEARCH audit_log USING COVERING INDEX audit_log_sign_ins (user_id>?)']);
  });

  // Found in review (s26new): a search per account (a correlated subquery) was cheap through the index and cost a
  // scan of the whole log per account without it, on a database read as it stands (a read-only disk): 24.5 s for 50
  // accounts and 500,000 records against 1.3 s before the index.
  it('on a database from before the index (read as it stands): one pass over the log, not one per account', () => {
    const path = databaseFile();
    databaseBefore(path, 'audit_log_sign_ins', () => undefined);
    const plan = planOf(path, LAST_SIGN_INS);
    expect(plan.filter((line) => /\baudit_log\b/.test(line))).toEqual(['SCAN audit_log']);
    expect(plan.join(' | ')).not.toMatch(/SUBQUERY/);
  });

  it('on a database from before the index: the migration adds it, and the answers are those the log holds', async () => {
    const path = databaseFile();
    databaseBefore(path, 'audit_log_sign_ins', (db) => {
      const user = db.prepare("INSERT INTO users (id, name, password_hash, is_owner, time_zone, created_at, removed_at) VALUES (?, ?, NULL, 0, 'UTC', 1, ?)");
      user.run('usr_alice', 'alice', null);
      user.run('usr_bob', 'bob', null);
      user.run('usr_carol', 'removed:usr_carol:carol', 50);
      // Records as a log holds them (the chain's hashes are not what this reads).
      const record = db.prepare("INSERT INTO audit_log (at, event, user_id, actors, detail, prev_hash, hash) VALUES (?, ?, ?, '[]', '{}', 'x', 'y')");
      record.run(10, 'sign_in', 'usr_alice');
      record.run(30, 'sign_in', 'usr_alice');
      record.run(40, 'sign_in_failed', 'usr_alice');
      record.run(20, 'sign_in', 'usr_carol');
      record.run(60, 'tool_call', 'usr_bob');
      record.run(70, 'sign_in', null);
    });
    const store = openStore(path);
    try {
      expect(await store.lastSignIns()).toEqual(
        new Map([
          ['usr_alice', 30],
          ['usr_carol', 20],
        ]),
      );
      // A sign-in recorded after the upgrade is found through the index too.
      await store.appendAudit({ event: 'sign_in', user: 'usr_bob', detail: { method: 'password' } }, 80);
      expect((await store.lastSignIns()).get('usr_bob')).toBe(80);
    } finally {
      store.close();
    }
    const db = new Database(path, { readonly: true });
    try {
      expect(db.prepare("SELECT sql FROM sqlite_master WHERE name = 'audit_log_sign_ins'").pluck().get()).toMatch(/WHERE event = 'sign_in'/);
    } finally {
      db.close();
    }
  });
});
