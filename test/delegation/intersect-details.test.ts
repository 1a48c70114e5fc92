// What two calendar details both allow: how the token exchange bounds a subject
// token's limits by the grant's current ones (src/authz/grant-exchange.ts).
import { describe, expect, it } from 'vitest';
import { intersectDetails, isDetailSubset, type CalendarDetail } from '../../src/delegation/index.js';

const CAL = 'http://127.0.0.1:8411';
const detail = (extra: Partial<CalendarDetail> = {}): CalendarDetail => ({ type: 'calendar', locations: [CAL], actions: ['freebusy:read'], datatypes: ['freebusy'], ...extra });

describe('intersectDetails', () => {
  it('takes the shorter lookahead and the calendars in both (no list meaning all)', () => {
    expect(intersectDetails(detail({ lookahead_days: 30 }), detail({ lookahead_days: 7 }))).toEqual({ ok: true, detail: detail({ lookahead_days: 7 }) });
    expect(intersectDetails(detail({ lookahead_days: 7 }), detail())).toEqual({ ok: true, detail: detail({ lookahead_days: 7 }) });
    expect(intersectDetails(detail(), detail({ calendars: ['work'] }))).toEqual({ ok: true, detail: detail({ calendars: ['work'] }) });
    expect(intersectDetails(detail({ calendars: ['work', 'home'] }), detail({ calendars: ['home', 'club'] }))).toEqual({ ok: true, detail: detail({ calendars: ['home'] }) });
    expect(intersectDetails(detail(), detail())).toEqual({ ok: true, detail: detail() });
  });

  it('is within both, whichever order', () => {
    const a = detail({ calendars: ['work', 'home'], lookahead_days: 30 });
    const b = detail({ calendars: ['home'], lookahead_days: 14 });
    for (const [x, y] of [[a, b], [b, a]] as const) {
      const both = intersectDetails(x, y);
      expect(both.ok).toBe(true);
      if (!both.ok) continue;
      expect(isDetailSubset(both.detail, a)).toEqual({ ok: true });
      expect(isDetailSubset(both.detail, b)).toEqual({ ok: true });
    }
  });

  it('is no detail when the two have nothing in common', () => {
    expect(intersectDetails(detail({ calendars: ['work'] }), detail({ calendars: ['home'] }))).toEqual({ ok: false, reason: 'no calendar is allowed by both' });
    expect(intersectDetails(detail(), detail({ actions: ['other:read'] }))).toEqual({ ok: false, reason: 'no action is allowed by both' });
    expect(intersectDetails(detail(), detail({ locations: ['http://127.0.0.1:1'] }))).toEqual({ ok: false, reason: 'no location is allowed by both' });
  });
});
