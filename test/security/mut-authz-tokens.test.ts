// Codes and refresh tokens used past their bounds, attacked from outside
// against a real authorization server on loopback whose clock the test moves:
// an authorization code redeemed after its 60 seconds (RFC 6749 §4.1.2: a
// code "MUST expire shortly after it is issued"), and a refresh naming another
// resource than its token's (RFC 8707 §2.2: invalid_target), and an access
// token minted near the end of its delegation (its exp bounded by the
// grant's end). Written for the mutation review (s32 M1): dropping any of
// these checks (src/authz/grant-code.ts, src/authz/grant-refresh.ts,
// src/authz/issue.ts) left every other test green. Each refusal is
// checked on the wire and in the database (nothing changed).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIRECT, decodeJwt, obtainCode, obtainTokens, redeem } from '../authz/helpers.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postForm } from '../support/oauth-flow.js';
import { ownerApproves } from '../support/owner-flow.js';
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

describe('an access token minted near the end of its delegation (the owner chose "1 day" on the consent page)', () => {
  let dayClock = Date.now();
  let dayAuthz: TestAuthz;
  beforeAll(async () => {
    dayAuthz = await startTestAuthz({ now: () => dayClock });
  });
  afterAll(async () => dayAuthz?.close());

  it('never outlives the delegation: a refresh 2 minutes before its end gets a token whose exp is the end, not 10 minutes on', async () => {
    const approved = await ownerApproves(dayAuthz, { redirectUri: REDIRECT, choices: { expires_days: '1' } });
    const first = await redeem(dayAuthz, approved);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const grant = await dayAuthz.store.grantById(String(decodeJwt(String(first.body.access_token)).grant_id));
    const endSec = Math.floor(grant!.expiresAt / 1000);
    dayClock = grant!.expiresAt - 120_000;
    const refreshed = await postForm(`${dayAuthz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(first.body.refresh_token), client_id: approved.clientId });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    const exp = Number(decodeJwt(String(refreshed.body.access_token)).exp);
    expect(exp).toBeLessThanOrEqual(endSec);
    expect(Number(refreshed.body.expires_in)).toBeLessThanOrEqual(120);
  });
});
