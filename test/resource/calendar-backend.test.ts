// The calendar backend as a resource server of issue 3, through inject() with
// real ES256 tokens: it enforces the user's limits carried in the token (a
// window past the lookahead and a calendar outside the allowed ones are
// refused with 403 insufficient_scope naming the bound; with none named only
// the allowed calendars are read), refuses revoked grants and tokens from its
// revocation list and everything while the list is stale, and records every
// read with the full actor chain before answering.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildCalendarServer, type CalendarServerOptions } from '../../src/calendar/server.js';
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
