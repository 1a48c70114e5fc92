// What the commands print: the --json contract and the human lines.
import { describe, expect, it } from 'vitest';
import { authorizationLines, instantLine, slotJson, slotLine } from '../../src/cli/output.js';
import type { AuthorizationSummary } from '../../src/client/session.js';

const slot = { start: '2026-12-01T11:45:00+01:00', end: '2026-12-01T12:15:00+01:00', timeZone: 'Europe/Berlin' };

describe('slot output', () => {
  it('is exactly {"start","end","timeZone"} in JSON', () => {
    expect(slotJson({ ...slot, extra: 1 } as typeof slot)).toBe(
      '{"start":"2026-12-01T11:45:00+01:00","end":"2026-12-01T12:15:00+01:00","timeZone":"Europe/Berlin"}',
    );
  });

  it('is one human line in the slot’s zone', () => {
    expect(slotLine(slot)).toBe('Tue 1 Dec 2026, 11:45–12:15 (Europe/Berlin)');
  });
});

/** A login's summary as CalendarAgent's sign-in gives it, with `changes` made (its calendar detail's members in `detail`). */
function summaryLines(changes: Partial<AuthorizationSummary> = {}, detail: Record<string, unknown> = {}, timeZone = 'UTC'): string[] {
  return authorizationLines(
    {
      resource: 'http://127.0.0.1:8412/mcp',
      resourceName: 'CalendarAgent',
      issuer: 'http://127.0.0.1:8410',
      scopes: ['slots:find'],
      expiresAt: Date.UTC(2026, 11, 1, 10, 10),
      delegationEndsAt: Date.UTC(2026, 11, 31, 10),
      renewable: true,
      authorizationDetails: [{ type: 'calendar', locations: ['http://127.0.0.1:8411'], actions: ['freebusy:read'], ...detail }],
      ...changes,
    },
    timeZone,
  );
}

describe('authorization summary', () => {
  it('names the agent, the scopes in words, the downstream access and the end of the delegation', () => {
    const text = summaryLines({}, {}, 'Europe/Berlin').join('\n');
    expect(text).toContain('CalendarAgent (http://127.0.0.1:8412/mcp)');
    expect(text).toContain('Find free time in your calendar (the free times found show when you are busy) [slots:find]');
    expect(text).toContain('at http://127.0.0.1:8411');
    expect(text).toContain('[freebusy:read]');
    expect(text).toContain(`Until ${instantLine(Date.UTC(2026, 11, 31, 10), 'Europe/Berlin')}`);
    expect(instantLine(Date.UTC(2026, 11, 31, 10), 'Europe/Berlin')).toBe('Thu 31 Dec 2026, 11:00 (Europe/Berlin)');
  });

  // Found in the s24 brief: a grant with no calendar limit said nothing of its reach, as if it had none.
  it('says plainly that a delegation naming no calendars reaches all of them, those added later too', () => {
    const unlimited = summaryLines();
    const through = unlimited.findIndex((l) => l.startsWith('  - through it'));
    expect(unlimited[through + 1]).toBe('    all your calendars, including ones added later');
    expect(summaryLines({}, { lookahead_days: 30 }).join('\n')).toContain('    all your calendars, including ones added later; at most 30 days ahead');
    expect(summaryLines({}, { calendars: ['work'] }).join('\n')).not.toContain('all your calendars');
  });

  // Found in review: the refresh token's end was shown as the delegation's, and the approved limits not at all.
  it('shows the approved limits, the delegation’s own end, and when the sign-in ends when that is sooner', () => {
    const text = summaryLines(
      { delegationEndsAt: Date.UTC(2027, 2, 1, 10), signInEndsAt: Date.UTC(2026, 11, 31, 10) },
      { calendars: ['work', 'th\u001b[2Jerapy'], lookahead_days: 365 },
    ).join('\n');
    expect(text).toContain('only the calendars work, th\\e[2Jerapy; at most 365 days ahead');
    expect(text).toContain(`Until ${instantLine(Date.UTC(2027, 2, 1, 10), 'UTC')}, unless you revoke it.`);
    expect(text).toContain(`This sign-in lasts until ${instantLine(Date.UTC(2026, 11, 31, 10), 'UTC')}; run \`delegate login\` again after that.`);
  });
});
