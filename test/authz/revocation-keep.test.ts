// How long a revocation stays on the list resource servers keep: past the
// expiry of the tokens it names by a margin, on the AS's clock, so that clocks
// that disagree do not make it go early. Found in review: a sweep run while the
// AS's clock read a day ahead deleted a revoked grant whose tokens were still
// valid, and the resource servers' next full sync forgot it; and a resource
// server whose clock is behind the AS's still accepts a token the AS thinks
// expired, after the AS had stopped listing it.
import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { LONGEST_ACCESS_TOKEN_MS } from '../../src/store/index.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { obtainTokens } from './helpers.js';

let authz: TestAuthz | undefined;
afterEach(async () => {
  await authz?.close();
  authz = undefined;
});

const DAY_MS = 86_400_000;

describe('a revocation on the list', () => {
  it("is listed a while past its tokens' expiry, outlives a sweep run with the clock a day ahead, then goes", { timeout: 30_000 }, async () => {
    // The AS's clock, as far ahead of the test's as `skew` says.
    let skew = 0;
    authz = await startTestAuthz({ now: () => Date.now() + skew });
    const tokens = await obtainTokens(authz);
    const grant = String(decodeJwt(tokens.accessToken).grant_id);
    const expMs = decodeJwt(tokens.accessToken).exp! * 1000;
    const revokedAt = Date.now();
    expect(await authz.store.revokeGrant(grant, revokedAt, 'test')).toBe(true);
    // Listed until the last of its tokens expires, and at least as long as a token signed at the revocation would
    // live (a CI failure: with the token's exp rounded down to its second and the revocation in the next one, the
    // list kept the grant past exp, and a sweep timed from exp alone left its row).
    const keptUntil = Math.max(expMs, revokedAt + LONGEST_ACCESS_TOKEN_MS);
    expect(keptUntil - expMs).toBeLessThan(60_000);
    const listed = async (): Promise<string[]> => ((await (await fetch(`${authz!.issuer}/revocations?since=0`)).json()) as { grants: string[] }).grants;
    expect(await listed()).toEqual([grant]);

    // The AS's clock a minute past the token's expiry: a resource server whose clock is behind still accepts it.
    skew = expMs + 60_000 - Date.now();
    expect(await listed()).toEqual([grant]);
    skew = 0;

    // What the AS's sweep interval does when its clock reads a day ahead: the grant's token is still valid.
    await authz.store.sweep(Date.now() + DAY_MS);
    expect(await listed()).toEqual([grant]);

    // Well past it, the list no longer names the grant; a sweep just short of a day after that keeps its row, and
    // one a day after it removes the row.
    skew = keptUntil + 10 * 60_000 - Date.now();
    expect(await listed()).toEqual([]);
    await authz.store.sweep(keptUntil + DAY_MS - 1_000);
    skew = 0;
    expect(await listed()).toEqual([grant]);
    await authz.store.sweep(keptUntil + DAY_MS + 1_000);
    expect(await listed()).toEqual([]);
  });
});

