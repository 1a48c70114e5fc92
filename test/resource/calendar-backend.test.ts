// The calendar backend as a resource server of issue 3, through inject() with
// real ES256 tokens: it enforces the user's limits carried in the token (a
// window past the lookahead and a calendar outside the allowed ones are
// refused with 403 insufficient_scope naming the bound; with none named only
// the allowed calendars are read), refuses revoked grants and tokens from its
// revocation list and everything while the list is stale, and records every
// read with the full actor chain before answering.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildCalendarServer, type CalendarServerOptions } from '../../src/calendar/server.js';
import { createLogger } from '../../src/http/logging.js';
import type { ResourceAuditRecord } from '../../src/resource/audit.js';
import { createRevocationList } from '../../src/resource/revocations.js';
import { startFakeRevocationEndpoint, type FakeRevocationEndpoint } from './revocation-endpoint.js';

const ISSUER = 'http://127.0.0.1:8410';
const CALENDAR_URL = 'http://127.0.0.1:8411';
const NOW = Date.UTC(2026, 10, 30, 7, 0); // Mon 30 Nov 2026
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

let dir: string;
let key: CryptoKeyLike;
let publicJwk: JWK;
let audit: ResourceAuditRecord[];
const apps: FastifyInstance[] = [];
type CryptoKeyLike = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

function ics(uid: string, start: string, end: string): string {
  return ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', 'BEGIN:VEVENT', `UID:${uid}`, 'DTSTAMP:20261101T000000Z', `DTSTART:${start}`, `DTEND:${end}`, 'SUMMARY:private', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-limits-'));
  await writeFile(join(dir, 'work.ics'), ics('w1@test', '20261130T100000Z', '20261130T110000Z'));
  await writeFile(join(dir, 'private.ics'), ics('p1@test', '20261130T130000Z', '20261130T140000Z'));
  const pair = await generateKeyPair('ES256', { extractable: true });
  key = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(async () => {
  while (apps.length) await apps.pop()!.close();
});

async function backend(extra: Partial<CalendarServerOptions> = {}): Promise<FastifyInstance> {
  audit = [];
  const app = await buildCalendarServer({
    resourceUrl: CALENDAR_URL,
    issuer: ISSUER,
    calendarsFor: async (sub) =>
      sub === 'usr_owner'
        ? { timeZone: 'Europe/Berlin', calendars: [{ name: 'work', path: join(dir, 'work.ics') }, { name: 'private', path: join(dir, 'private.ics') }] }
        : undefined,
    now: () => NOW,
    keys: createLocalJWKSet({ keys: [publicJwk] }),
    revocations: false,
    audit: async (record) => {
      audit.push(record);
    },
    ...extra,
  });
  apps.push(app);
  return app;
}

