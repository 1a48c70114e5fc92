// What `delegate audit` calls a consent that changed a grant which existed before: "narrowed (…)" only when it took
// something back and allowed nothing more; a consent that widens anything is "changed (…)", with the tokens it
// revoked when it also narrowed something. Found in review (s33deleg): a step-up that added busy:read and lowered the
// hops 2 → 1 read "narrowed (scope slots:find → slots:find busy:read, hops 2 → 1, 11 tokens revoked)". The records
// are as src/authz/consent.ts writes them (test/cli/audit-command.test.ts has one the real servers wrote).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { resolvePaths } from '../../src/config.js';
import { openStore } from '../../src/store/index.js';
import { fakeIo } from './fake-io.js';

const CALENDAR = 'http://127.0.0.1:8411';
const OTHER = 'http://127.0.0.1:9411';
const END = '2026-12-31T08:00:00.000Z';

let env: Record<string, string>;

beforeEach(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'delegate-consent-label-'));
  env = { DELEGATE_HOME: join(dir, 'home'), TZ: 'UTC' };
  return () => rm(dir, { recursive: true, force: true });
});

const entry = (place: string, days: number, calendars?: string[]) => ({
  type: 'calendar',
  locations: [place],
  actions: ['freebusy:read'],
  datatypes: ['freebusy'],
  ...(calendars ? { calendars } : {}),
  lookahead_days: days,
});

interface Change {
  scope?: [string, string];
  details?: [unknown[], unknown[]];
  depth?: [number, number];
  end?: [string, string];
  revoked?: number;
}

/** A consent record for a grant that existed, as consent.ts writes it: `narrowed` with the tokens revoked when given. */
function consent(c: Change): Record<string, unknown> {
  const [previousScope, scope] = c.scope ?? ['slots:find', 'slots:find'];
  const [previousDetails, details] = c.details ?? [[entry(CALENDAR, 30)], [entry(CALENDAR, 30)]];
  const [previousDepth, depth] = c.depth ?? [2, 2];
  const [previousEnd, end] = c.end ?? [END, END];
  return {
    decision: 'approved',
    scope,
    authorization_details: details,
    max_depth: depth,
    expires_at: end,
    previous_scope: previousScope,
    previous_authorization_details: previousDetails,
    previous_max_depth: previousDepth,
    previous_expires_at: previousEnd,
    ...(c.revoked !== undefined ? { narrowed: true, tokens_revoked: c.revoked } : {}),
  };
}

async function auditLines(...changes: Change[]): Promise<string[]> {
  const store = openStore(resolvePaths(env).db);
  try {
    for (const [i, change] of changes.entries()) {
      await store.appendAudit({ event: 'consent', user: 'usr_1', client: 'cli_1', grant: 'grt_1', actors: ['usr_1'], detail: consent(change) }, 1_000 * (i + 1));
    }
  } finally {
    store.close();
  }
  const io = fakeIo(env);
  expect(await runCli(['audit', '--event', 'consent'], io), io.err).toBe(0);
  return io.out.trim().split('\n');
}

describe('a consent that changed a grant, on the audit lines', () => {
  it('that widened one thing and narrowed another reads "changed", with the tokens it revoked', async () => {
    const lines = await auditLines(
      // The review's case: busy:read added, hops 2 → 1.
      { scope: ['slots:find', 'slots:find busy:read'], depth: [2, 1], revoked: 11 },
      // A longer lookahead with fewer hops; a later end with a shorter lookahead; a calendar place added, another's lookahead shortened.
      { details: [[entry(CALENDAR, 7)], [entry(CALENDAR, 30)]], depth: [2, 1], revoked: 1 },
      { details: [[entry(CALENDAR, 30)], [entry(CALENDAR, 7)]], end: [END, '2027-01-30T08:00:00.000Z'], revoked: 2 },
      { details: [[entry(CALENDAR, 30)], [entry(CALENDAR, 7), entry(OTHER, 7)]], revoked: 3 },
      // Every calendar where the grant named one, with fewer hops.
      { details: [[entry(CALENDAR, 30, ['work'])], [entry(CALENDAR, 30)]], depth: [2, 1], revoked: 1 },
    );
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(/ {2}changed \(scope slots:find → slots:find busy:read, hops 2 → 1, 11 tokens revoked\)$/);
    expect(lines[1]).toMatch(/ {2}changed \(lookahead 7 → 30 days, hops 2 → 1, 1 token revoked\)$/);
    expect(lines[2]).toMatch(/ {2}changed \(lookahead 30 → 7 days, until 2026-12-31 → 2027-01-30, 2 tokens revoked\)$/);
    expect(lines[3]).toMatch(new RegExp(` {2}changed \\(lookahead at ${CALENDAR} 30 → 7 days, ${OTHER} added, 3 tokens revoked\\)$`));
    expect(lines[4]).toMatch(/ {2}changed \(calendars work → all, hops 2 → 1, 1 token revoked\)$/);
  });

  it('that only narrowed reads "narrowed", and one that only widened "changed" (the controls)', async () => {
    const lines = await auditLines(
      { details: [[entry(CALENDAR, 30)], [entry(CALENDAR, 7)]], revoked: 2 },
      { depth: [2, 1], end: [END, '2026-12-20T08:00:00.000Z'], revoked: 4 },
      { details: [[entry(CALENDAR, 30), entry(OTHER, 30)], [entry(CALENDAR, 30, ['work'])]], revoked: 1 },
      { scope: ['slots:find', 'slots:find busy:read'] },
    );
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/ {2}narrowed \(lookahead 30 → 7 days, 2 tokens revoked\)$/);
    expect(lines[1]).toMatch(/ {2}narrowed \(hops 2 → 1, until 2026-12-31 → 2026-12-20, 4 tokens revoked\)$/);
    expect(lines[2]).toMatch(new RegExp(` {2}narrowed \\(calendars at ${CALENDAR} all → work, ${OTHER} removed, 1 token revoked\\)$`));
    expect(lines[3]).toMatch(/ {2}changed \(scope slots:find → slots:find busy:read\)$/);
  });
});
