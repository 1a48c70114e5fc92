// Passwords: scrypt hashes checked in constant time, and hashing that takes
// turns so that a burst of sign-in attempts cannot take every thread of
// libuv's pool from the store's syncs (and token signing) behind it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashIsOutdated, hashPassword, MAX_WAITING, passwordProblem, PasswordChecksBusy, upgradedHash, verifyPassword } from '../../src/authz/password.js';
import { openStore } from '../../src/store/index.js';
import { hashWithCost } from './password-hashes.js';

describe('passwords', () => {
  it('checks a password against its hash, and refuses another one and an unknown account', async () => {
    const stored = await hashPassword('correct horse battery');
    expect(stored).toMatch(/^scrypt\$131072\$8\$1\$/);
    expect(await verifyPassword('correct horse battery', stored)).toBe(true);
    expect(await verifyPassword('correct horse batterY', stored)).toBe(false);
    expect(await verifyPassword('correct horse battery', undefined)).toBe(false);
  });

  // Found in review (s24accounts): new hashes had N=2^15, below OWASP's Password Storage Cheat Sheet (N=2^17, r=8, p=1).
  it('hashes at N=2^17, r=8, p=1, and checks a hash made before (N=2^15) with its own parameters, saying it is outdated', async () => {
    const current = await hashPassword('correct horse battery');
    expect(current.split('$').slice(1, 4)).toEqual(['131072', '8', '1']);
    expect(hashIsOutdated(current)).toBe(false);
    expect(await upgradedHash('correct horse battery', current)).toBeUndefined();

    const older = hashWithCost('correct horse battery', 1 << 15);
    expect(hashIsOutdated(older)).toBe(true);
    expect(await verifyPassword('correct horse battery', older)).toBe(true);
    expect(await verifyPassword('correct horse batterY', older)).toBe(false);
    // Its replacement: the same password at the current parameters, with a salt of its own.
    const upgraded = await upgradedHash('correct horse battery', older);
    expect(upgraded?.split('$').slice(1, 4)).toEqual(['131072', '8', '1']);
    expect(await verifyPassword('correct horse battery', upgraded)).toBe(true);
  }, 20_000);

  it('refuses, without an error, a stored value that is no hash this build reads: damaged, or asking for more memory than it allows', async () => {
    const good = hashWithCost('correct horse battery', 1 << 10);
    const [, , r, p, salt, key] = good.split('$');
    // And (s24new3) more work than a current hash (N=2^17 with p=2), and N=2^16 with r=1, which scrypt itself refuses (N < 2^(16·r)).
    for (const stored of [`scrypt$abc$${r}$${p}$${salt}$${key}`, `scrypt$1000$${r}$${p}$${salt}$${key}`, `scrypt$${1 << 20}$8$1$${salt}$${key}`, `scrypt$1024$${r}$${p}$$${key}`, 'bcrypt$x', '', `scrypt$${1 << 17}$8$2$${salt}$${key}`, `scrypt$${1 << 16}$1$1$${salt}$${key}`]) {
      expect(await verifyPassword('correct horse battery', stored), stored).toBe(false);
      expect(hashIsOutdated(stored)).toBe(true);
    }
    expect(await verifyPassword('correct horse battery', good)).toBe(true);
  });

  it(`lets at most ${MAX_WAITING} checks wait their turn, and refuses more at once (sign-in answers 503)`, async () => {
    // Against a hash at the parameters before (N=2^15, a quarter of the time): what is counted is the waiting, not the cost.
    const stored = hashWithCost('the password', 1 << 15);
    const results = await Promise.allSettled(Array.from({ length: MAX_WAITING + 4 }, (_, i) => verifyPassword(`guess-${i}`, stored)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(MAX_WAITING);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused).toHaveLength(4);
    for (const r of refused) expect(r.reason).toBeInstanceOf(PasswordChecksBusy);
    // Once they are done, checks are taken again.
    expect(await verifyPassword('x', undefined)).toBe(false);
  }, 20_000);

  it(`leaves the thread pool to a store write while ${MAX_WAITING} sign-in attempts (as many as may wait) are checked`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'delegate-password-pool-'));
    const store = openStore(join(dir, 'delegate.db'));
    try {
      const order: string[] = [];
      // An older hash (N=2^15), padded to the current cost's work (about 0.4 s a check): long beside a write's sync.
      const stored = hashWithCost('the password', 1 << 15);
      const checks = Array.from({ length: MAX_WAITING }, (_, i) => verifyPassword(`guess-${i}`, stored).then(() => order.push(`check ${i}`)));
      // Its commit is synced on the pool; with the hashes holding all four threads it would wait for them.
      const write = store.createUser({ id: 'usr_1', name: 'a', passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 1 }).then(() => order.push('write'));
      await Promise.all([...checks, write]);
      expect(order[0]).toBe('write');
      expect(order.slice(1)).toEqual(Array.from({ length: MAX_WAITING }, (_, i) => `check ${i}`));
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// Found in review (s24accounts): only the length was checked, so eight spaces were a password. NIST SP 800-63B
// §3.1.1.2: no composition rules, but values that are obviously weak are refused.
describe('passwords refused as obviously weak', () => {
  it.each([
    ['only spaces', '        ', 'A password may not be only spaces or other blank characters.'],
    ['only blank characters of several kinds', ' \t \u00a0 \u3000 \n ', 'A password may not be only spaces or other blank characters.'],
    ['one character repeated', 'aaaaaaaaaaaa', 'A password may not be one character repeated.'],
    ['one character repeated, full-width (the same once normalized, as it is hashed)', 'ａaａaａaａa', 'A password may not be one character repeated.'],
    ['one emoji repeated', '🔑🔑🔑🔑🔑🔑🔑🔑', 'A password may not be one character repeated.'],
    ['the account’s name', 'administrator', "A password may not be the account's name."],
    ['the account’s name in another case', 'AdMiniStrator', "A password may not be the account's name."],
    ['the account’s name with spaces around it', '  ADMINISTRATOR ', "A password may not be the account's name."],
  ])('%s', (_what, password, message) => {
    expect(passwordProblem(password, 'administrator')).toBe(message);
  });

  it('takes what is none of these (a name inside a longer password, two characters alternating, spaces inside)', () => {
    for (const password of ['administrator2', 'abababab', 'correct horse battery', 'aaaaaaaab', '        x']) expect(passwordProblem(password, 'administrator'), password).toBeUndefined();
    expect(passwordProblem('short', 'administrator')).toBe('A password needs at least 8 characters.');
  });
});
