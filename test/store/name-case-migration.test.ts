// The migration that makes account names unique ignoring case (the index users_name_nocase): a database that already
// holds names equal but for case (added before `users add` refused them, s23accounts) still opens, and each of those
// accounts works by its exact name; the oldest keeps the name for the index, so that no new account can take it in
// any case. Real SQLite files.
import { expect, it } from 'vitest';
import { addUser } from '../../src/authz/users.js';
import { verifyPassword } from '../../src/authz/password.js';
import { openStore } from '../../src/store/index.js';
import { databaseBefore, databaseFileEachTest } from './migration-support.js';

const databaseFile = databaseFileEachTest('delegate-name-case-migration-');

it('opens a database holding alice, Alice and ALICE: all three kept and usable by their exact names, a fourth refused', async () => {
  const path = databaseFile();
  databaseBefore(path, 'case_duplicate', (db) => {
    const insert = db.prepare("INSERT INTO users (id, name, password_hash, is_owner, time_zone, created_at) VALUES (?, ?, NULL, 0, 'UTC', ?)");
    insert.run('usr_upper', 'Alice', 2);
    insert.run('usr_lower', 'alice', 1);
    insert.run('usr_caps', 'ALICE', 3);
    insert.run('usr_bob', 'bob', 1);
  });
  const store = openStore(path);
  try {
    expect((await store.listUsers()).map((u) => u.name)).toEqual(['alice', 'bob', 'Alice', 'ALICE']);
    for (const [name, id] of [['alice', 'usr_lower'], ['Alice', 'usr_upper'], ['ALICE', 'usr_caps']]) expect((await store.userByName(name!))?.id).toBe(id);
    // The oldest is the one a name in any other case finds.
    expect((await store.userByNameIgnoringCase('aLiCe'))?.id).toBe('usr_lower');
    // Each gets its own password by its exact name.
    for (const name of ['alice', 'Alice']) {
      await addUser(store, { name, password: `${name} has a long password`, timeZone: 'UTC', replace: true }, 10);
      expect(await verifyPassword(`${name} has a long password`, (await store.userByName(name))?.passwordHash)).toBe(true);
    }
    // No new one: the code's look refuses it, and so does the database when the look is passed by.
    await expect(addUser(store, { name: 'aLiCe', password: 'a long and secret password', timeZone: 'UTC' }, 10)).rejects.toMatchObject({ code: 'NAME_TAKEN' });
    await expect(store.createUser({ id: 'usr_new', name: 'aLiCe', passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 10 })).rejects.toThrow(/UNIQUE constraint failed/);
    await expect(store.createUser({ id: 'usr_bob2', name: 'BOB', passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 10 })).rejects.toThrow(/UNIQUE constraint failed/);
    expect(await store.userByName('aLiCe')).toBeUndefined();
  } finally {
    store.close();
  }
});
