// What the commands print: the --json contract and the human lines.
import { describe, expect, it } from 'vitest';
import { authorizationLines, instantLine, slotJson, slotLine } from '../../src/cli/output.js';

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

describe('authorization summary', () => {
  it('names the agent, the scopes in words, the downstream access and the end of the delegation', () => {
    const lines = authorizationLines(
      {
        resource: 'http://127.0.0.1:8412/mcp',
        resourceName: 'CalendarAgent',
        issuer: 'http://127.0.0.1:8410',
        scopes: ['slots:find'],
        expiresAt: Date.UTC(2026, 11, 1, 10, 10),
        delegationEndsAt: Date.UTC(2026, 11, 31, 10),
        renewable: true,
        authorizationDetails: [{ type: 'calendar', locations: ['http://127.0.0.1:8411'], actions: ['freebusy:read'] }],
      },
      'Europe/Berlin',
    );
    const text = lines.join('\n');
    expect(text).toContain('CalendarAgent (http://127.0.0.1:8412/mcp)');
    expect(text).toContain('Find free time in your calendar [slots:find]');
    expect(text).toContain('at http://127.0.0.1:8411');
    expect(text).toContain('[freebusy:read]');
    expect(text).toContain(`Until ${instantLine(Date.UTC(2026, 11, 31, 10), 'Europe/Berlin')}`);
    expect(instantLine(Date.UTC(2026, 11, 31, 10), 'Europe/Berlin')).toBe('Thu 31 Dec 2026, 11:00 (Europe/Berlin)');
  });

  // Found in review: the refresh token's end was shown as the delegation's, and the approved limits not at all.
  it('shows the approved limits, the delegation’s own end, and when the sign-in ends when that is sooner', () => {
    const text = authorizationLines(
      {
        resource: 'http://127.0.0.1:8412/mcp',
        resourceName: 'CalendarAgent',
        issuer: 'http://127.0.0.1:8410',
        scopes: ['slots:find'],
        expiresAt: Date.UTC(2026, 11, 1, 10, 10),
        delegationEndsAt: Date.UTC(2027, 2, 1, 10),
        signInEndsAt: Date.UTC(2026, 11, 31, 10),
        renewable: true,
        authorizationDetails: [{ type: 'calendar', locations: ['http://127.0.0.1:8411'], actions: ['freebusy:read'], calendars: ['work', 'th\u001b[2Jerapy'], lookahead_days: 365 }],
      },
      'UTC',
    ).join('\n');
    expect(text).toContain('only the calendars work, th\\e[2Jerapy; at most 365 days ahead');
    expect(text).toContain(`Until ${instantLine(Date.UTC(2027, 2, 1, 10), 'UTC')}, unless you revoke it.`);
    expect(text).toContain(`This sign-in lasts until ${instantLine(Date.UTC(2026, 11, 31, 10), 'UTC')}; run \`delegate login\` again after that.`);
  });
});
