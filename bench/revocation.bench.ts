// Benchmark of revocation (issue 3): how long after a grant is revoked does
// each resource server refuse every token derived from it? On the real
// authorization server, calendar backend and CalendarAgent on loopback ports,
// each round consents to a new grant, derives its tokens (the user's, a
// refreshed one, the calendar tokens exchanged from both), checks that each
// server accepts its tokens, revokes the grant, and asks both servers about
// every token until they all are refused as revoked. Two ways of
// revoking: the grant in the store (as `delegate grants revoke` does, maybe
// from another process) and RFC 7009 on the refresh token at the AS.
// Target (issue 3): at most 1 s. Prints, per resource server and way of
// revoking, the median and the worst of the rounds, the worst as a share of
// the target, and PASS/MISS; exits 1 on a MISS.
import { deriveTokens, measureRevocationDelay, startRevocationStack, type RevocationKind } from '../test/resource/revocation-delay.js';
import { formatMs, median, report } from './support/measure.js';

const ROUNDS = 7;
const TARGET_MS = 1_000;

const stack = await startRevocationStack();
const rows: Array<readonly [string, string, string?]> = [];
let missed = false;
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
    const how = kind === 'grant' ? 'grant revoked in the store' : 'refresh token revoked (RFC 7009)';
    for (const [server, delays] of [
      ['CalendarAgent', agent],
      ['calendar backend', calendar],
    ] as const) {
      const worst = Math.max(...delays);
      rows.push([
        `${how}: ${server} refuses all`,
        formatMs(median(delays)),
        `median; worst ${formatMs(worst)} = ${(worst / TARGET_MS).toFixed(2)} × the target; target worst ≤ ${formatMs(TARGET_MS)} ${worst <= TARGET_MS ? 'PASS' : 'MISS'}`,
      ]);
      if (worst > TARGET_MS) missed = true;
    }
  }
} finally {
  await stack.close();
}

console.log(`revocation delay: time from revoking until every derived token (2 at the agent, 2 at the calendar backend) is refused; ${ROUNDS} rounds each`);
report(rows);
if (missed) process.exitCode = 1;
