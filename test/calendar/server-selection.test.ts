// The calendar backend's issue-4 parameters through inject(): choosing
// calendars, counting tentative events as free, skipping a broken calendar per
// request, the owner's defaults and working hours, a settings problem, and a
// feed whose old copy stands in for a failed fetch.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCalendarServer, type UserCalendars } from '../../src/calendar/server.js';
import { CalendarSourceError } from '../../src/calendar/errors.js';
import { createCalendarLoader, type CalendarRef } from '../../src/calendar/sources.js';
import { parseCalendar } from '../../src/calendar/ics.js';

const ISSUER = 'http://127.0.0.1:8410';
const CALENDAR_URL = 'http://127.0.0.1:8411';
const NOW = Date.UTC(2022, 6, 1);
const fixture = (path: string) => fileURLToPath(new URL(`../../fixtures/${path}`, import.meta.url));
const status = { name: 'status', path: fixture('ics-samples/nodeical-macos-calendar-status.ics') };
const owner = { name: 'work', path: fixture('owner.ics') };
const broken = { name: 'google', path: fixture('ics-samples/nodeical-google-bad-rrule.ics') };
const feed = { name: 'team', id: 'cal_feed', url: 'https://calendar.example/team.ics' };
// Review "logs-faults": a calendar whose RRULE carries terminal escapes (an OSC that retitles the window, an erase-line).
const scratch = mkdtempSync(join(tmpdir(), 'delegate-selection-'));
const hostile = { name: 'evil', path: join(scratch, 'evil.ics') };
const hostileFeed = { name: 'hostile', id: 'cal_hostile', url: 'https://calendar.example/hostile.ics' };
// Found by the s18 helpers: calendar names with the same escapes (`calendar add` refuses them; a store written otherwise need not).
const hostileNamed = { name: 'evil\u001b]0;NAMED\u0007', path: join(scratch, 'evil.ics') };
const hostileNamedFeed = { name: 'feed\r\u001b[2K', id: 'cal_named', url: 'https://calendar.example/named.ics' };

const USERS: Record<string, UserCalendars> = {
  owner: { timeZone: 'America/Vancouver', calendars: [status, owner, broken] },
  relaxed: {
    timeZone: 'America/Vancouver',
    calendars: [status, broken],
    tentative: 'free',
    onCalendarError: 'skip',
    workingHours: { mon: [{ start: '08:00', end: '12:00' }] },
  },
  // As the CLI's backend tells the owner's (src/cli/calendar-backend.ts); the zone is one no computer knows.
  unknownZone: { timeZone: 'Mars/Olympus_Mons', calendars: [status], timeZoneMend: "set 'timeZone' in the owner's config.json to an IANA time zone such as Europe/Berlin" },
  unknownZoneNoMend: { timeZone: 'Mars/Olympus_Mons', calendars: [status] },
  misconfigured: { timeZone: 'UTC', calendars: [status], settingsProblem: "The owner's settings (config.json) cannot be used: config.json: the configuration file is not valid JSON." },
  subscriber: { timeZone: 'America/Vancouver', calendars: [feed] },
  waiting: { timeZone: 'America/Vancouver', calendars: [{ name: 'new', id: 'cal_new', url: 'https://calendar.example/new.ics' }] },
  hostile: { timeZone: 'UTC', calendars: [hostile, hostileFeed], onCalendarError: 'skip' },
  hostileNames: { timeZone: 'UTC', calendars: [hostileNamed, hostileNamedFeed], onCalendarError: 'skip' },
  hostileNameFails: { timeZone: 'UTC', calendars: [hostileNamed] },
};

