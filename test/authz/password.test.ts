// Passwords: scrypt hashes checked in constant time, and hashing that takes
// turns so that a burst of sign-in attempts cannot take every thread of
// libuv's pool from the store's syncs (and token signing) behind it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashPassword, MAX_WAITING, PasswordChecksBusy, verifyPassword } from '../../src/authz/password.js';
import { openStore } from '../../src/store/index.js';

describe('passwords', () => {
  it('checks a password against its hash, and refuses another one and an unknown account', async () => {
    const stored = await hashPassword('correct horse battery');
    expect(stored).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifyPassword('correct horse battery', stored)).toBe(true);
    expect(await verifyPassword('correct horse batterY', stored)).toBe(false);
    expect(await verifyPassword('correct horse battery', undefined)).toBe(false);
  });

  it(`lets at most ${MAX_WAITING} checks wait their turn, and refuses more at once (sign-in answers 503)`, async () => {
    const results = await Promise.allSettled(Array.from({ length: MAX_WAITING + 4 }, (_, i) => verifyPassword(`guess-${i}`, undefined)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(MAX_WAITING);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused).toHaveLength(4);
    for (const r of refused) expect(r.reason).toBeInstanceOf(PasswordChecksBusy);
    // Once they are done, checks are taken again.
    expect(await verifyPassword('x', undefined)).toBe(false);
  }, 20_000);

  it('leaves the thread pool to a store write while eight sign-in attempts are checked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'delegate-password-pool-'));
    const store = openStore(join(dir, 'delegate.db'));
    try {
      const order: string[] = [];
      const checks = Array.from({ length: 8 }, (_, i) => verifyPassword(`guess-${i}`, undefined).then(() => order.push(`check ${i}`)));
      // Its commit is synced on the pool; with the eight hashes holding all four threads it would wait for four of them.
      const write = store.createUser({ id: 'usr_1', name: 'a', passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 1 }).then(() => order.push('write'));
      await Promise.all([...checks, write]);
      expect(order[0]).toBe('write');
      expect(order.slice(1)).toEqual(Array.from({ length: 8 }, (_, i) => `check ${i}`));
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
