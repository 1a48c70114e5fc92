// The refresh token's grace window against a thief (review s24bcp, RFC 9700
// §4.14.2): a spent refresh token is honoured once more within 5 seconds of
// its rotation, so that a client whose answer was lost retries and goes on.
// Before, it was honoured any number of times: each presentation minted
// another live token of the family, every copy then rotated on its own past
// the window, none ever presented a spent token, and the theft was never
// detected. Now a second retry is a replay, and the family's next rotation
// supersedes its other unused token, whose presentation is a replay too: two
// chains of one sign-in never both live past the window. A family is one
// sign-in (one code redemption): another sign-in on the same grant is not
// touched. All from outside, against a real AS on loopback.
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIRECT, obtainTokens, redeem } from '../authz/helpers.js';
import { authorizeUrl, callbackParams, pkcePair, postForm } from '../support/oauth-flow.js';
import { openAsOwner } from '../support/owner-flow.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { queryRows } from './stack.js';

const GRACE_MS = 5_000;
let clock = Date.now();
let authz: TestAuthz;

beforeAll(async () => {
  authz = await startTestAuthz({ now: () => clock });
});
afterAll(async () => authz?.close());

const db = () => ({ paths: { db: join(authz.home, 'delegate.db') } });
const refresh = (token: string, clientId: string) => postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: token, client_id: clientId });
const familyOf = (accessToken: string) => String(queryRows(db(), 'SELECT family_id FROM issued_tokens WHERE jti = ?', String(decodeJwt(accessToken).jti))[0]!.family_id);
const familyRevoked = (family: string) => queryRows(db(), 'SELECT revoked_at IS NOT NULL AS revoked FROM token_families WHERE id = ?', family)[0]!.revoked === 1;
const replaysOf = async (family: string) => (await authz.store.listAudit()).filter((r) => r.event === 'refresh_replay' && r.detail.family_revoked === family);

/** Refreshes the chain that starts at `token` `times` times in a row, one second apart; the statuses, and the last token. */
async function followChain(token: string, clientId: string, times: number): Promise<{ statuses: Array<number | string>; last: string }> {
  const statuses: Array<number | string> = [];
  let last = token;
  for (let i = 0; i < times; i++) {
    const res = await refresh(last, clientId);
    statuses.push(res.status === 200 ? 200 : String(res.body.error));
    if (res.status === 200) last = String(res.body.refresh_token);
    clock += 1_000;
  }
  return { statuses, last };
}

