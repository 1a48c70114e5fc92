// Sign-ins that arrive all at once, beyond what may wait for a password
// check (MAX_WAITING): the form answers 503 with Retry-After at once instead
// of queueing them for seconds, and such an answer is not counted as a
// failed attempt. Its own server: the attempts use up this address's budget.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_WAITING } from '../../src/authz/password.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser } from '../support/oauth-flow.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

const csrfOf = (html: string) => /name="csrf" value="([^"]*)"/.exec(html)?.[1] ?? '';

describe('a burst of sign-ins', () => {
  it(`answers those beyond the ${MAX_WAITING} that may wait with 503 and Retry-After, and counts them as no failure`, async () => {
    const count = MAX_WAITING + 4; // within the address's 20 failures
    const browsers = Array.from({ length: count }, () => new Browser());
    const forms = await Promise.all(browsers.map((b) => b.get(`${authz.issuer}/login?next=%2Fgrants`)));
    const answers = await Promise.all(
      browsers.map((b, i) => b.post(`${authz.issuer}/login`, { csrf: csrfOf(forms[i]!.html), next: '/grants', username: `nobody-${i}`, password: 'not a password' })),
    );
    const busy = answers.filter((a) => a.status === 503);
    expect(answers.every((a) => a.status === 400 || a.status === 503)).toBe(true);
    expect(busy.length).toBeGreaterThan(0);
    for (const answer of busy) {
      expect(answer.headers.get('retry-after')).toBe('1');
      expect(answer.html).toContain('Too many sign-ins at once');
    }
    const failed = (await authz.store.listAudit()).filter((r) => r.event === 'sign_in_failed').length;
    expect(failed).toBe(count - busy.length);
  }, 30_000);
});
