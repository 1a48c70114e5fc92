// Revocation reaches every resource server: on the real authorization server,
// calendar backend and CalendarAgent, every token derived from a grant (the
// user's, a refreshed one, the calendar tokens exchanged from them) is
// accepted before the revocation and refused by each server after it. The
// time it took is measured and printed (no assertion on it: machines differ;
// `npm run bench` prints it too). Only tokens a server accepted before, and
// only a refusal that names the revocation, count.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  askAgent,
  askCalendar,
  deriveTokens,
  describeDelay,
  measureRevocationDelay,
  startRevocationStack,
  type DerivedTokens,
  type RevocationStack,
} from './revocation-delay.js';

let stack: RevocationStack;
beforeAll(async () => {
  stack = await startRevocationStack();
});
afterAll(async () => stack?.close());

async function expectAccepted(tokens: DerivedTokens): Promise<void> {
  for (const token of tokens.atAgent) expect((await askAgent(stack.authz, token)).status).toBe(200);
  for (const token of tokens.atCalendar) expect((await askCalendar(stack.authz, token)).status).toBe(200);
}

describe('a revocation reaches both resource servers', () => {
  it.each(['grant', 'refresh-token'] as const)('revoking by %s: every derived token is refused at the agent and at the calendar backend', async (kind) => {
    const tokens = await deriveTokens(stack.authz);
    const other = await deriveTokens(stack.authz);
    await expectAccepted(tokens);

    const delay = await measureRevocationDelay(stack, tokens, kind);
    console.log(describeDelay(delay));

    for (const answer of [...delay.agentAnswers, ...delay.calendarAnswers]) {
      expect(answer).toEqual({ status: 401, error_description: expect.stringMatching(/revoked/) });
    }
    // Only that delegation: another client's grant from the same user still works.
    await expectAccepted(other);
  });

  // Each server given the other's tokens (a harness mix-up) refuses them for their audience, before any revocation:
  // that was counted as the revocation arriving (17 ms "measured" for tokens never accepted).
  it('tokens a server never accepted make the measurement fail, before anything is revoked', async () => {
    const tokens = await deriveTokens(stack.authz);
    const swapped = { ...tokens, atAgent: tokens.atCalendar, atCalendar: tokens.atAgent };
    await expect(measureRevocationDelay(stack, swapped, 'grant')).rejects.toThrow(/did not accept every token before the revocation/);
    await expectAccepted(tokens);
  });
});
