// The memory phase of the load test (bench/support/memory-rounds.ts) signs in
// clients of its own in every round. It reused the main run's tokens in every
// round, so what the agent keeps per token or per client never met a new key
// after the baseline reading, and a leak of 200 KB per token passed. Here,
// on the real authorization server, calendar backend and CalendarAgent on
// loopback, each round must make the agent exchange CLIENTS new tokens at the
// AS (it exchanges each token once, then caches), and every call find a slot.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { memoryRounds } from '../bench/support/memory-rounds.js';
import { startRevocationStack, type RevocationStack } from './resource/revocation-delay.js';

const CLIENTS = 3;

let stack: RevocationStack;
beforeAll(async () => {
  stack = await startRevocationStack();
});
afterAll(async () => stack?.close());

/** Two memory rounds of CLIENTS clients (the first also passing `fill` more tokens through the agent): the token exchanges each round made at the AS, and the rounds. */
async function twoRounds(fill?: number) {
  const { authz } = stack;
  const exchanges = async () => (await authz.store.listAudit()).filter((r) => r.event === 'token_exchanged').length;
  const phase = await memoryRounds({
    target: { issuer: authz.issuer, agentUrl: authz.agentUrl, ownerJwk: authz.ownerJwk },
    clients: CLIENTS,
    rounds: 2,
    roundSeconds: 0.2,
    ...(fill !== undefined ? { fill } : {}),
    read: exchanges,
  });
  const counts = [phase.before, ...phase.rounds.map((r) => r.after)];
  return { exchangesPerRound: counts.slice(1).map((n, i) => n - counts[i]!), rounds: phase.rounds };
}

it('each of 2 rounds signs in CLIENTS new clients, whose tokens the agent exchanges anew', async () => {
  const { exchangesPerRound, rounds } = await twoRounds();
  expect(exchangesPerRound).toEqual([CLIENTS, CLIENTS]);
  for (const { result } of rounds) {
    expect(result.errors, result.errorSamples.join(' | ')).toBe(0);
    expect(result.ok).toBeGreaterThanOrEqual(CLIENTS);
  }
}, 60_000);

it('the warm-up round also passes `fill` more distinct tokens through the agent, each exchanged once and finding a slot', async () => {
  const FILL = 7; // more than the clients, so that families are refreshed more than once each
  const refreshesBefore = (await stack.authz.store.listAudit()).filter((r) => r.event === 'token_refreshed').length;
  const { exchangesPerRound } = await twoRounds(FILL);
  expect(exchangesPerRound).toEqual([CLIENTS + FILL, CLIENTS]);
  const audit = await stack.authz.store.listAudit();
  expect(audit.filter((r) => r.event === 'token_refreshed')).toHaveLength(refreshesBefore + FILL);
  expect(audit.filter((r) => r.event === 'refresh_replay')).toEqual([]);
}, 60_000);
