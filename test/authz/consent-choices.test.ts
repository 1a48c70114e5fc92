// readChoices: the calendars a consent form posts, and "Calendars added later"
// as a choice of its own. Found in review (s23deleg): every listed box ticked
// stored a grant with no `calendars` member ("all"), so a calendar added
// afterwards was read under tokens issued before, on a page that never said so.
import { describe, expect, it } from 'vitest';
import { readChoices } from '../../src/authz/consent-choices.js';
import type { FormBody } from '../../src/http/app.js';

// The page's checkbox, as the form posts it (name and value spelled out: they are the page's contract).
const LATER = { calendars_later: 'yes' };
// The page listed the user's calendars as they are at Approve, unless a test says otherwise.
const offer = (over: Partial<Parameters<typeof readChoices>[1]> = {}): Parameters<typeof readChoices>[1] => ({
  userCalendars: ['work', 'secret'],
  askedCalendars: undefined,
  askedLookahead: undefined,
  maxDepth: 2,
  hasCalendar: true,
  ...over,
  calendarsShown: over.calendarsShown ?? over.userCalendars ?? ['work', 'secret'],
});
const calendarsOf = (form: FormBody, over: Partial<Parameters<typeof readChoices>[1]> = {}) => {
  const read = readChoices(form, offer(over));
  return read.ok ? { calendars: read.choices.calendars } : { refused: read.reason };
};

describe('readChoices: which calendars', () => {
  it('every calendar ticked and "later" unticked names exactly them (it used to mean all, including later ones)', () => {
    expect(calendarsOf({ calendars: ['work', 'secret'] })).toEqual({ calendars: ['work', 'secret'] });
  });

  it('every calendar ticked and "later" ticked is all of them, now and later (no `calendars` member)', () => {
    expect(calendarsOf({ calendars: ['work', 'secret'], ...LATER })).toEqual({ calendars: undefined });
  });

  it('some calendars ticked names them, without "later"', () => {
    expect(calendarsOf({ calendars: 'work' })).toEqual({ calendars: ['work'] });
  });

  it('"later" with a listed calendar left unticked names the ticked ones alone (the narrower reading, as the page says)', () => {
    expect(calendarsOf({ calendars: 'work', ...LATER })).toEqual({ calendars: ['work'] });
  });

  it('"later" for a request that named its calendars is refused: such a client never gets later ones', () => {
    expect(calendarsOf({ calendars: ['work'], ...LATER }, { askedCalendars: ['work'] })).toEqual({ refused: 'Calendars added later were not offered.' });
    expect(calendarsOf({ calendars: ['work'] }, { askedCalendars: ['work'] })).toEqual({ calendars: ['work'] });
  });

  it('"later" with another value, or sent twice, is refused', () => {
    expect(calendarsOf({ calendars: ['work', 'secret'], calendars_later: 'no' })).toHaveProperty('refused');
    expect(calendarsOf({ calendars: ['work', 'secret'], calendars_later: ['yes', 'yes'] })).toHaveProperty('refused');
  });

  it('no calendar yet keeps its meaning: all, now and later, when none was named; the names asked, else', () => {
    expect(calendarsOf({}, { userCalendars: [] })).toEqual({ calendars: undefined });
    expect(calendarsOf({}, { userCalendars: [], askedCalendars: ['Holidays'] })).toEqual({ calendars: ['Holidays'] });
  });

  it('still refuses no calendar at all, and one not offered', () => {
    expect(calendarsOf({ ...LATER })).toHaveProperty('refused');
    expect(calendarsOf({ calendars: ['work', 'medical'], ...LATER })).toEqual({ refused: 'One of the calendars chosen was not offered.' });
  });
});