let key: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let publicJwk: JWK;
let app: FastifyInstance;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  key = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  const files = createCalendarLoader();
  const feedText = `BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:f\r\nDTSTART:20220705T200000Z\r\nDURATION:PT30M\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n`;
  const fromFeed = parseCalendar(feedText, 'team');
  writeFileSync(
    hostile.path,
    ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//x//y//EN', 'BEGIN:VEVENT', 'UID:1@x', 'DTSTAMP:20220101T000000Z', 'DTSTART:20220705T100000Z', 'DTEND:20220705T110000Z', 'RRULE:FREQ=\u001b]0;PWNED-TITLE\u0007\u001b[2K\u001b[1GFAKE-LINE', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n'),
  );
  app = await buildCalendarServer({
    resourceUrl: CALENDAR_URL,
    issuer: ISSUER,
    calendarsFor: async (sub) => USERS[sub],
    now: () => NOW,
    keys: createLocalJWKSet({ keys: [publicJwk] }),
    revocations: false,
    loader: {
      load: (ref: CalendarRef) =>
        'url' in ref
          ? ref.name === 'new'
            ? Promise.reject(new CalendarSourceError('ERR_CALENDAR_UNREADABLE', 'new', 'The feed could not be fetched: the server answered HTTP 503.'))
            : Promise.resolve(fromFeed)
          : files.load(ref),
      staleness: (ref: CalendarRef) =>
        'url' in ref && ref.name === 'hostile'
          ? { calendar: ref.name, fetchedAt: Date.UTC(2022, 5, 30, 12), reason: 'The feed could not be fetched: \r\u001b[2KHTTP 200 OK \u001b]0;x\u0007' }
          : 'url' in ref ? { calendar: ref.name, fetchedAt: Date.UTC(2022, 5, 30, 12), reason: 'The feed could not be fetched: the server answered HTTP 503.' } : undefined,
    },
  });
});

