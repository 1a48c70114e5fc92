// The local owner's first setup (ensureOwner: the first `serve`, or a `calendar add` before it) when another process
// adds an account under the name picked for the owner between the look and the write: `delegate users add root`
// beside the first `serve` on a new data directory. Found in review (s28race): `serve` stopped on SQLite's "UNIQUE
// constraint failed: users.name"; now the name is looked for again, as the next start would have.
import { describe, expect, it } from 'vitest';
import { twoConnectionsEachTest } from '../support/two-connections.js';
import { ensureOwner } from '../../src/authz/bootstrap.js';
import type { Store } from '../../src/store/index.js';

let store: Store;
let other: Store; // another process's connection: `delegate users add`
twoConnectionsEachTest('delegate-owner-name-race-', (opened, another) => {
  [store, other] = [opened, another];
});

/** `store`, whose createUser lets the other connection add an account under the name being written first, for the first `times` writes. */
function racedStore(times: number, spell: (name: string) => string = (n) => n): Store {
  let raced = 0;
  return new Proxy(store, {
    get(target, key) {
      if (key === 'createUser') {
        return async (user: Parameters<Store['createUser']>[0], record?: Parameters<Store['createUser']>[1]) => {
          if (raced < times) {
            raced++;
            await other.createUser({ ...user, id: `usr_other${raced}`, name: spell(user.name), isOwner: false });
          }
          return target.createUser(user, record);
        };
      }
      const value = Reflect.get(target, key) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

const SETUP = { ownerName: 'root', timeZone: 'UTC' };

describe('the name picked for the owner, taken by another process between the look and the write', () => {
  it('sets the owner up as root-owner, on the record once; the other account keeps root', async () => {
    const owner = await ensureOwner(racedStore(1), SETUP, 1);
    expect(owner).toMatchObject({ name: 'root-owner', isOwner: true });
    expect((await store.ownerUser())?.id).toBe(owner.id);
    expect((await store.userByName('root'))).toMatchObject({ id: 'usr_other1', isOwner: false });
    expect((await store.listAudit()).map((r) => [r.event, r.detail])).toEqual([['user_added', { by: 'setup', name: 'root-owner', owner: true }]]);
  });

  it('taken but for case (Root), and root-owner taken the same way next: root-owner-2', async () => {
    const owner = await ensureOwner(racedStore(2, (n) => n.toUpperCase()), SETUP, 1);
    expect(owner.name).toBe('root-owner-2');
    expect((await store.listUsers()).map((u) => u.name).sort()).toEqual(['ROOT', 'ROOT-OWNER', 'root-owner-2']);
  });

  it('gives up after a bounded number of names, each taken as it was written: the database refusal, no owner', async () => {
    await expect(ensureOwner(racedStore(Number.POSITIVE_INFINITY), SETUP, 1)).rejects.toThrow(/UNIQUE constraint failed: users\.name/);
    expect(await store.ownerUser()).toBeUndefined();
    expect(await store.listAudit()).toEqual([]);
  });
});
