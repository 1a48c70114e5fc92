// A password hash made with the scrypt parameters before (N=2^15) is checked with its own and, at the account's
// next successful sign-in, replaced by one at the current parameters (N=2^17), in the transaction that starts the
// session and records the sign-in; and that transaction starts no session when the account's hash is no longer the
// one the password was checked against (a new password set meanwhile ends the account's sessions). Real server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { verifyPassword } from '../../src/authz/password.js';
import type { SessionRecord } from '../../src/store/index.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, csrfOf } from '../support/oauth-flow.js';
import { hashWithCost } from './password-hashes.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

/** An account whose password was hashed before the parameters were raised. */
async function accountWithOlderHash(name: string, password: string): Promise<string> {
  const passwordHash = hashWithCost(password, 1 << 15);
  await authz.store.createUser({ id: `usr_${name}`, name, passwordHash, isOwner: false, timeZone: 'UTC', createdAt: Date.now() });
  return passwordHash;
}

async function signIn(name: string, password: string) {
  const browser = new Browser();
  const form = await browser.get(`${authz.issuer}/login?next=%2Fgrants`);
  return browser.post(`${authz.issuer}/login`, { csrf: csrfOf(form.html), next: '/grants', username: name, password });
}

const storedHash = async (name: string) => (await authz.store.userByName(name))!.passwordHash!;
const recordsOf = async (user: string) => (await authz.store.listAudit()).filter((r) => r.user === user).map((r) => [r.event, r.detail]);

describe('a password hash with the parameters before', () => {
  it('signs in, and is replaced by a hash of the same password at N=2^17, r=8, p=1, the sign-in record saying so', async () => {
    const older = await accountWithOlderHash('olga', 'olga has a long password');
    expect((await signIn('olga', 'olga has a long password')).status).toBe(303);
    const upgraded = await storedHash('olga');
    expect(upgraded).not.toBe(older);
    expect(upgraded.split('$').slice(1, 4)).toEqual(['131072', '8', '1']);
    expect(await verifyPassword('olga has a long password', upgraded)).toBe(true);
    // The next sign-in finds the current parameters and keeps the hash.
    expect((await signIn('olga', 'olga has a long password')).status).toBe(303);
    expect(await storedHash('olga')).toBe(upgraded);
    expect(await recordsOf('usr_olga')).toEqual([
      ['sign_in', { method: 'password', source: '127.0.0.1', rehashed: true }],
      ['sign_in', { method: 'password', source: '127.0.0.1' }],
    ]);
    expect((await authz.store.verifyAudit()).ok).toBe(true);
  }, 30_000);

  it('is kept as it is after a wrong password', async () => {
    const older = await accountWithOlderHash('pavel', 'pavel has a long password');
    expect((await signIn('pavel', 'not the password')).status).toBe(400);
    expect(await storedHash('pavel')).toBe(older);
  });
});

describe('a password set while a sign-in with the one before is being checked', () => {
  it('refuses the sign-in (400, as a wrong password) and starts no session: the new password stands, not the old one rehashed', async () => {
    await accountWithOlderHash('quinn', 'quinn has a long password');
    // The administrator's `users add quinn --replace` lands between the sign-in's look at the account and its session.
    const look = authz.store.userByName.bind(authz.store);
    let replaced = false;
    authz.store.userByName = async (name: string) => {
      const found = await look(name);
      if (name === 'quinn' && !replaced) {
        replaced = true;
        await addUser(authz.store, { name: 'quinn', password: 'quinn has a new password', timeZone: 'UTC', replace: true }, Date.now(), { by: 'cli' });
      }
      return found;
    };
    try {
      const answer = await signIn('quinn', 'quinn has a long password');
      expect(answer.status).toBe(400);
      expect(answer.headers.get('set-cookie') ?? '').not.toMatch(/delegate_session_\d+=/);
    } finally {
      authz.store.userByName = look;
    }
    expect(await verifyPassword('quinn has a new password', await storedHash('quinn'))).toBe(true);
    expect((await recordsOf('usr_quinn')).map(([event]) => event)).toEqual(['password_set', 'sign_in_failed']);
    expect((await signIn('quinn', 'quinn has a new password')).status).toBe(303);
  }, 30_000);

  it('Store.startPasswordSession: false, and nothing written, when the hash is no longer the one checked', async () => {
    const older = await accountWithOlderHash('rhea', 'rhea has a long password');
    await addUser(authz.store, { name: 'rhea', password: 'rhea has a new password', timeZone: 'UTC', replace: true }, Date.now());
    const current = await storedHash('rhea');
    const session: SessionRecord = { idHash: 'h_rhea', userId: 'usr_rhea', createdAt: Date.now(), expiresAt: Date.now() + 60_000, boundRequestHash: 'b', signedInBy: 'password' };
    const started = await authz.store.startPasswordSession(session, { verified: older, upgraded: 'scrypt$131072$8$1$x$y' }, { event: { event: 'sign_in', user: 'usr_rhea' }, at: Date.now() });
    expect(started).toBe(false);
    expect(await storedHash('rhea')).toBe(current);
    expect(await authz.store.sessionByHash('h_rhea', Date.now())).toBeUndefined();
    expect(await recordsOf('usr_rhea')).toEqual([]);
  });
});
