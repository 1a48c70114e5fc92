// The calendar backend through fastify's inject(), with real ES256 access
// tokens signed here and verified against a local JWKS.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCalendarServer, type CalendarServerOptions, type UserCalendars } from '../../src/calendar/server.js';
import { createCalendarLoader } from '../../src/calendar/sources.js';
import { dataDirectoryId } from '../../src/data-directory-id.js';
import { AUDIT_LOG_CANNOT_RECORD, unrecordedReadDescription } from '../../src/resource/audit.js';
import { StoreError } from '../../src/store/index.js';

const ISSUER = 'http://127.0.0.1:8410';
const CALENDAR_URL = 'http://127.0.0.1:8411';
const AGENT_URL = 'http://127.0.0.1:8412/mcp';
const METADATA_URL = `${CALENDAR_URL}/.well-known/oauth-protected-resource`;
const NOW = Date.UTC(2026, 10, 30, 7, 0); // Mon 30 Nov 2026, 08:00 in Berlin
const fixture = (path: string) => fileURLToPath(new URL(`../../fixtures/${path}`, import.meta.url));

const USERS: Record<string, UserCalendars> = {
  owner: { timeZone: 'Europe/Berlin', calendars: [{ name: 'work', path: fixture('owner.ics') }] },
  nobody: { timeZone: 'America/New_York', calendars: [] },
  broken: { timeZone: 'Europe/Berlin', calendars: [{ name: 'google', path: fixture('ics-samples/nodeical-google-bad-rrule.ics') }] },
  mixed: {
    timeZone: 'Europe/Berlin',
    calendars: [
      { name: 'google', path: fixture('ics-samples/nodeical-google-bad-rrule.ics') },
      { name: 'work', path: fixture('owner.ics') },
    ],
  },
  missing: { timeZone: 'Europe/Berlin', calendars: [{ name: 'gone', path: fixture('no-such-calendar.ics') }] },
  // Names as `delegate calendar add` takes them: spaces, apostrophes and any letter.
  spaced: { timeZone: 'Europe/Berlin', calendars: [{ name: 'my work', path: fixture('no-such-calendar.ics') }] },
  apostrophe: { timeZone: 'Europe/Berlin', calendars: [{ name: "Bob's", path: fixture('no-such-calendar.ics') }] },
  accented: { timeZone: 'Europe/Berlin', calendars: [{ name: 'Café', path: fixture('no-such-calendar.ics') }] },
};

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

let privateKey: SigningKey;
let otherKey: SigningKey;
let publicJwk: JWK;
let reads = 0;
let app: FastifyInstance;

async function build(extra: Partial<CalendarServerOptions> = {}): Promise<FastifyInstance> {
  return buildCalendarServer({
    resourceUrl: CALENDAR_URL,
    issuer: ISSUER,
    calendarsFor: async (sub) => USERS[sub],
    now: () => NOW,
    keys: createLocalJWKSet({ keys: [publicJwk] }),
    fetchFn: () => Promise.reject(new Error('no network in this test')),
    // The issuer here is a bare signing key with no revocation list (test/resource/calendar-backend.test.ts has one).
    revocations: false,
    loader: createCalendarLoader({
      readText: async (path) => {
        reads++;
        const { readFile } = await import('node:fs/promises');
        return readFile(path, 'utf8');
      },
    }),
    ...extra,
  });
}

beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  otherKey = (await generateKeyPair('ES256')).privateKey;
  app = await build();
});

afterAll(async () => {
  await app.close();
});

interface TokenOptions {
  claims?: Record<string, unknown>;
  header?: Record<string, unknown>;
  key?: SigningKey;
}

