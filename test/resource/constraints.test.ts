// The user's calendar limits as a resource server applies them to one
// request, and the audit record a resource server writes about it.
import { describe, expect, it } from 'vitest';
import { REFRESH_TOKEN_PREFIX, type CalendarDetail } from '../../src/delegation/index.js';
import { REDACTION_CENSOR, holdsCredential } from '../../src/delegation/secrets.js';
import { actorsOf, auditRecord, boundedValue } from '../../src/resource/audit.js';
import { hasControlCharacters } from '../../src/terminal-text.js';
import { calendarLimits, calendarsToRead, checkWindow, permittedCalendars } from '../../src/resource/constraints.js';

const CAL = 'http://127.0.0.1:8411';
const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 30, 7, 0);

const detail = (extra: Partial<CalendarDetail> = {}): CalendarDetail => ({
  type: 'calendar',
  locations: [CAL],
  actions: ['freebusy:read'],
  datatypes: ['freebusy'],
  ...extra,
});

describe('calendarLimits', () => {
  it('finds the calendar detail that names this resource, in any spelling of its URL', () => {
    const found = calendarLimits({ authorization_details: [{ type: 'other', locations: [CAL] }, { ...detail({ lookahead_days: 14 }), locations: [`${CAL}/`] }] }, CAL);
    expect(found).toEqual({ ok: true, detail: expect.objectContaining({ lookahead_days: 14 }) });
  });

  it('leaves a token without a calendar detail for this resource to its scope', () => {
    expect(calendarLimits({}, CAL)).toEqual({ ok: true, detail: undefined });
    expect(calendarLimits({ authorization_details: [detail({ locations: ['http://127.0.0.1:9'] })] }, CAL)).toEqual({ ok: true, detail: undefined });
  });

  it('refuses limits it cannot read rather than ignore them', () => {
    const broken = calendarLimits({ authorization_details: [{ ...detail(), lookahead_days: 'two weeks' }] }, CAL);
    expect(broken).toEqual({ ok: false, reason: expect.stringMatching(/lookahead_days/) });
    const twice = calendarLimits({ authorization_details: [detail(), detail({ calendars: ['work'] })] }, CAL);
    expect(twice.ok).toBe(false);
  });

  it('refuses a detail with a member the calendar type does not define (RFC 9396 §5), such as one a token issued before that was checked may carry', () => {
    const widened = calendarLimits({ authorization_details: [{ ...detail(), privileges: ['admin'], calendars_all: true }] }, CAL);
    expect(widened).toEqual({ ok: false, reason: expect.stringMatching(/no member "privileges", "calendars_all"/) });
  });
});

describe('checkWindow', () => {
  it('allows a window ending at the lookahead and refuses one a minute later, naming the limit', () => {
    const d = detail({ lookahead_days: 14 });
    expect(checkWindow(d, { from: NOW, to: NOW + 14 * DAY }, NOW)).toEqual({ ok: true, value: undefined });
    const over = checkWindow(d, { from: NOW, to: NOW + 14 * DAY + 60_000 }, NOW);
    expect(over).toEqual({ ok: false, reason: expect.stringContaining('14 days ahead, until 2026-12-14T07:00:00.000Z') });
  });

  it('refuses a window that starts in the past beyond the clock skew: a lookahead is no licence to read the history', () => {
    const d = detail({ lookahead_days: 7 });
    expect(checkWindow(d, { from: NOW - 5 * 60_000, to: NOW + DAY }, NOW).ok).toBe(true);
    const back = checkWindow(d, { from: NOW - 365 * DAY, to: NOW }, NOW);
    expect(back).toEqual({ ok: false, reason: expect.stringContaining('7 days ahead from now, not back before 2026-11-30T07:00:00.000Z; ask for a window that starts now or later') });
    expect(checkWindow(d, { from: NOW - 5 * 60_000 - 1, to: NOW + DAY }, NOW).ok).toBe(false);
  });

  it('has nothing to check without a detail or a lookahead', () => {
    expect(checkWindow(undefined, { from: NOW, to: NOW + 400 * DAY }, NOW).ok).toBe(true);
    expect(checkWindow(detail(), { from: NOW, to: NOW + 400 * DAY }, NOW).ok).toBe(true);
  });
});

describe('permittedCalendars and calendarsToRead', () => {
  it('refuses a named calendar outside the delegation, naming what is allowed', () => {
    const d = detail({ calendars: ['work'] });
    expect(permittedCalendars(d, ['work', 'private'])).toEqual({ ok: false, reason: 'The delegation allows only the calendar "work", not "private".' });
    expect(permittedCalendars(d, ['work'])).toEqual({ ok: true, value: ['work'] });
  });

  it('with none named, asks for exactly the allowed calendars, or all when the delegation names none', () => {
    expect(permittedCalendars(detail({ calendars: ['work', 'demo'] }), undefined)).toEqual({ ok: true, value: ['work', 'demo'] });
    expect(permittedCalendars(detail(), undefined)).toEqual({ ok: true, value: undefined });
    expect(permittedCalendars(undefined, ['any'])).toEqual({ ok: true, value: ['any'] });
  });

  it('reads the allowed ones of the user’s calendars', () => {
    const all = ['demo', 'work', 'private'];
    expect(calendarsToRead(detail({ calendars: ['work', 'gone'] }), undefined, all)).toEqual(['work']);
    expect(calendarsToRead(detail(), undefined, all)).toEqual(all);
    expect(calendarsToRead(detail({ calendars: ['work', 'demo'] }), ['demo'], all)).toEqual(['demo']);
  });
});