/** An exchanged calendar token as the AS issues it, carrying the user's limits (`{}`: a detail naming none). */
async function token(limits: Record<string, unknown> | undefined, claims: Record<string, unknown> = {}): Promise<string> {
  const iat = Math.floor(NOW / 1000) - 10;
  return new SignJWT({
    iss: ISSUER,
    sub: 'usr_owner',
    aud: CALENDAR_URL,
    client_id: 'calendar-agent',
    scope: 'freebusy:read',
    grant_id: 'grt_1',
    jti: randomUUID(),
    iat,
    exp: iat + 300,
    act: { sub: 'calendar-agent', act: { sub: 'delegate-cli' } },
    ...(limits ? { authorization_details: [{ type: 'calendar', locations: [CALENDAR_URL], actions: ['freebusy:read'], datatypes: ['freebusy'], ...limits }] } : {}),
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
    .sign(key);
}

function freebusy(app: FastifyInstance, bearer: string, query: string) {
  return app.inject({ method: 'GET', url: `/freebusy?${query}`, headers: { authorization: `Bearer ${bearer}` } });
}

const today = `from=${iso(NOW)}&to=${iso(NOW + DAY)}`;

describe('the lookahead', () => {
  it('refuses a window past it with 403 insufficient_scope naming the limit, and records the refusal', async () => {
    const app = await backend();
    const res = await freebusy(app, await token({ lookahead_days: 14 }), `from=${iso(NOW)}&to=${iso(NOW + 15 * DAY)}`);
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({ error: 'insufficient_scope', error_description: expect.stringContaining('14 days ahead, until 2026-12-14T07:00:00.000Z') });
    expect(res.headers['www-authenticate']).toContain('error="insufficient_scope"');
    expect(res.headers['www-authenticate']).toContain(`resource_metadata="${CALENDAR_URL}/.well-known/oauth-protected-resource"`);
    expect(audit).toEqual([expect.objectContaining({ event: 'freebusy_read', grant: 'grt_1', detail: expect.objectContaining({ outcome: 'refused', reason: expect.stringContaining('14 days') }) })]);
  });

  it('refuses a window that reaches back into the past with 403 insufficient_scope: 7 days ahead is not the year behind', async () => {
    const app = await backend();
    const res = await freebusy(app, await token({ lookahead_days: 7 }), `from=${iso(NOW - 365 * DAY)}&to=${iso(NOW)}`);
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({ error: 'insufficient_scope', error_description: expect.stringContaining('not back before 2026-11-30T07:00:00.000Z') });
    expect(res.json().busy).toBeUndefined();
    expect(audit).toEqual([expect.objectContaining({ event: 'freebusy_read', detail: expect.objectContaining({ outcome: 'refused' }) })]);
  });

  it('answers a window that ends exactly at the limit', async () => {
    const app = await backend();
    const res = await freebusy(app, await token({ lookahead_days: 14 }), `from=${iso(NOW)}&to=${iso(NOW + 14 * DAY)}`);
    expect(res.statusCode).toBe(200);
  });
});

describe('the allowed calendars', () => {
  it('with none named, reads only the allowed ones', async () => {
    const app = await backend();
    const limited = await freebusy(app, await token({ calendars: ['work'] }), today);
    expect(limited.statusCode).toBe(200);
    expect(limited.json().busy).toEqual([{ start: '2026-11-30T10:00:00Z', end: '2026-11-30T11:00:00Z' }]);
    const all = await freebusy(app, await token({}), today);
    expect(all.json().busy).toEqual([
      { start: '2026-11-30T10:00:00Z', end: '2026-11-30T11:00:00Z' },
      { start: '2026-11-30T13:00:00Z', end: '2026-11-30T14:00:00Z' },
    ]);
  });

  it('refuses a named calendar outside them, naming what is allowed', async () => {
    const app = await backend();
    const res = await freebusy(app, await token({ calendars: ['work'] }), `${today}&calendar=private`);
    expect(res.statusCode).toBe(403);
    // RFC 6750 §3: no `"` in an error_description (body or challenge), so the names are quoted with `'`.
    expect(res.json()).toEqual({ error: 'insufficient_scope', error_description: "The delegation allows only the calendar 'work', not 'private'." });
    expect(res.headers['www-authenticate']).toContain(`error_description="The delegation allows only the calendar 'work', not 'private'."`);
  });

  it('refuses rather than answer "free" when none of the allowed calendars exists any more', async () => {
    const app = await backend();
    const res = await freebusy(app, await token({ calendars: ['archive'] }), today);
    expect(res.statusCode).toBe(403);
    expect(res.json().error_description).toMatch(/'archive'/);
  });

  it('refuses a token whose limits cannot be read', async () => {
    const app = await backend();
    const res = await freebusy(app, await token({ lookahead_days: -3 }), today);
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
  });
});

describe('calendars the delegation does not cover (review s23deleg)', () => {
  // The grant allows only "work"; the owner has since removed it (`delegate calendar remove work`) and keeps "secret"
  // and "medical". The holder of the token must learn nothing of those two: not their names, not their count, not
  // whether a calendar outside the grant exists.
  const others = ['secret', 'medical'];
  const owning = (names: string[]) => backend({ calendarsFor: async () => ({ timeZone: 'Europe/Berlin', calendars: names.map((name) => ({ name, path: join(dir, 'private.ics') })) }) });
  const answer = async (app: FastifyInstance, query: string) => {
    const res = await freebusy(app, await token({ calendars: ['work'] }), `${today}${query}`);
    return { status: res.statusCode, body: res.json() as Record<string, unknown>, challenge: res.headers['www-authenticate'] };
  };

  it('names none of them when the allowed calendar named is gone: only what the delegation allows', async () => {
    const res = await answer(await owning(others), '&calendar=work');
    expect(res).toEqual({ status: 400, body: { error: 'invalid_request', error_description: "No calendar named 'work'; none of those the delegation allows exists." }, challenge: undefined });
    expect(JSON.stringify(res)).not.toMatch(/secret|medical/);
  });

  it('answers the same whether the user has other calendars or none at all (their count)', async () => {
    for (const query of ['&calendar=work', '']) {
      const withOthers = await answer(await owning(others), query);
      const withNone = await answer(await owning([]), query);
      expect(withOthers, query).toEqual(withNone);
      expect(JSON.stringify(withOthers), query).not.toMatch(/secret|medical/);
    }
    // Unnamed: refused, naming only the delegation's own calendar (as before).
    expect((await answer(await owning([]), '')).body).toEqual({ error: 'insufficient_scope', error_description: "None of the calendars the delegation allows ('work') exists any more." });
  });

  it('answers a name outside the delegation the same whether such a calendar exists or not', async () => {
    const app = await owning(others);
    const exists = await answer(app, '&calendar=secret');
    const missing = await answer(app, '&calendar=nosuch');
    expect(exists.status).toBe(403);
    expect(JSON.parse(JSON.stringify(missing).replaceAll('nosuch', 'secret'))).toEqual(exists);
  });

  it('lists the delegation’s calendars that exist, and no other, when one it allows is gone', async () => {
    const app = await backend({ calendarsFor: async () => ({ timeZone: 'Europe/Berlin', calendars: [{ name: 'secret', path: join(dir, 'private.ics') }, { name: 'home', path: join(dir, 'work.ics') }] }) });
    const res = await freebusy(app, await token({ calendars: ['work', 'home'] }), `${today}&calendar=work`);
    expect([res.statusCode, res.json().error_description]).toEqual([400, "No calendar named 'work'; of those the delegation allows, the calendars are 'home'."]);
  });
});

describe('a broken line of a calendar file (review s23deleg): what leaves the backend quotes nothing of the file', () => {
  // Each a line a calendar program, or a person, may write by mistake; "Lawyer" stands for a title or a name.
  const event = (...lines: string[]) =>
    ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', 'BEGIN:VEVENT', 'UID:b1@test', 'DTSTAMP:20261101T000000Z', ...lines, 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
  const cases: Array<[string, string, string]> = [
    ['a title in DTSTART', event('DTSTART:Meet with lawyer about divorce', 'DTEND:20261130T110000Z'), "line 7: DTSTART value is not a date-time."],
    ['a title in DURATION', event('DTSTART:20261130T100000Z', 'DURATION:Lawyer'), "line 8: DURATION is not a duration."],
    ['a name in BYDAY', event('DTSTART:20261130T100000Z', 'DTEND:20261130T110000Z', 'RRULE:FREQ=WEEKLY;BYDAY=LAWYER'), "line 9: An RRULE BYDAY value is not a weekday."],
    ['a name in FREQ', event('DTSTART:20261130T100000Z', 'DTEND:20261130T110000Z', 'RRULE:FREQ=Lawyer'), "line 9: RRULE FREQ is not a frequency."],
    ['a name as a rule part', event('DTSTART:20261130T100000Z', 'DTEND:20261130T110000Z', 'RRULE:FREQ=DAILY;LAWYER=1'), "line 9: An RRULE part is unknown."],
    ['a name in COUNT', event('DTSTART:20261130T100000Z', 'DTEND:20261130T110000Z', 'RRULE:FREQ=DAILY;COUNT=lawyer'), "line 9: RRULE COUNT is not a positive whole number."],
    ['a name as a component', event('DTSTART:20261130T100000Z', 'DTEND:20261130T110000Z', 'BEGIN:LAWYER'), "line 10: END:VEVENT closes BEGIN:… of line 9."],
  ];

  it.each(cases)('%s: 500 and skipped name the calendar, the property and the line; the owner’s debug log has the text', async (_name, text, where) => {
    await writeFile(join(dir, 'broken.ics'), text);
    const lines: string[] = [];
    const stream = new PassThrough();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)));
    const app = await backend({
      calendarsFor: async () => ({ timeZone: 'Europe/Berlin', calendars: [{ name: 'work', path: join(dir, 'work.ics') }, { name: 'diary', path: join(dir, 'broken.ics') }] }),
      logger: createLogger('debug', stream),
    });
    const bearer = await token({});
    const failing = await freebusy(app, bearer, today);
    expect(failing.statusCode).toBe(500);
    expect(failing.json()).toMatchObject({ error: 'invalid_configuration', calendar: 'diary', error_description: expect.stringContaining(`Calendar 'diary', ${where.replaceAll('…', '...')}`) });
    const skipping = await freebusy(app, bearer, `${today}&on_calendar_error=skip`);
    expect(skipping.statusCode).toBe(200);
    expect(skipping.json().skipped).toEqual([{ calendar: 'diary', error_description: `Calendar "diary", ${where}` }]);
    for (const res of [failing, skipping]) expect(res.body).not.toMatch(/lawyer/i);
    // The owner, on their own computer, can still find what is wrong: at debug, the server's log quotes the line's text.
    expect(lines.some((l) => /lawyer/i.test(l) && JSON.parse(l).msg === 'calendar unavailable: its text at fault')).toBe(true);
    expect(lines.join('\n')).not.toContain(bearer.split('.')[2]!);
  });
});