/** An access token as the AS issues it after token exchange (docs/internals.md), with changes. */
async function token(options: TokenOptions = {}): Promise<string> {
  const iat = Math.floor(NOW / 1000) - 10;
  const claims = {
    iss: ISSUER,
    sub: 'owner',
    aud: CALENDAR_URL,
    client_id: 'calendar-agent',
    scope: 'freebusy:read',
    iat,
    exp: iat + 300,
    jti: randomUUID(),
    grant_id: 'grant-1',
    act: { sub: 'calendar-agent', act: { sub: 'delegate-cli' } },
    authorization_details: [{ type: 'calendar', locations: [CALENDAR_URL], actions: ['freebusy:read'], datatypes: ['freebusy'] }],
    ...options.claims,
  };
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1', ...options.header } as { alg: string })
    .sign(options.key ?? privateKey);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function freebusy(authorization: string | undefined, query = 'from=2026-11-30T08:35:00Z&to=2026-12-01T00:00:00Z', target: FastifyInstance = app) {
  return target.inject({ method: 'GET', url: `/freebusy?${query}`, headers: authorization ? { authorization } : {} });
}

describe('GET /.well-known/oauth-protected-resource', () => {
  // Found in review (s31mcp): CalendarAgent's metadata answered no preflight, and this one no CORS at all, where the
  // authorization server's metadata answers both (src/http/cors.ts).
  it('is readable from another origin, and answers a CORS preflight as the authorization server does for its metadata', async () => {
    const headers = { origin: 'http://localhost:16274', 'access-control-request-method': 'GET', 'access-control-request-headers': 'mcp-protocol-version' };
    const res = await app.inject({ method: 'OPTIONS', url: '/.well-known/oauth-protected-resource', headers });
    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['access-control-allow-methods']).toBe('GET, OPTIONS');
    expect(String(res.headers['access-control-allow-headers']).toLowerCase()).toContain('mcp-protocol-version');
    const get = await app.inject({ method: 'GET', url: '/.well-known/oauth-protected-resource', headers: { origin: 'http://localhost:16274' } });
    expect(get.headers['access-control-allow-origin']).toBe('*');
    // Free/busy itself stays without CORS.
    const freebusy = await app.inject({ method: 'OPTIONS', url: '/freebusy', headers });
    expect(freebusy.statusCode).toBe(405);
    expect(freebusy.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('describes the backend (RFC 9728)', async () => {
    const res = await app.inject({ method: 'GET', url: '/.well-known/oauth-protected-resource' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({
      resource: CALENDAR_URL,
      authorization_servers: [ISSUER],
      scopes_supported: ['freebusy:read'],
      bearer_methods_supported: ['header'],
      resource_name: expect.any(String),
    });
  });

  // Found in review (s27ports): serve-calendar, finding its port taken, could not tell whether this data directory's
  // servers held it: only the authorization server said which data directory it ran from.
  it('says which data directory it runs from in a header web pages cannot read, as the authorization server does; at a loopback URL only', async () => {
    const home = await mkdtemp(join(tmpdir(), 'delegate-calendar-data-'));
    const [here, published] = [await build({ dataDirectory: home }), await build({ dataDirectory: home, resourceUrl: 'https://calendar.example.com' })];
    try {
      const res = await here.inject({ method: 'GET', url: '/.well-known/oauth-protected-resource' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['delegate-data-directory']).toBe(await dataDirectoryId(home));
      expect(res.headers['access-control-expose-headers']).toBeUndefined();
      expect(res.body).not.toContain(home);
      // Published at an https URL (a reverse proxy's, whose clients are elsewhere): none, as for an https issuer.
      const behind = await published.inject({ method: 'GET', url: '/.well-known/oauth-protected-resource' });
      expect(behind.statusCode).toBe(200);
      expect(behind.headers['delegate-data-directory']).toBeUndefined();
      // Without a data directory (an embedder's server): none.
      expect((await app.inject({ method: 'GET', url: '/.well-known/oauth-protected-resource' })).headers['delegate-data-directory']).toBeUndefined();
    } finally {
      await Promise.all([here.close(), published.close()]);
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe('GET /freebusy', () => {
  it('returns only merged busy intervals in UTC, clipped to the window, and the time zone', async () => {
    const res = await freebusy(`Bearer ${await token()}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({
      timeZone: 'Europe/Berlin',
      busy: [
        { start: '2026-11-30T08:35:00Z', end: '2026-11-30T08:45:00Z' }, // the standup, clipped at `from`
        { start: '2026-11-30T09:00:00Z', end: '2026-11-30T10:00:00Z' },
        { start: '2026-11-30T11:00:00Z', end: '2026-11-30T12:00:00Z' }, // lunch; no sprint planning this week
      ],
    });
    expect(res.body).not.toMatch(/standup|Lunch|SUMMARY|sync/i);
  });

  // Busy time goes out only once its read is recorded. Found in review: a full or read-only store got 503 "try again
  // shortly", where waiting mends nothing; it is named instead (500 server_error), a passing failure keeps 503.
  it.each([
    [new StoreError('STORE_FULL', 'The disk holding /x/delegate.db is full.'), 500, 'server_error', unrecordedReadDescription(AUDIT_LOG_CANNOT_RECORD.STORE_FULL)],
    [new StoreError('STORE_READ_ONLY', 'The database /x/delegate.db cannot be written.'), 500, 'server_error', unrecordedReadDescription(AUDIT_LOG_CANNOT_RECORD.STORE_READ_ONLY)],
    [new StoreError('STORE_CORRUPT', 'The database /x/delegate.db is damaged or is not a delegate database.'), 500, 'server_error', unrecordedReadDescription(AUDIT_LOG_CANNOT_RECORD.STORE_CORRUPT)],
    [new Error('the audit report timed out'), 503, 'temporarily_unavailable', 'The read could not be recorded in the audit log; try again shortly.'],
  ])('a read that cannot be recorded (%s) gives no busy time: %i %s', async (failure, status, error, description) => {
    const unrecorded = await build({ audit: () => Promise.reject(failure) });
    try {
      const res = await freebusy(`Bearer ${await token()}`, undefined, unrecorded);
      expect([res.statusCode, res.json()]).toEqual([status, { error, error_description: description }]);
      expect(res.body).not.toContain('/x/delegate.db');
    } finally {
      await unrecorded.close();
    }
  });

  // An empty busy list would read as "checked, and free all week": there is nothing to check, and the answer says so.
  it('answers a user with no calendars 404 no_calendars, saying how to add one, not an empty busy list', async () => {
    const res = await freebusy(`Bearer ${await token({ claims: { sub: 'nobody' } })}`);
    expect([res.statusCode, res.json()]).toEqual([404, { error: 'no_calendars', error_description: 'There are no calendars to check: add one with `delegate calendar add NAME FILE`, or `delegate calendar add NAME` for a feed (it asks for its address).' }]);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('answers 404 for a user it does not know', async () => {
    const res = await freebusy(`Bearer ${await token({ claims: { sub: 'stranger' } })}`);
    expect([res.statusCode, res.json().error]).toEqual([404, 'not_found']);
  });

  // A calendar file is the owner's setup, not a passing failure: 500 invalid_configuration (not the client's fault), naming the
  // calendar and the two ways out (not the file's path), and no advice to try again.
  it('names a calendar file that cannot be parsed or read, the line and what to do, without its path or a stack', async () => {
    const res = await freebusy(`Bearer ${await token({ claims: { sub: 'broken' } })}`);
    expect(res.statusCode).toBe(500);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({
      error: 'invalid_configuration',
      // RFC 6749 §5.2: no `"` in an error_description; the server's message quotes with `'` on the wire.
      error_description:
        "Calendar 'google', line 50: An RRULE part is not NAME=VALUE. " +
        "Fix the calendar's file (`delegate calendar list` shows where it is), or remove the calendar with `delegate calendar remove google`.",
      calendar: 'google',
    });
    const missing = await freebusy(`Bearer ${await token({ claims: { sub: 'missing' } })}`);
    expect(missing.statusCode).toBe(500);
    expect(missing.json().error_description).toBe(
      "Calendar 'gone': The calendar cannot be read: its file does not exist. Fix the calendar's file (`delegate calendar list` shows where it is), or remove the calendar with `delegate calendar remove gone`.",
    );
    // No path on the wire (the answer may go to a remote client), no stack, no advice to wait.
    expect(missing.body).not.toMatch(/fixtures|no-such-calendar|at .*\.ts|Try again/);
  });

  // A name with a space was advised bare (`delegate calendar remove my work`: two words, 'too many arguments'). A word
  // that needs `"` or `\` to quote it, or is written otherwise on the wire (`é` as `e`), is not advised as a command.
  it('advises removing a calendar by a name the shell reads as one word, or says to quote it', async () => {
    const described = async (sub: string) => (await freebusy(`Bearer ${await token({ claims: { sub } })}`)).json().error_description as string;
    expect(await described('spaced')).toMatch(/or remove the calendar with `delegate calendar remove 'my work'`\.$/);
    expect(await described('apostrophe')).toMatch(/or remove the calendar with `delegate calendar remove` and its name, quoted\.$/);
    expect(await described('accented')).toMatch(/or remove the calendar with `delegate calendar remove` and its name, quoted\.$/);
  });

  it('leaves a broken calendar out and names it when told to skip', async () => {
    const skipping = await build({ onCalendarError: 'skip' });
    const res = await freebusy(`Bearer ${await token({ claims: { sub: 'mixed' } })}`, undefined, skipping);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.busy).toHaveLength(3);
    expect(body.skipped).toEqual([{ calendar: 'google', error_description: expect.stringMatching(/^Calendar "google", line 50: /) }]);
    await skipping.close();
  });

  it('parses a calendar once while its file is unchanged', async () => {
    const fresh = await build();
    const before = reads;
    const authorization = `Bearer ${await token()}`;
    for (let i = 0; i < 3; i++) expect((await freebusy(authorization, undefined, fresh)).statusCode).toBe(200);
    expect(reads - before).toBe(1);
    await fresh.close();
  });

  // The messages quote parameter names; on the wire `"` becomes `'` (RFC 6749 §5.2).
  it.each([
    ['', /'from' parameter is required/],
    ['from=2026-11-30T08:00:00Z', /'to' parameter is required/],
    ['from=yesterday&to=2026-12-01T00:00:00Z', /'from' must be an ISO 8601/],
    ['from=2026-11-30T08:00:00&to=2026-12-01T00:00:00Z', /'from' must be an ISO 8601/],
    ['from=2026-12-01T00:00:00Z&to=2026-12-01T00:00:00Z', /'to' must be later/],
    ['from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z', /'to' must be later/],
    ['from=2026-01-01T00:00:00Z&to=2027-01-03T00:00:00Z', /366 days/],
    ['from=2026-11-30T08:00:00Z&from=2026-11-30T09:00:00Z&to=2026-12-01T00:00:00Z', /once/],
  ])('refuses the window %j with 400', async (query, message) => {
    const res = await freebusy(`Bearer ${await token()}`, query);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'invalid_request', error_description: expect.stringMatching(message) });
  });
});

describe('GET /freebusy refuses tokens it must not accept', () => {
  it('without a token: 401 with only resource_metadata', async () => {
    const res = await freebusy(undefined);
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe(`Bearer resource_metadata="${METADATA_URL}"`);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('another authentication scheme: 401 with only resource_metadata', async () => {
    const res = await freebusy('Basic dXNlcjpwYXNz');
    expect([res.statusCode, res.headers['www-authenticate']]).toEqual([401, `Bearer resource_metadata="${METADATA_URL}"`]);
  });

  it('a token without freebusy:read: 403 insufficient_scope naming the scope', async () => {
    const res = await freebusy(`Bearer ${await token({ claims: { scope: 'calendar:write' } })}`);
    expect(res.statusCode).toBe(403);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer resource_metadata="http:\/\/127\.0\.0\.1:8411\/\.well-known\/oauth-protected-resource", error="insufficient_scope", /);
    expect(res.headers['www-authenticate']).toMatch(/scope="freebusy:read"$/);
    expect(res.json().error).toBe('insufficient_scope');
  });

  const invalid: Array<[string, () => Promise<string>]> = [
    // Passthrough: the user's own token for CalendarAgent must not open the calendar.
    ['the user’s token for the agent (passthrough)', () => token({ claims: { aud: AGENT_URL, scope: 'slots:find', client_id: 'delegate-cli', act: undefined } })],
    ['the agent’s audience with the right scope', () => token({ claims: { aud: AGENT_URL } })],
    ['an expired token', () => token({ claims: { iat: Math.floor(NOW / 1000) - 700, exp: Math.floor(NOW / 1000) - 1 } })],
    ['another issuer', () => token({ claims: { iss: 'http://127.0.0.1:9999' } })],
    ['typ JWT instead of at+jwt', () => token({ header: { typ: 'JWT' } })],
    ['a key the issuer does not publish', () => token({ key: otherKey })],
    ['a tampered payload', async () => {
      const [h, , s] = (await token()).split('.');
      return `${h}.${b64({ iss: ISSUER, sub: 'owner', aud: CALENDAR_URL, client_id: 'x', scope: 'freebusy:read', iat: 1, exp: 4e9, jti: 'j', grant_id: 'g' })}.${s}`;
    }],
    ['a tampered signature', async () => {
      const t = await token();
      return `${t.slice(0, -6)}${t.slice(-6) === 'AAAAAA' ? 'BBBBBB' : 'AAAAAA'}`;
    }],
    ['alg none', async () => `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64({ iss: ISSUER, sub: 'owner', aud: CALENDAR_URL, client_id: 'calendar-agent', scope: 'freebusy:read', iat: Math.floor(NOW / 1000), exp: Math.floor(NOW / 1000) + 300, jti: 'j', grant_id: 'g' })}.`],
    ['no grant_id', () => token({ claims: { grant_id: undefined } })],
  ];

  it.each(invalid)('%s: 401 invalid_token', async (_name, make) => {
    const res = await freebusy(`Bearer ${await make()}`);
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer resource_metadata="http:\/\/127\.0\.0\.1:8411\/\.well-known\/oauth-protected-resource", error="invalid_token", error_description="[^"]+"$/);
    expect(res.json().error).toBe('invalid_token');
    expect(res.body).not.toMatch(/busy/);
  });

  it('a malformed Authorization header: 400 invalid_request', async () => {
    const res = await freebusy('Bearer not a token');
    expect(res.statusCode).toBe(400);
    expect(res.headers['www-authenticate']).toMatch(/error="invalid_request"/);
  });
});

describe('buildCalendarServer', () => {
  it('serves under the path of a resource URL that has one (RFC 9728 §3.1)', async () => {
    const nested = await build({ resourceUrl: 'http://127.0.0.1:8411/calendar' });
    const meta = await nested.inject({ method: 'GET', url: '/.well-known/oauth-protected-resource/calendar' });
    expect(meta.json().resource).toBe('http://127.0.0.1:8411/calendar');
    const res = await nested.inject({ method: 'GET', url: '/calendar/freebusy?from=2026-11-30T08:00:00Z&to=2026-11-30T09:00:00Z' });
    expect(res.headers['www-authenticate']).toBe('Bearer resource_metadata="http://127.0.0.1:8411/.well-known/oauth-protected-resource/calendar"');
    await nested.close();
  });

  it('refuses a resource URL that is not one', async () => {
    await expect(build({ resourceUrl: 'not a url' })).rejects.toThrow(/resource URL/);
  });
});
