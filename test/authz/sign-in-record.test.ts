// A password sign-in's `sign_in` record names where it came from (`source`, the peer's address), as a failed one's
// `sign_in_failed` does: found in review (s33audit), only the failures did, so an auditor could not tell which
// address a successful sign-in after a run of failures came from. Real server.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, csrfOf } from '../support/oauth-flow.js';

// scrypt at N=2^12 here (test/support/cheap-scrypt.ts): the sign-ins' cost is not what is tested.
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
  await addUser(authz.store, { name: 'sami', password: 'sami has a long password', timeZone: 'UTC' }, Date.now());
});
afterAll(async () => authz.close());

async function signIn(name: string, password: string) {
  const browser = new Browser();
  const form = await browser.get(`${authz.issuer}/login?next=%2Fgrants`);
  return browser.post(`${authz.issuer}/login`, { csrf: csrfOf(form.html), next: '/grants', username: name, password });
}

describe('a password sign-in on the audit log', () => {
  it('records its source as the failed one records it', async () => {
    expect((await signIn('sami', 'not the password')).status).toBe(400);
    expect((await signIn('sami', 'sami has a long password')).status).toBe(303);
    const sami = (await authz.store.userByName('sami'))!.id;
    const records = (await authz.store.listAudit()).filter((r) => r.user === sami && r.event.startsWith('sign_in')).map((r) => [r.event, r.detail]);
    expect(records).toEqual([
      ['sign_in_failed', { method: 'password', source: '127.0.0.1' }],
      ['sign_in', { method: 'password', source: '127.0.0.1' }],
    ]);
  });
});
