// Form and query parameters named like Object.prototype's members
// (__proto__, constructor, toString, hasOwnProperty, valueOf), alone,
// repeated and beside real parameters, at every form endpoint and every GET
// that reads a query: a 4xx with an RFC error body (or the page's own
// refusal), never a 5xx, and never mistaken for a parameter that was sent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { authorizeUrl, pkcePair, registerPublicClient } from '../support/oauth-flow.js';
import { REDIRECT } from './helpers.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

const NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
const bodies = NAMES.flatMap((n) => [`${n}=x`, `${n}=x&${n}=y`, `grant_type=refresh_token&${n}=x&refresh_token=r&client_id=c`, `${n}[]=x`]);

describe('parameters named like Object.prototype members', () => {
  it.each(['/token', '/revoke', '/introspect', '/device_authorization', '/consent', '/login', '/device', '/grants/revoke', '/logout'])('POST %s: never a 5xx', async (path) => {
    for (const body of bodies) {
      const res = await fetch(`${authz.issuer}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body, redirect: 'manual' });
      expect(res.status, `${path} ${body}`).not.toBe(404);
      expect(res.status, `${path} ${body}`).toBeLessThan(500);
    }
  });

  it.each(['/authorize', '/login', '/login/owner', '/device', '/grants'])('GET %s?…: never a 5xx', async (path) => {
    for (const body of bodies) {
      const res = await fetch(`${authz.issuer}${path}?${body}`, { redirect: 'manual' });
      expect(res.status, `${path}?${body}`).toBeLessThan(500);
      expect(res.status, `${path}?${body}`).not.toBe(404);
    }
  });
});

describe('an unknown parameter named like an Object.prototype member, given once', () => {
  it.each(NAMES)('is ignored at /authorize (RFC 6749 §3.1), not taken for a repeated one: %s', async (name) => {
    const clientId = await registerPublicClient(authz.issuer, [REDIRECT]);
    const { challenge } = pkcePair();
    const plain = authorizeUrl(authz.issuer, { clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope: 'slots:find', state: 's', challenge });
    const control = await fetch(plain, { redirect: 'manual' });
    const res = await fetch(`${plain}&${name}=x`, { redirect: 'manual' });
    // No error sent back to the client: the request goes on to sign-in, as it does without the parameter.
    const location = res.headers.get('location') ?? '';
    expect(location, `${res.status} ${location}`).not.toContain('error=');
    expect(res.status).toBe(control.status);
  });
});
