// The migration that records whether an authorization request sent redirect_uri: requests and codes written
// before it all sent one, so they read as given, and their /token requests still need it. Real SQLite files.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/schema.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-redirect-given-migration-'));
  path = join(dir, 'delegate.db');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('reads the codes of a database from before it as having sent redirect_uri', async () => {
  const thisMigration = MIGRATIONS.findIndex((sql) => sql.includes('redirect_uri_given'));
  expect(thisMigration).toBeGreaterThan(0);
  const db = new Database(path);
  for (const [i, sql] of MIGRATIONS.slice(0, thisMigration).entries()) {
    db.exec(sql);
    db.pragma(`user_version = ${i + 1}`);
  }
  db.pragma('foreign_keys = OFF'); // the code alone: its grant, client and user are not what is read here
  db.prepare(
    `INSERT INTO auth_codes (code_hash, client_id, redirect_uri, code_challenge, resource, scope, grant_id, user_id, family_id, created_at, expires_at, used_at)
     VALUES ('h1', 'cli_a', 'http://127.0.0.1:43123/callback', 'c', 'http://127.0.0.1:8412/mcp', 'slots:find', 'grt_1', 'u1', 'fam_1', 1, 2, NULL)`,
  ).run();
  db.close();
  const store = openStore(path);
  try {
    expect(await store.authCodeByHash('h1')).toMatchObject({ redirectUri: 'http://127.0.0.1:43123/callback', redirectUriGiven: true });
  } finally {
    store.close();
  }
});