afterAll(async () => {
  await app.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function freebusy(sub: string, extra = '') {
  const iat = Math.floor(NOW / 1000);
  // As the AS issues it by exchange: the agent in act, and a calendar detail for this backend (here naming no limit).
  const token = await new SignJWT({
    iss: ISSUER,
    sub,
    aud: CALENDAR_URL,
    client_id: 'calendar-agent',
    scope: 'freebusy:read',
    iat,
    exp: iat + 300,
    jti: randomUUID(),
    grant_id: 'grt_1',
    act: { sub: 'calendar-agent', act: { sub: 'delegate-cli' } },
    authorization_details: [{ type: 'calendar', locations: [CALENDAR_URL], actions: ['freebusy:read'], datatypes: ['freebusy'] }],
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
    .sign(key);
  return app.inject({ method: 'GET', url: `/freebusy?from=2022-07-01T00:00:00Z&to=2022-07-10T00:00:00Z${extra}`, headers: { authorization: `Bearer ${token}` } });
}

const TENTATIVE = { start: '2022-07-04T23:00:00Z', end: '2022-07-04T23:50:00Z' };
const CONFIRMED = [
  { start: '2022-07-05T16:00:00Z', end: '2022-07-05T17:00:00Z' },
  { start: '2022-07-07T16:00:00Z', end: '2022-07-07T17:00:00Z' },
];

describe('GET /freebusy with issue-4 parameters', () => {
  it('reads only the calendars named, and counts tentative events unless told they are free', async () => {
    const res = await freebusy('owner', '&calendar=status');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ timeZone: 'America/Vancouver', busy: [TENTATIVE, ...CONFIRMED] });
    expect((await freebusy('owner', '&calendar=status&tentative=free')).json().busy).toEqual(CONFIRMED);
  });

  it('fails on a broken calendar by default, and leaves it out with on_calendar_error=skip', async () => {
    const failing = await freebusy('owner', '&calendar=status&calendar=google');
    expect([failing.statusCode, failing.json().error, failing.json().calendar]).toEqual([500, 'invalid_configuration', 'google']);
    const skipping = await freebusy('owner', '&calendar=status&calendar=google&on_calendar_error=skip');
    expect(skipping.statusCode).toBe(200);
    expect(skipping.json().skipped).toEqual([{ calendar: 'google', error_description: expect.stringMatching(/^Calendar "google", line 50: /) }]);
  });

  it('applies the user’s defaults and sends their working hours; a request still overrides them', async () => {
    const res = await freebusy('relaxed');
    expect(res.json()).toMatchObject({ busy: CONFIRMED, workingHours: { mon: [{ start: '08:00', end: '12:00' }] }, skipped: [{ calendar: 'google' }] });
    expect((await freebusy('relaxed', '&tentative=busy')).json().busy).toEqual([TENTATIVE, ...CONFIRMED]);
    expect((await freebusy('relaxed', '&on_calendar_error=fail')).statusCode).toBe(500);
  });

  it('names an unknown calendar and the user’s calendars', async () => {
    const res = await freebusy('owner', '&calendar=holidays');
    expect(res.statusCode).toBe(400);
    // RFC 6749 §5.2 / RFC 6750 §3: no `"` in an error_description, so the names are quoted with `'` on the wire.
    expect(res.json()).toEqual({ error: 'invalid_request', error_description: "No calendar named 'holidays'; the calendars are 'status', 'work', 'google'." });
  });

  it.each([
    ['&tentative=maybe', /'tentative' must be busy or free/],
    ['&on_calendar_error=ignore', /'on_calendar_error' must be fail or skip/],
    ['&tentative=busy&tentative=free', /once/],
    ['&calendar=', /empty/],
  ])('refuses %s', async (extra, message) => {
    const res = await freebusy('owner', extra);
    expect(res.statusCode).toBe(400);
    expect(res.json().error_description).toMatch(message);
  });

  it('fails with the reason when the user’s settings cannot be used', async () => {
    const res = await freebusy('misconfigured');
    expect([res.statusCode, res.json().error]).toEqual([500, 'invalid_configuration']);
    expect(res.json().error_description).toMatch(/config\.json.*not valid JSON/);
  });

  it('fails with invalid_configuration naming a stored time zone this computer does not know, and how to mend it (not "try again")', async () => {
    const res = await freebusy('unknownZone');
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'invalid_configuration', error_description: expect.stringMatching(/time zone 'Mars\/Olympus_Mons' is not one this computer knows; set 'timeZone' in the owner's config\.json/) });
  });

  it('names no place to mend an unknown stored time zone when the account’s settings do not say where it is set', async () => {
    const res = await freebusy('unknownZoneNoMend');
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'invalid_configuration', error_description: "The calendar owner's time zone 'Mars/Olympus_Mons' is not one this computer knows; it must be set to an IANA time zone such as Europe/Berlin." });
  });

  it('a feed with no good copy yet is a passing failure of the calendar upstream: 502 calendar_unavailable', async () => {
    const res = await freebusy('waiting');
    expect([res.statusCode, res.json()]).toEqual([502, { error: 'calendar_unavailable', error_description: "Calendar 'new': The feed could not be fetched: the server answered HTTP 503.", calendar: 'new' }]);
  });

  it('says which feed could not be refreshed, and from when the copy it used is', async () => {
    const res = await freebusy('subscriber');
    expect(res.json()).toEqual({
      timeZone: 'America/Vancouver',
      busy: [{ start: '2022-07-05T20:00:00Z', end: '2022-07-05T20:30:00Z' }],
      stale: [{ calendar: 'team', fetchedAt: '2022-06-30T12:00:00Z', error_description: 'The feed could not be fetched: the server answered HTTP 503.' }],
    });
  });

  it('sends no control character from a calendar in a skipped or stale reason: each is shown as an escape', async () => {
    // Found in review "logs-faults": find-slot printed these reasons as they came, and the feed's OSC retitled the terminal.
    const res = await freebusy('hostile');
    expect(res.statusCode).toBe(200);
    const { skipped, stale } = res.json() as { skipped: Array<{ error_description: string }>; stale: Array<{ error_description: string }> };
    // The file's own text (the rule's escapes) no longer comes out at all (review s23deleg): the property and the line do.
    expect(skipped).toEqual([{ calendar: 'evil', error_description: 'Calendar "evil", line 9: RRULE FREQ is not a frequency.' }]);
    expect(stale).toEqual([{ calendar: 'hostile', fetchedAt: '2022-06-30T12:00:00Z', error_description: 'The feed could not be fetched: \\r\\e[2KHTTP 200 OK \\e]0;x\\u{0007}' }]);
  });

  it('sends no control character from a calendar’s name either: skipped, stale and the failure’s `calendar` show each as an escape', async () => {
    // Found by the s18 helpers: the reasons were escaped, the names beside them were not.
    const res = await freebusy('hostileNames');
    expect(res.statusCode).toBe(200);
    const { skipped, stale } = res.json() as { skipped: Array<{ calendar: string }>; stale: Array<{ calendar: string }> };
    expect(skipped.map((s) => s.calendar)).toEqual(['evil\\e]0;NAMED\\u{0007}']);
    expect(stale.map((s) => s.calendar)).toEqual(['feed\\r\\e[2K']);
    const failed = await freebusy('hostileNameFails');
    expect(failed.statusCode).toBe(500);
    expect(failed.json()).toMatchObject({ error: 'invalid_configuration', calendar: 'evil\\e]0;NAMED\\u{0007}' });
    expect(failed.body).not.toMatch(/[\u0000-\u001f]|\\u001[bB]|\\u0007/);
  });
});
