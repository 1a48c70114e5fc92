// `addUser` when another process adds the same name between its look and its
// write (found at stop 21, `delegate users add`): the name is UNIQUE, so the
// write is refused, and the caller gets the answer the look would have given
// (NAME_TAKEN), not the database's words. With `replace`, an account gone by
// the time addUser looks (removed by another process while the password was
// hashed) is refused, never added back (noticed in review, s33team).
import { describe, expect, it } from 'vitest';
import { twoConnectionsEachTest } from '../support/two-connections.js';
import { addUser, UserError } from '../../src/authz/users.js';
import type { Store } from '../../src/store/index.js';

let store: Store;
let other: Store; // another process's connection
twoConnectionsEachTest('delegate-add-user-race-', (opened, another) => {
  [store, other] = [opened, another];
});

/** `store`, whose createUser lets the other connection add an account of the same name (or `otherName`) first. */
function racedStore(otherName?: string): Store {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'createUser') {
        return async (user: Parameters<Store['createUser']>[0]) => {
          await other.createUser({ ...user, id: 'usr_other', name: otherName ?? user.name, passwordHash: null });
          return target.createUser(user);
        };
      }
      const value = Reflect.get(target, key) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe('an account added by another process between the look and the write', () => {
  it('is refused as NAME_TAKEN, and the other account stands; nothing recorded', async () => {
    const added = addUser(racedStore(), { name: 'zoe', password: 'a long and secret password', timeZone: 'UTC' }, 1, { by: 'cli' });
    await expect(added).rejects.toThrow(UserError);
    await expect(added).rejects.toMatchObject({ code: 'NAME_TAKEN', message: 'There is already an account named zoe.' });
    expect((await store.userByName('zoe'))?.id).toBe('usr_other');
    expect(await store.listAudit()).toEqual([]);
  });

  it('with replace, is refused as NO_SUCH_ACCOUNT before anything is written: replace never adds an account', async () => {
    const set = addUser(racedStore(), { name: 'zoe', password: 'a long and secret password', timeZone: 'UTC', replace: true }, 1, { by: 'cli' });
    await expect(set).rejects.toMatchObject({ code: 'NO_SUCH_ACCOUNT', message: 'There is no account named zoe, so there is no password to set.' });
    expect(await store.listUsers()).toEqual([]);
    expect(await store.listAudit()).toEqual([]);
  });
});

// Found in review (s24accounts): names are taken ignoring case (accountNamedLike), but by a look and then an insert,
// and the UNIQUE index was case-sensitive: `alice` added by another process between the two, `Alice` was added too.
describe('an account whose name differs only in case, added by another process between the look and the write', () => {
  it('is refused by the database and answered as NAME_TAKEN naming that account; one account, nothing recorded', async () => {
    const added = addUser(racedStore('alice'), { name: 'Alice', password: 'a long and secret password', timeZone: 'UTC' }, 1, { by: 'cli' });
    await expect(added).rejects.toThrow(UserError);
    await expect(added).rejects.toMatchObject({ code: 'NAME_TAKEN', message: 'There is already an account named alice.', replaceable: 'alice' });
    expect((await store.listUsers()).map((u) => u.name)).toEqual(['alice']);
    expect(await store.listAudit()).toEqual([]);
  });

  it('with replace, is refused too (that would set another account’s password)', async () => {
    await other.createUser({ id: 'usr_other', name: 'ALICE', passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 1 });
    const added = addUser(store, { name: 'alice', password: 'a long and secret password', timeZone: 'UTC', replace: true }, 1, { by: 'cli' });
    await expect(added).rejects.toMatchObject({ code: 'NAME_TAKEN', message: 'There is already an account named ALICE.' });
    expect((await store.listUsers()).map((u) => u.name)).toEqual(['ALICE']);
  });

  it('Store.createUser: the second of two names equal but for case is refused, from either connection', async () => {
    const user = (id: string, name: string) => ({ id, name, passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 1 });
    await other.createUser(user('usr_1', 'bob.smith'));
    for (const name of ['Bob.Smith', 'BOB.SMITH']) await expect(store.createUser(user(`usr_${name}`, name))).rejects.toThrow(/UNIQUE constraint failed/);
    expect((await store.listUsers()).map((u) => u.name)).toEqual(['bob.smith']);
  });
});
