// The migration that keeps, with a pending consent request, the calendars its page listed (AuthRequestRecord.
// calendarsShown). A request pending across it has no such list, and Approve would read its boxes against none: it
// ends, and its page says to start again. A request made after it keeps its list. Real SQLite files.
import Database from 'better-sqlite3';
import { expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { databaseBefore, databaseFileEachTest } from './migration-support.js';

const databaseFile = databaseFileEachTest('delegate-calendars-shown-migration-');
const REQUEST = `'s', 'u1', 'cli_a', 'http://127.0.0.1:43123/callback', 'slots:find', 'http://127.0.0.1:8412/mcp', 'st', 'c'`;

it('ends a request pending from before it, and keeps the list of one made after', async () => {
  const path = databaseFile();
  const far = Date.now() + 3_600_000;
  databaseBefore(path, 'calendars_shown', (db) => {
    db.prepare(
      `INSERT INTO auth_requests (id, session_hash, user_id, client_id, redirect_uri, scope, resource, state, code_challenge, csrf_hash, created_at, expires_at)
       VALUES ('req_old', ${REQUEST}, 'h', 1, ${far})`,
    ).run();
  });
  const store = openStore(path);
  try {
    expect(await store.authRequestById('req_old', Date.now())).toBeUndefined();
    const db = new Database(path);
    db.pragma('foreign_keys = OFF');
    db.prepare(
      `INSERT INTO auth_requests (id, session_hash, user_id, client_id, redirect_uri, scope, resource, state, code_challenge, calendars_shown, csrf_hash, created_at, expires_at)
       VALUES ('req_new', ${REQUEST}, '["demo","work"]', 'h', 1, ${far})`,
    ).run();
    db.close();
    expect(await store.authRequestById('req_new', Date.now())).toMatchObject({ calendarsShown: ['demo', 'work'] });
  } finally {
    store.close();
  }
});
