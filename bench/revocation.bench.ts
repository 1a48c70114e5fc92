// Benchmark of revocation (issue 3): how long after a grant is revoked does
// each resource server refuse every token derived from it? On the real
// authorization server, calendar backend and CalendarAgent on loopback ports,
// each round consents to a new grant, derives its tokens (the user's, a
// refreshed one, the calendar tokens exchanged from both), revokes it, and
// asks both servers about every token until they all are refused. Two ways of
// revoking: the grant in the store (as `delegate grants revoke` does, maybe
// from another process) and RFC 7009 on the refresh token at the AS.
// Target (issue 3): at most 1 s. Prints the median and the worst of the rounds.
import { deriveTokens, measureRevocationDelay, startRevocationStack, type RevocationKind } from '../test/resource/revocation-delay.js';
import { formatMs, median, report } from './support/measure.js';

const ROUNDS = 7;
const TARGET_MS = 1_000;

const stack = await startRevocationStack();
const rows: Array<readonly [string, string, string?]> = [];
try {
  for (const kind of ['grant', 'refresh-token'] as const satisfies readonly RevocationKind[]) {
    const agent: number[] = [];
    const calendar: number[] = [];
    for (let round = 0; round < ROUNDS + 1; round++) {
      const tokens = await deriveTokens(stack.authz);
      const delay = await measureRevocationDelay(stack, tokens, kind);
      if (round === 0) continue; // warm-up
      agent.push(delay.agentMs);
      calendar.push(delay.calendarMs);
    }
    const worst = Math.max(...agent, ...calendar);
    const how = kind === 'grant' ? 'grant revoked in the store' : 'refresh token revoked (RFC 7009)';
    rows.push([`${how}: CalendarAgent refuses all`, formatMs(median(agent)), `median; worst ${formatMs(Math.max(...agent))}`]);
    rows.push([`${how}: calendar backend refuses all`, formatMs(median(calendar)), `median; worst ${formatMs(Math.max(...calendar))}`]);
    rows.push([`${how}: worst of both`, formatMs(worst), `target ≤ ${formatMs(TARGET_MS)} ${worst <= TARGET_MS ? 'OK' : 'MISSED'}`]);
  }
} finally {
  await stack.close();
}

console.log(`revocation delay: time from revoking until every derived token (2 at the agent, 2 at the calendar backend) is refused; ${ROUNDS} rounds each`);
report(rows);
