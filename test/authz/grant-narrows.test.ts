// Which consents narrow a grant (and so take back the tokens issued under it,
// test/security/limits.test.ts): any limit tightened, member by member.
import { describe, expect, it } from 'vitest';
import { narrows } from '../../src/authz/consent.js';
import type { GrantRecord } from '../../src/store/index.js';

const CAL = 'http://127.0.0.1:1/';
const detail = (extra: Record<string, unknown> = {}) => ({ type: 'calendar', locations: [CAL], actions: ['freebusy:read'], datatypes: ['freebusy'], ...extra });
const grant = (over: Partial<GrantRecord> = {}): GrantRecord => ({
  id: 'grt_1',
  userId: 'usr_1',
  clientId: 'cli_1',
  resource: 'http://127.0.0.1:2/mcp',
  scope: 'slots:find',
  authorizationDetails: [detail({ lookahead_days: 30 })],
  maxDepth: 2,
  createdAt: 0,
  expiresAt: 90 * 86_400_000,
  revokedAt: null,
  ...over,
});

type Case = [name: string, after: Partial<GrantRecord>, before?: Partial<GrantRecord>];

describe('narrows: whether a new consent allows less than the grant did', () => {
  it.each<Case>([
    ['a shorter lookahead', { authorizationDetails: [detail({ lookahead_days: 7 })] }],
    ['a lookahead where there was none', {}, { authorizationDetails: [detail()] }],
    ['fewer calendars', { authorizationDetails: [detail({ lookahead_days: 30, calendars: ['work'] })] }, { authorizationDetails: [detail({ lookahead_days: 30, calendars: ['work', 'home'] })] }],
    ['a list of calendars where all were allowed', { authorizationDetails: [detail({ lookahead_days: 30, calendars: ['work'] })] }],
    ['fewer actions', { authorizationDetails: [{ ...detail({ lookahead_days: 30 }), actions: [] }] }],
    ['another location', { authorizationDetails: [detail({ lookahead_days: 30, locations: ['http://127.0.0.1:3/'] })] }],
    ['no details at all', { authorizationDetails: [] }],
    ['a shorter chain', { maxDepth: 1 }],
    ['an earlier end', { expiresAt: 7 * 86_400_000 }],
  ])('%s: narrowed', (_name, after, before = {}) => {
    expect(narrows(grant(before), grant(after))).toBe(true);
  });

  it.each<Case>([
    ['the same limits (a step-up that adds a scope)', { scope: 'slots:find busy:read' }],
    ['a longer lookahead', { authorizationDetails: [detail({ lookahead_days: 60 })] }],
    ['no lookahead at all', { authorizationDetails: [detail()] }],
    ['more calendars', { authorizationDetails: [detail({ lookahead_days: 30, calendars: ['work', 'home'] })] }, { authorizationDetails: [detail({ lookahead_days: 30, calendars: ['work'] })] }],
    ['a longer chain and a later end', { maxDepth: 3, expiresAt: 180 * 86_400_000 }],
  ])('%s: not narrowed', (_name, after, before = {}) => {
    expect(narrows(grant(before), grant(after))).toBe(false);
  });
});