describe('a time zone whose offset is not one (review s34privacy)', () => {
  // ical.js read the offset only when an event's time was converted in the zone, outside every step that names a line:
  // its Error ("Could not extract integer from …", quoting the file) was a 500 server_error for every search, skip or
  // not, and went to the log at error level.
  const text = [
    'BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN',
    'BEGIN:VTIMEZONE', 'TZID:Office', 'BEGIN:STANDARD', 'DTSTART:19701025T030000', 'TZOFFSETFROM:LEAKTZOFF', 'TZOFFSETTO:+0100', 'END:STANDARD', 'END:VTIMEZONE',
    'BEGIN:VEVENT', 'UID:z1@test', 'DTSTAMP:20261101T000000Z', 'DTSTART;TZID=Office:20261130T100000', 'DTEND;TZID=Office:20261130T110000', 'SUMMARY:private', 'END:VEVENT',
    'END:VCALENDAR', '',
  ].join('\r\n');

  it('is the calendar\'s error naming the line (500 invalid_configuration, or skipped), and only the debug log quotes the file', async () => {
    await writeFile(join(dir, 'tzoff.ics'), text);
    const lines: string[] = [];
    const stream = new PassThrough();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => lines.push(...chunk.split('\n').filter(Boolean)));
    const app = await backend({
      calendarsFor: async () => ({ timeZone: 'Europe/Berlin', calendars: [{ name: 'work', path: join(dir, 'work.ics') }, { name: 'btzoff', path: join(dir, 'tzoff.ics') }] }),
      logger: createLogger('debug', stream),
    });
    const bearer = await token({});
    const where = 'line 8: TZOFFSETFROM is not a UTC offset (+hhmm or -hhmm).';
    const failing = await freebusy(app, bearer, today);
    expect([failing.statusCode, failing.json()]).toMatchObject([500, { error: 'invalid_configuration', calendar: 'btzoff', error_description: expect.stringContaining(`Calendar 'btzoff', ${where}`) }]);
    const skipping = await freebusy(app, bearer, `${today}&on_calendar_error=skip`);
    expect(skipping.statusCode).toBe(200);
    expect(skipping.json()).toMatchObject({ busy: [{ start: '2026-11-30T10:00:00Z', end: '2026-11-30T11:00:00Z' }], skipped: [{ calendar: 'btzoff', error_description: `Calendar "btzoff", ${where}` }] });
    for (const res of [failing, skipping]) expect(res.body).not.toMatch(/LEAK/i);
    // Above debug, no line of the log quotes the file; at debug, the owner's line does.
    const above = lines.filter((l) => JSON.parse(l).level > 20);
    expect(above.some((l) => JSON.parse(l).msg === 'calendar unavailable')).toBe(true);
    expect(above.filter((l) => /LEAK|extract integer/i.test(l))).toEqual([]);
    expect(lines.some((l) => /LEAKTZOFF/.test(l) && JSON.parse(l).msg === 'calendar unavailable: its text at fault')).toBe(true);
  });
});

