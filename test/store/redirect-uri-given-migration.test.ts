// The migration that records whether an authorization request sent redirect_uri: requests and codes written
// before it all sent one, so they read as given, and their /token requests still need it. Real SQLite files.
import { expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { databaseBefore, databaseFileEachTest } from './migration-support.js';

const databaseFile = databaseFileEachTest('delegate-redirect-given-migration-');

it('reads the codes of a database from before it as having sent redirect_uri', async () => {
  const path = databaseFile();
  // The code alone: its grant, client and user are not what is read here.
  databaseBefore(path, 'redirect_uri_given', (db) => {
    db.prepare(
      `INSERT INTO auth_codes (code_hash, client_id, redirect_uri, code_challenge, resource, scope, grant_id, user_id, family_id, created_at, expires_at, used_at)
       VALUES ('h1', 'cli_a', 'http://127.0.0.1:43123/callback', 'c', 'http://127.0.0.1:8412/mcp', 'slots:find', 'grt_1', 'u1', 'fam_1', 1, 2, NULL)`,
    ).run();
  });
  const store = openStore(path);
  try {
    expect(await store.authCodeByHash('h1')).toMatchObject({ redirectUri: 'http://127.0.0.1:43123/callback', redirectUriGiven: true });
  } finally {
    store.close();
  }
});