// Found in review (s23new): the ticks were read against the calendars there were at Approve, not the ones the page
// listed. "secret" unticked, then removed (`delegate calendar remove`) before Approve, left "work" every calendar
// there was, all ticked: with "later" left as preset the grant was all, later ones too, and "secret" added back was read.
describe('readChoices: against the calendars the page listed', () => {
  it('a calendar unticked and removed before Approve, "later" left ticked: the ticked names alone, not all', () => {
    expect(calendarsOf({ calendars: 'work', ...LATER }, { calendarsShown: ['work', 'secret'], userCalendars: ['work'] })).toEqual({ calendars: ['work'] });
  });

  it('a calendar added after the page was shown: every listed box and "later" ticked names the listed ones, and the new one is not offered', () => {
    expect(calendarsOf({ calendars: ['work', 'secret'], ...LATER }, { calendarsShown: ['work', 'secret'], userCalendars: ['work', 'secret', 'medical'] })).toEqual({ calendars: ['work', 'secret'] });
    expect(calendarsOf({ calendars: ['work', 'secret', 'medical'], ...LATER }, { calendarsShown: ['work', 'secret'], userCalendars: ['work', 'secret', 'medical'] })).toEqual({
      refused: 'One of the calendars chosen was not offered.',
    });
  });

  it('every calendar listed removed before Approve, none ticked, "later" ticked: refused, not all', () => {
    expect(calendarsOf({ ...LATER }, { calendarsShown: ['work', 'secret'], userCalendars: [] })).toEqual({ refused: 'Choose at least one calendar the agent may look at.' });
  });

  it('a page that listed none ("every calendar added later") keeps its meaning when one is added before Approve', () => {
    expect(calendarsOf({}, { calendarsShown: [], userCalendars: ['work'] })).toEqual({ calendars: undefined });
  });

  it('the same list at Approve, every box and "later" ticked: all, now and later', () => {
    expect(calendarsOf({ calendars: ['secret', 'work'], ...LATER }, { calendarsShown: ['work', 'secret'], userCalendars: ['secret', 'work'] })).toEqual({ calendars: undefined });
  });
});

// Found in review (s25new): a step-up asking one more scope, with no authorization_details, for a user with no calendar
// to tick, under a grant limited to `demo`: Approve as preset fell back to what the request asked (nothing named: all,
// including calendars added later). A form that leaves a choice out gets what the step-up page preselects: what the
// grant allows today (the narrowest of its entries), within what was asked.
describe('readChoices: a step-up that leaves a choice out keeps what the grant allows today', () => {
  const current = { calendars: ['demo'], lookaheadDays: 7, maxDepth: 1 };
  const stepUp = (form: FormBody, over: Partial<Parameters<typeof readChoices>[1]> = {}) => readChoices(form, offer({ calendarsShown: [], userCalendars: [], current, ...over }));

  it('no calendar listed, none asked: the grant’s calendars, not all of them', () => {
    expect(calendarsOf({ lookahead_days: '7' }, { calendarsShown: [], userCalendars: [], current })).toEqual({ calendars: ['demo'] });
  });

  it('no calendar listed, some asked: those also allowed today; none in common is refused', () => {
    expect(calendarsOf({ lookahead_days: '7' }, { calendarsShown: [], userCalendars: [], askedCalendars: ['demo', 'work'], current })).toEqual({ calendars: ['demo'] });
    expect(calendarsOf({ lookahead_days: '7' }, { calendarsShown: [], userCalendars: [], askedCalendars: ['work'], current })).toEqual({ refused: expect.stringContaining('revoke this permission and sign in again') });
  });

  it('a grant with no calendar limit keeps today’s meaning: what was asked', () => {
    expect(calendarsOf({}, { calendarsShown: [], userCalendars: [], current: { ...current, calendars: undefined } })).toEqual({ calendars: undefined });
    expect(calendarsOf({}, { calendarsShown: [], userCalendars: [], askedCalendars: ['work'], current: { ...current, calendars: undefined } })).toEqual({ calendars: ['work'] });
  });

  it('no lookahead, end or depth posted: the grant’s (7 days, its end, depth 1), not the first consent’s defaults', () => {
    const read = stepUp({});
    expect(read).toEqual({ ok: true, choices: { calendars: ['demo'], lookaheadDays: 7, expiresDays: 'keep', maxDepth: 1 } });
    expect(stepUp({}, { current: { ...current, lookaheadDays: 10, maxDepth: 2 } })).toMatchObject({ ok: true, choices: { lookaheadDays: 7, maxDepth: 2 } });
  });

  it('a first consent still gets the defaults (30 days, 30 days, depth 1)', () => {
    expect(readChoices({}, offer({ calendarsShown: [], userCalendars: [] }))).toEqual({ ok: true, choices: { calendars: undefined, lookaheadDays: 30, expiresDays: 30, maxDepth: 1 } });
  });
});