describe('the audit log', () => {
  it('records each read with the full actor chain, the grant and the calendars read', async () => {
    const app = await backend();
    const bearer = await token({ calendars: ['work'] }, { jti: 'at_read_1' });
    expect((await freebusy(app, bearer, today)).statusCode).toBe(200);
    expect(audit).toEqual([
      {
        event: 'freebusy_read',
        user: 'usr_owner',
        client: 'calendar-agent',
        grant: 'grt_1',
        resource: CALENDAR_URL,
        actors: ['calendar-agent', 'delegate-cli', 'usr_owner'],
        detail: { jti: 'at_read_1', outcome: 'ok', window: { from: iso(NOW), to: iso(NOW + DAY) }, calendars: ['work'] },
      },
    ]);
    expect(JSON.stringify(audit)).not.toContain(bearer);
  });

  it('withholds the answer when the read cannot be recorded', async () => {
    const app = await backend({ audit: () => Promise.reject(new Error('disk full')) });
    const res = await freebusy(app, await token({}), today);
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: 'temporarily_unavailable', error_description: expect.stringMatching(/audit log/) });
    expect(res.body).not.toContain('2026-11-30T10:00');
  });
});

describe('the revocation list', () => {
  let as: FakeRevocationEndpoint;
  afterEach(async () => as?.close());

  it('refuses every token of a revoked grant, and a revoked token by its jti', async () => {
    as = await startFakeRevocationEndpoint();
    const list = createRevocationList({ issuer: as.issuer });
    const app = await backend({ revocations: list });
    await app.ready();
    const kept = await token({}, { grant_id: 'grt_kept' });
    expect((await freebusy(app, kept, today)).statusCode).toBe(200);

    as.revoke('grant', 'grt_gone');
    as.revoke('token', 'at_gone');
    await list.synced();
    for (const bearer of [await token({}, { grant_id: 'grt_gone' }), await token({}, { grant_id: 'grt_kept', jti: 'at_gone' })]) {
      const res = await freebusy(app, bearer, today);
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
      expect(res.json().error_description).toMatch(/revoked/);
    }
    expect((await freebusy(app, kept, today)).statusCode).toBe(200);
  });

  it('refuses every token with 503 and Retry-After while the list cannot be had', async () => {
    as = await startFakeRevocationEndpoint();
    as.failWith(500);
    const app = await backend({ revocations: createRevocationList({ issuer: as.issuer, firstSyncTimeoutMs: 100, minRetryMs: 20 }) });
    await app.ready();
    const res = await freebusy(app, await token({}), today);
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(res.json().error).toBe('temporarily_unavailable');
  });
});