describe('a spent refresh token presented again within the grace window', () => {
  it('three times (the reviewer’s repro): the third is invalid_grant and revokes the family; past the window no chain refreshes', async () => {
    const signIn = await obtainTokens(authz);
    const family = familyOf(signIn.accessToken);
    const first = await refresh(signIn.refreshToken, signIn.clientId);
    clock += 1_000;
    const second = await refresh(signIn.refreshToken, signIn.clientId);
    clock += 1_000;
    const third = await refresh(signIn.refreshToken, signIn.clientId);
    expect([first.status, second.status]).toEqual([200, 200]);
    expect([third.status, third.body.error]).toEqual([400, 'invalid_grant']);
    expect(String(third.body.error_description)).toMatch(/already used/);
    expect(third.body.refresh_token).toBeUndefined();
    expect(familyRevoked(family)).toBe(true);
    const replays = await replaysOf(family);
    expect(replays.map((r) => r.detail.presented)).toEqual(['retried']);

    clock += GRACE_MS + 1_500; // the reviewer's 6.5 s
    for (const chain of [first, second]) {
      expect((await followChain(String(chain.body.refresh_token), signIn.clientId, 3)).statuses).toEqual(['invalid_grant', 'invalid_grant', 'invalid_grant']);
    }
    // The two chains' access tokens are on the revocation list.
    const list = (await (await fetch(`${authz.issuer}/revocations?since=0`)).json()) as { tokens: string[] };
    for (const chain of [first, second]) expect(list.tokens).toContain(String(decodeJwt(String(chain.body.access_token)).jti));
    // The replay was recorded once; the later refusals found the family revoked.
    expect(await replaysOf(family)).toHaveLength(1);
  });

  it.each([
    ['the retry’s chain goes on first: the other one’s token was superseded', 'retry', 'other'],
    ['the first answer’s chain goes on first: the retry’s token was superseded', 'other', 'retry'],
  ] as const)('twice, then both chains go on past the window (%s): invalid_grant, the family revoked', async (_name, goesOn, comesBack) => {
    const signIn = await obtainTokens(authz);
    const family = familyOf(signIn.accessToken);
    const other = await refresh(signIn.refreshToken, signIn.clientId);
    clock += 1_000;
    const retry = await refresh(signIn.refreshToken, signIn.clientId);
    expect([other.status, retry.status]).toEqual([200, 200]);
    const chains = { other: String(other.body.refresh_token), retry: String(retry.body.refresh_token) };

    clock += GRACE_MS + 1_500;
    const ahead = await followChain(chains[goesOn], signIn.clientId, 2);
    expect(ahead.statuses).toEqual([200, 200]);
    const late = await refresh(chains[comesBack], signIn.clientId);
    expect([late.status, late.body.error]).toEqual([400, 'invalid_grant']);
    expect(String(late.body.error_description)).toMatch(/Another refresh token of this sign-in was used/);
    expect(familyRevoked(family)).toBe(true);
    expect((await replaysOf(family)).map((r) => r.detail.presented)).toEqual(['superseded']);
    // The chain that went on ends with the family.
    expect((await refresh(ahead.last, signIn.clientId)).body.error).toBe('invalid_grant');
  });

  it('once, by a client whose answer was lost (the control): it goes on refreshing past the window, and nothing is a replay', async () => {
    const signIn = await obtainTokens(authz);
    const family = familyOf(signIn.accessToken);
    const lost = await refresh(signIn.refreshToken, signIn.clientId);
    expect(lost.status).toBe(200); // the answer that never reached the client
    clock += 2_000;
    const retry = await refresh(signIn.refreshToken, signIn.clientId);
    expect(retry.status).toBe(200);
    clock += GRACE_MS + 1_500;
    expect((await followChain(String(retry.body.refresh_token), signIn.clientId, 4)).statuses).toEqual([200, 200, 200, 200]);
    expect(familyRevoked(family)).toBe(false);
    expect(await replaysOf(family)).toEqual([]);
    // The lost answer's token was superseded by the first rotation after the retry: whoever presents it now is a second holder.
    const superseded = queryRows(db(), 'SELECT superseded_at IS NOT NULL AS superseded FROM refresh_tokens WHERE family_id = ? AND used_at IS NULL ORDER BY created_at', family);
    expect(superseded).toEqual([{ superseded: 1 }, { superseded: 0 }]);
  });

  it('another sign-in on the same grant (same person, same app) is untouched when this one’s family is revoked', async () => {
    const mine = await obtainTokens(authz);
    // The same app signs in again: the grant covers it, so no consent page, a code at once.
    const { verifier, challenge } = pkcePair();
    const again = await openAsOwner(authz, authorizeUrl(authz.issuer, { clientId: mine.clientId, redirectUri: REDIRECT, resource: authz.agentUrl, scope: 'slots:find', state: 's', challenge }));
    const code = callbackParams(again.page.location ?? 'http://invalid/').get('code');
    expect(code).toBeTruthy();
    const redeemed = await redeem(authz, { clientId: mine.clientId, code: code!, verifier });
    expect(redeemed.status).toBe(200);
    const theirs = { accessToken: String(redeemed.body.access_token), refreshToken: String(redeemed.body.refresh_token) };
    expect(decodeJwt(theirs.accessToken).grant_id).toBe(decodeJwt(mine.accessToken).grant_id);
    const [myFamily, theirFamily] = [familyOf(mine.accessToken), familyOf(theirs.accessToken)];
    expect(myFamily).not.toBe(theirFamily);

    // This sign-in's token is retried once (its family forked), then the other sign-in rotates: its rotation
    // supersedes nothing of this family, whose retry goes on past the window.
    const lost = await refresh(mine.refreshToken, mine.clientId);
    const retry = await refresh(mine.refreshToken, mine.clientId);
    const theirsNext = await refresh(theirs.refreshToken, mine.clientId);
    expect([lost.status, retry.status, theirsNext.status]).toEqual([200, 200, 200]);
    clock += GRACE_MS + 1_500;
    expect((await followChain(String(retry.body.refresh_token), mine.clientId, 2)).statuses).toEqual([200, 200]);
    const theirsChain = await followChain(String(theirsNext.body.refresh_token), mine.clientId, 2);
    expect(theirsChain.statuses).toEqual([200, 200]);

    // This sign-in's superseded token comes back: its family ends, the other sign-in's does not.
    expect((await refresh(String(lost.body.refresh_token), mine.clientId)).body.error).toBe('invalid_grant');
    expect([familyRevoked(myFamily), familyRevoked(theirFamily)]).toEqual([true, false]);
    expect((await followChain(theirsChain.last, mine.clientId, 3)).statuses).toEqual([200, 200, 200]);
    expect(await replaysOf(theirFamily)).toEqual([]);
  });
});

// Found in review (s34interop, with oauth4webapi): the window is for an answer that was lost. RT1→RT2, then RT2→RT3,
// then RT1 again within 5 s got a fresh pair; RT2's use shows RT1's answer got through (to the client or a thief).
describe('a spent refresh token presented again within the window after the family moved on', () => {
  it('is a replay: invalid_grant, the family revoked (RT3 too), recorded as spent', async () => {
    const signIn = await obtainTokens(authz);
    const family = familyOf(signIn.accessToken);
    const second = await refresh(signIn.refreshToken, signIn.clientId);
    clock += 500;
    const third = await refresh(String(second.body.refresh_token), signIn.clientId);
    clock += 500;
    expect([second.status, third.status]).toEqual([200, 200]);
    const again = await refresh(signIn.refreshToken, signIn.clientId);
    expect([again.status, again.body.error, again.body.refresh_token]).toEqual([400, 'invalid_grant', undefined]);
    expect(familyRevoked(family)).toBe(true);
    expect((await replaysOf(family)).map((r) => r.detail.presented)).toEqual(['spent']);
    expect((await refresh(String(third.body.refresh_token), signIn.clientId)).body.error).toBe('invalid_grant');
    // The control, a retry before the family moved on, is 'once, by a client whose answer was lost' above.
  });

});
