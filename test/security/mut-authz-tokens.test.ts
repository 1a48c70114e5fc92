// Codes and refresh tokens used past their bounds, attacked from outside
// against a real authorization server on loopback whose clock the test moves:
// an authorization code redeemed after its 60 seconds (RFC 6749 §4.1.2: a
// code "MUST expire shortly after it is issued"), and a refresh naming another
// resource than its token's (RFC 8707 §2.2: invalid_target). Written for the
// mutation review (s32 M1): dropping either check (src/authz/grant-code.ts,
// src/authz/grant-refresh.ts) left every other test green. Each refusal is
// checked on the wire and in the database (nothing changed).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { obtainCode, obtainTokens, redeem } from '../authz/helpers.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postForm } from '../support/oauth-flow.js';
import { stateChangedBy } from './stack.js';

let clock = Date.now();
let authz: TestAuthz;
let db: { paths: { db: string } };

beforeAll(async () => {
  authz = await startTestAuthz({ now: () => clock });
  db = { paths: { db: join(authz.home, 'delegate.db') } };
});
afterAll(async () => authz?.close());

describe('a refresh naming another resource than its token was issued for (RFC 8707)', () => {
  it('the calendar backend, or another URL: invalid_target, no token, nothing changed; the same token refreshes for its own resource', async () => {
    const tokens = await obtainTokens(authz);
    for (const resource of [authz.calendarUrl, 'https://elsewhere.example/mcp']) {
      const { result, changed } = await stateChangedBy(db, () =>
        postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId, resource }),
      );
      expect(result.status, `${resource}: ${JSON.stringify(result.body)}`).toBe(400);
      expect(result.body.error).toBe('invalid_target');
      expect(result.body.access_token).toBeUndefined();
      expect(changed).toEqual([]);
    }
    const own = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId, resource: authz.agentUrl });
    expect(own.status, JSON.stringify(own.body)).toBe(200);
  });
});

describe('an authorization code past its lifetime (60 s)', () => {
  it('is invalid_grant, no token, nothing changed; a code of the same moment redeemed at 59 s still works (the control)', async () => {
    const inTime = await obtainCode(authz);
    const late = await obtainCode(authz);
    clock += 59_000;
    expect((await redeem(authz, inTime)).status).toBe(200);
    clock += 2_000;
    const { result, changed } = await stateChangedBy(db, () => redeem(authz, late));
    expect(result.status, JSON.stringify(result.body)).toBe(400);
    expect(result.body.error).toBe('invalid_grant');
    expect(result.body.access_token).toBeUndefined();
    expect(changed).toEqual([]);
  });
});
