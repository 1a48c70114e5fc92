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

it('each of 2 rounds signs in CLIENTS new clients, whose tokens the agent exchanges anew', async () => {
  const { authz } = stack;
  const exchanges = async () => (await authz.store.listAudit()).filter((r) => r.event === 'token_exchanged').length;
  const phase = await memoryRounds({
    target: { issuer: authz.issuer, agentUrl: authz.agentUrl, ownerJwk: authz.ownerJwk },
    clients: CLIENTS,
    rounds: 2,
    roundSeconds: 0.2,
    read: exchanges,
  });
  const counts = [phase.before, ...phase.rounds.map((r) => r.after)];
  expect(counts.slice(1).map((n, i) => n - counts[i]!)).toEqual([CLIENTS, CLIENTS]);
  for (const { result } of phase.rounds) {
    expect(result.errors, result.errorSamples.join(' | ')).toBe(0);
    expect(result.ok).toBeGreaterThanOrEqual(CLIENTS);
  }
}, 60_000);

it('the warm-up round also passes `fill` more distinct tokens through the agent, each exchanged once and finding a slot', async () => {
  const { authz } = stack;
  const exchanges = async () => (await authz.store.listAudit()).filter((r) => r.event === 'token_exchanged').length;
  const FILL = 7; // more than the clients, so that families are refreshed more than once each
  const phase = await memoryRounds({
    target: { issuer: authz.issuer, agentUrl: authz.agentUrl, ownerJwk: authz.ownerJwk },
    clients: CLIENTS,
    rounds: 2,
    roundSeconds: 0.2,
    fill: FILL,
    read: exchanges,
  });
  const counts = [phase.before, ...phase.rounds.map((r) => r.after)];
  expect(counts.slice(1).map((n, i) => n - counts[i]!)).toEqual([CLIENTS + FILL, CLIENTS]);
  const audit = await authz.store.listAudit();
  expect(audit.filter((r) => r.event === 'token_refreshed')).toHaveLength(FILL);
  expect(audit.filter((r) => r.event === 'refresh_replay')).toEqual([]);
}, 60_000);