describe('audit records', () => {
  it('name the whole chain, current actor first, ending with the user', () => {
    expect(actorsOf({ sub: 'usr_1', client_id: 'cli' })).toEqual(['cli', 'usr_1']);
    expect(actorsOf({ sub: 'usr_1', client_id: 'sub-agent', act: { sub: 'sub-agent', act: { sub: 'calendar-agent', act: { sub: 'cli' } } } })).toEqual([
      'sub-agent',
      'calendar-agent',
      'cli',
      'usr_1',
    ]);
  });

  it('carry the grant, the resource and the token id, never the token', () => {
    const record = auditRecord('freebusy_read', { sub: 'usr_1', client_id: 'calendar-agent', act: { sub: 'calendar-agent', act: { sub: 'cli' } }, grant_id: 'grt_1', jti: 'at_1' }, CAL, { outcome: 'ok' });
    expect(record).toEqual({
      event: 'freebusy_read',
      user: 'usr_1',
      client: 'calendar-agent',
      grant: 'grt_1',
      resource: CAL,
      actors: ['calendar-agent', 'cli', 'usr_1'],
      detail: { jti: 'at_1', outcome: 'ok' },
    });
  });

  // Found in the s24 brief: POST /audit refuses a detail holding a credential (audit-report.ts), and the stdio agent
  // then withheld the call's result. The record holds the marker instead, by the same classifier, so it is taken.
  it('hold no credential a caller supplied, by name or by shape: the marker stands in its place', () => {
    const jwt = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln';
    const claims = { sub: 'usr_1', client_id: 'cli', grant_id: 'grt_1', jti: 'at_1' };
    const record = auditRecord('tool_call', claims, CAL, {
      tool: 'find_slot',
      outcome: 'error',
      arguments: { duration: '30m', calendars: ['work', jwt], Password: 'hunter2', nested: { refresh_token: 'x', note: `see ${REFRESH_TOKEN_PREFIX}abc` } },
      message: `No calendar named "${jwt}".`,
    });
    expect(record.detail).toEqual({
      jti: 'at_1',
      tool: 'find_slot',
      outcome: 'error',
      arguments: { duration: '30m', calendars: ['work', REDACTION_CENSOR], Password: REDACTION_CENSOR, nested: { refresh_token: REDACTION_CENSOR, note: `see ${REDACTION_CENSOR}` } },
      message: `No calendar named "${REDACTION_CENSOR}".`,
    });
    expect(holdsCredential(record.detail)).toBe(false);
    // Text that merely resembles one part of a shape is kept as it is.
    expect(auditRecord('tool_call', claims, CAL, { arguments: { timeZone: 'Europe/Berlin', from: 'eyJ.' } }).detail).toEqual({ jti: 'at_1', arguments: { timeZone: 'Europe/Berlin', from: 'eyJ.' } });
  });

  it('censored once are censored for good: what a record holds never reads as a credential to POST /audit', () => {
    const pieces = ['eyJ', 'a', '.', '-', '_', ' ', '[', ']', REFRESH_TOKEN_PREFIX, REDACTION_CENSOR, 'x.eyJ'];
    let seed = 24;
    const next = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31);
    for (let i = 0; i < 2_000; i++) {
      const text = Array.from({ length: 1 + (next() % 12) }, () => pieces[next() % pieces.length]).join('');
      const { detail } = auditRecord('tool_call', { sub: 'usr_1', client_id: 'cli', grant_id: 'grt_1', jti: 'at_1' }, CAL, { arguments: { text } });
      expect(holdsCredential(detail), text).toBe(false);
    }
  });

  // Found at stop 24: POST /audit refuses a control or format character in a record's message or reason (review
  // s24audit), and a failed call's message may quote what a caller or a calendar supplied.
  it('write a message or reason holding control or format characters as visible escapes, which POST /audit takes', () => {
    const claims = { sub: 'usr_1', client_id: 'cli', grant_id: 'grt_1', jti: 'at_1' };
    const { detail } = auditRecord('tool_call', claims, CAL, { tool: 'find_slot', outcome: 'error', message: 'No calendar named "a\nb\u001b[2K\u202e".' });
    expect(detail.message).toBe('No calendar named "a\\nb\\e[2K\\u{202e}".');
    expect(hasControlCharacters(String(detail.message))).toBe(false);
    expect(auditRecord('freebusy_read', claims, CAL, { outcome: 'refused', reason: 'line one\r\nline two' }).detail.reason).toBe('line one\\r\\nline two');
    // Plain text is kept as it is.
    expect(auditRecord('tool_call', claims, CAL, { message: 'The calendar "work" is down.' }).detail.message).toBe('The calendar "work" is down.');
  });

  it('keep small caller-supplied values and note large ones', () => {
    expect(boundedValue({ duration: '30m' })).toEqual({ duration: '30m' });
    expect(boundedValue({ text: 'x'.repeat(5000) })).toEqual({ omitted: expect.stringMatching(/characters/) });
  });

  it('note a value nested deeper than 8 levels, short as it may be, so that a report of it is never refused by POST /audit (16 levels)', () => {
    const nested = (depth: number) => JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`) as unknown;
    expect(boundedValue(nested(8))).toEqual(nested(8));
    expect(boundedValue(nested(9))).toEqual({ omitted: 'nested more than 8 levels deep' });
    expect(boundedValue(nested(50_000))).toEqual({ omitted: 'nested more than 8 levels deep' });
  });
});
