// The load generator of benchmark 3 (bench/support/http-load.ts) is a client
// that follows the rules: each token family has one request in flight at a
// time, carrying the refresh token the family's last answer gave. It handed
// families out by autocannon's context, which lives for one request, not a
// connection, so two requests in flight could carry one family's token: a
// replay that the grace window used to hide (a few per round), until the
// window stopped honouring a spent token whose family had moved on, and every
// family was revoked within the first round (0 tokens/s). A short run against
// the real AS on loopback, in rounds as the benchmark runs them.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { httpLoad } from '../bench/support/http-load.js';
import { signInClients } from '../bench/support/mcp-load.js';
import { startTestAuthz, type TestAuthz } from './support/authz.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz({});
});
afterAll(async () => authz?.close());

it('rotates every family in turn with 0 errors, no grace retry and no replay, round after round', async () => {
  const signedIn = await signInClients({ issuer: authz.issuer, agentUrl: authz.agentUrl, ownerJwk: authz.ownerJwk }, 16);
  let families = signedIn.map((f) => ({ clientId: f.clientId, refreshToken: f.refreshToken }));
  for (let round = 0; round < 3; round++) {
    const result = await httpLoad({ kind: 'refresh', url: `${authz.issuer}/token`, amount: 320, rotate: true, families });
    expect([result.ok, result.errors, result.firstError]).toEqual([320, 0, undefined]);
    families = result.families!;
  }
  const records = await authz.store.listAudit();
  const refreshed = records.filter((r) => r.event === 'token_refreshed');
  expect(refreshed).toHaveLength(960);
  expect(refreshed.filter((r) => r.detail.within_grace === true)).toEqual([]);
  expect(records.filter((r) => r.event === 'refresh_replay')).toEqual([]);
}, 60_000);
