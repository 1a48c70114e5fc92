// Attacks on the resource servers' limits, from outside, over loopback HTTP:
// a token limited to a lookahead reading the past (against the servers built
// as the CLI builds them, with a token the real AS issued); tokens presented
// while the revocation list cannot be had (fail closed); and a calendar whose
// recurrence rule would hold the backend's event loop. SECURITY.md's rows
// for these attacks cite this file; the unit tests beside them check the
// same rules piece by piece.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildAgentServer } from '../../src/agent/server.js';
import { loadOrCreateAgentKey } from '../../src/agent/identity.js';
import { buildCalendarServer } from '../../src/calendar/server.js';
import { createRevocationList } from '../../src/resource/revocations.js';
import { initializeBody, mcpHeaders, rawRequest } from '../agent/http.js';
import { testIssuer, type TestIssuer } from '../agent/support.js';
import { freePort } from '../support/ports.js';
import { startFakeRevocationEndpoint, type FakeRevocationEndpoint } from '../resource/revocation-endpoint.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, signInAndOpenConsent } from '../support/oauth-flow.js';
import { REDIRECT, auditSince, exchangeAsAgent, expectExchangeRefusedOnly, expectInvalidToken, lastAuditSeq, queryRows, refusedSoon, startStack, stateChangedBy, userTokens, type Stack, type UserTokens } from './stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const window = (from: number, to: number) => `from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(to).toISOString())}`;

describe('a token limited to 7 days ahead, reading the past (the real AS, agent and backend)', () => {
  let stack: Stack;
  let limited: string;
  beforeAll(async () => {
    stack = await startStack();
    const user = await userTokens(stack);
    const detail = { type: 'calendar', locations: [stack.calendarUrl], actions: ['freebusy:read'], datatypes: ['freebusy'], lookahead_days: 7 };
    const exchanged = await exchangeAsAgent(stack, user.accessToken, { authorization_details: JSON.stringify([detail]) });
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    limited = String(exchanged.body.access_token);
    expect(decodeJwt(limited).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 7 })]);
  });
  afterAll(async () => stack?.close());

  const read = (query: string) => rawRequest({ port: stack.ports.calendar, path: `/freebusy?${query}`, headers: { authorization: `Bearer ${limited}` } });

  it('reads a window inside the limit (the control)', async () => {
    const now = Date.now();
    const res = await read(window(now + HOUR, now + DAY));
    expect(res.status, res.text).toBe(200);
    expect((res.json() as Record<string, unknown>).busy).toEqual(expect.any(Array));
  });

  it('refuses the year behind with 403 insufficient_scope naming the limit; only the refusal is recorded', async () => {
    const now = Date.now();
    const seq = await lastAuditSeq(stack);
    const { result: res, changed } = await stateChangedBy(stack, () => read(window(now - 365 * DAY, now)));
    expect(res.status).toBe(403);
    const body = res.json() as Record<string, unknown>;
    expect(body).toEqual({ error: 'insufficient_scope', error_description: expect.stringMatching(/not back before/) });
    expect(String(res.headers['www-authenticate'])).toContain('error="insufficient_scope"');
    expect(changed).toEqual(['audit_log']);
    expect(await auditSince(stack, seq)).toEqual([expect.objectContaining({ event: 'freebusy_read', detail: expect.objectContaining({ outcome: 'refused' }) })]);
  });

  it('refuses a window past the 7 days the same way', async () => {
    const now = Date.now();
    const { result: res, changed } = await stateChangedBy(stack, () => read(window(now + HOUR, now + 8 * DAY)));
    expect(res.status).toBe(403);
    expect((res.json() as Record<string, unknown>).error).toBe('insufficient_scope');
    expect(changed).toEqual(['audit_log']);
  });
});

/** The same client steps up (slots:find busy:read) on the real consent page, where the owner sets the lookahead. */
async function consentWithLookahead(stack: Stack, clientId: string, days: number): Promise<void> {
  const { challenge } = pkcePair();
  const href = authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find busy:read', state: 'st', challenge });
  const browser = new Browser();
  const page = await signInAndOpenConsent(browser, stack.issuer, stack.ownerJwk, href);
  expect(page.status).toBe(200);
  const decision = await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(page.html), lookahead_days: String(days), decision: 'approve' });
  expect(callbackParams(decision.location!).get('code')).toBeTruthy();
}

const readAhead = (stack: Stack, token: string, days: number) => {
  const now = Date.now();
  return rawRequest({ port: stack.ports.calendar, path: `/freebusy?${window(now + HOUR, now + days * DAY)}`, headers: { authorization: `Bearer ${token}` } });
};
const atAgent = (stack: Stack, token: string) => rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(token), body: initializeBody });

/** The claims a calendar token gets from CalendarAgent's exchange: the backend takes no other (its act, a calendar detail for it). */
function exchangedForCalendar(calendarUrl: string) {
  return {
    aud: calendarUrl,
    client_id: 'calendar-agent',
    scope: 'freebusy:read',
    act: { sub: 'calendar-agent', act: { sub: 'delegate-cli' } },
    authorization_details: [{ type: 'calendar', locations: [calendarUrl], actions: ['freebusy:read'], datatypes: ['freebusy'] }],
  };
}

/** An exchange asking outright for 30 days ahead under a grant narrowed to 7: 400 invalid_authorization_details, nothing issued (only the assertion's jti spent). */
async function expectThirtyDaysRefused(stack: Stack, subjectToken: string): Promise<void> {
  const detail = { type: 'calendar', locations: [stack.calendarUrl], actions: ['freebusy:read'], datatypes: ['freebusy'], lookahead_days: 30 };
  const { result: res, changed } = await stateChangedBy(stack, () => exchangeAsAgent(stack, subjectToken, { authorization_details: JSON.stringify([detail]) }));
  expect(res.status).toBe(400);
  expect(res.body).toMatchObject({ error: 'invalid_authorization_details', error_description: expect.stringMatching(/7 days ahead/) });
  expect(res.body.access_token).toBeUndefined();
  await expectExchangeRefusedOnly(stack, changed);
}

// Found in review: the owner narrowed a grant on the consent page (30 days ahead to 7), and a user token issued
// before that still exchanged for a calendar token carrying 30 days, with which the backend served a read 25 days
// ahead. The exchange then read the grant anew (the describe after this one); but the user's old token still
// carried 30 days to CalendarAgent, which shaped its calls by it, and the calendar token it had exchanged before
// the narrowing stayed in its cache. Now a narrowing takes back every token issued under the wider grant.
describe('a grant narrowed on the consent page after tokens were issued (the real consent page, AS, agent and backend)', () => {
  let stack: Stack;
  let old: UserTokens;
  let oldCalendar: string;
  let seq: number;
  beforeAll(async () => {
    stack = await startStack();
    old = await userTokens(stack, { scope: 'slots:find' });
    expect(decodeJwt(old.accessToken).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 30 })]);
    const exchanged = await exchangeAsAgent(stack, old.accessToken);
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    oldCalendar = String(exchanged.body.access_token);
    // The controls: before the narrowing both tokens work, the calendar token 25 days ahead.
    expect((await atAgent(stack, old.accessToken)).status).toBe(200);
    expect((await readAhead(stack, oldCalendar, 25)).status).toBe(200);
    seq = await lastAuditSeq(stack);
    await consentWithLookahead(stack, old.clientId, 7);
    const grant = await stack.store.grantById(old.grantId);
    expect(grant?.authorizationDetails).toEqual([expect.objectContaining({ lookahead_days: 7 })]);
  });
  afterAll(async () => stack?.close());

  it('takes back the tokens issued under the wider grant: the old user token at the agent and its calendar token at the backend are 401 invalid_token', async () => {
    expectInvalidToken(await refusedSoon(() => atAgent(stack, old.accessToken)), 'agent');
    expectInvalidToken(await refusedSoon(() => readAhead(stack, oldCalendar, 25)), 'calendar, 25 days ahead');
    expectInvalidToken(await readAhead(stack, oldCalendar, 6), 'calendar, 6 days ahead');
    // Nor can the old token be exchanged again: nothing issued.
    const { result: ex, changed } = await stateChangedBy(stack, () => exchangeAsAgent(stack, old.accessToken));
    expect(ex.status).toBe(400);
    expect(ex.body).toMatchObject({ error: 'invalid_request' });
    expect(ex.body.access_token).toBeUndefined();
    await expectExchangeRefusedOnly(stack, changed);
    // Both tokens are marked revoked and listed for the resource servers; the consent record says why.
    const revoked = queryRows(stack, 'SELECT jti FROM issued_tokens WHERE grant_id = ? AND revoked_at IS NOT NULL ORDER BY jti', old.grantId).map((r) => String(r.jti));
    expect(revoked).toEqual([decodeJwt(old.accessToken).jti, decodeJwt(oldCalendar).jti].map(String).sort());
    expect(queryRows(stack, "SELECT id FROM revocations WHERE kind = 'token' ORDER BY id").map((r) => String(r.id))).toEqual(revoked);
    const consent = (await auditSince(stack, seq)).filter((r) => r.event === 'consent');
    expect(consent).toEqual([expect.objectContaining({ detail: expect.objectContaining({ decision: 'approved', narrowed: true, tokens_revoked: 2 }) })]);
  });

  it('the refresh token still works and mints a token under the grant as it stands: 7 days, so its calendar token reads 6 days ahead, not 25', async () => {
    const refreshed = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: old.refreshToken, client_id: old.clientId });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    old = { ...old, accessToken: String(refreshed.body.access_token), refreshToken: String(refreshed.body.refresh_token) };
    expect(decodeJwt(old.accessToken).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 7 })]);
    expect((await atAgent(stack, old.accessToken)).status).toBe(200);
    const exchanged = await exchangeAsAgent(stack, old.accessToken);
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    const token = String(exchanged.body.access_token);
    expect((await readAhead(stack, token, 6)).status).toBe(200);
    const far = await readAhead(stack, token, 25);
    expect(far.status).toBe(403);
    expect(far.json()).toEqual({ error: 'insufficient_scope', error_description: expect.stringMatching(/7 days ahead/) });
  });

  it('asking the exchange for 30 days outright with the new token: 400 invalid_authorization_details, nothing issued', async () => {
    await expectThirtyDaysRefused(stack, old.accessToken);
  });
});

describe('a step-up that keeps the limits (the control for the above)', () => {
  let stack: Stack;
  afterAll(async () => stack?.close());

  it('takes nothing back: the token issued before it still works at the agent, and the consent record does not say narrowed', async () => {
    stack = await startStack();
    const old = await userTokens(stack, { scope: 'slots:find' });
    const before = await lastAuditSeq(stack);
    await consentWithLookahead(stack, old.clientId, 30);
    const consent = (await auditSince(stack, before)).filter((r) => r.event === 'consent');
    expect(consent).toEqual([expect.objectContaining({ detail: expect.objectContaining({ decision: 'approved', scope: 'slots:find busy:read' }) })]);
    expect(consent[0]!.detail).not.toHaveProperty('narrowed');
    // Given the revocation list time to arrive, had anything been listed.
    await new Promise((r) => setTimeout(r, 500));
    expect((await atAgent(stack, old.accessToken)).status).toBe(200);
    expect(queryRows(stack, 'SELECT COUNT(*) AS n FROM issued_tokens WHERE revoked_at IS NOT NULL')).toEqual([{ n: 0 }]);
  });
});

// Defence in depth for the above: a grant whose limits changed in the store without its tokens taken back (what
// the consent page no longer does) still yields only what it allows now at the exchange.
describe('the exchange reads the grant anew (a grant narrowed in the store, its tokens not taken back)', () => {
  let stack: Stack;
  let old: UserTokens;
  beforeAll(async () => {
    stack = await startStack();
    old = await userTokens(stack, { scope: 'slots:find' });
    const grant = (await stack.store.grantById(old.grantId))!;
    const details = grant.authorizationDetails.map((d) => ({ ...d, lookahead_days: 7 }));
    expect(await stack.store.updateGrant({ ...grant, authorizationDetails: details })).toBe(0);
  });
  afterAll(async () => stack?.close());

  it('the old token exchanges only for what the grant allows now: 7 days, and a read 25 days ahead is 403 insufficient_scope', async () => {
    const exchanged = await exchangeAsAgent(stack, old.accessToken);
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    const token = String(exchanged.body.access_token);
    const seq = await lastAuditSeq(stack);
    const { result: far, changed } = await stateChangedBy(stack, () => readAhead(stack, token, 25));
    expect(far.status, far.text).toBe(403);
    expect(far.json()).toEqual({ error: 'insufficient_scope', error_description: expect.stringMatching(/7 days ahead/) });
    expect(changed).toEqual(['audit_log']); // the refusal's record, nothing else
    expect(await auditSince(stack, seq)).toEqual([expect.objectContaining({ event: 'freebusy_read', detail: expect.objectContaining({ outcome: 'refused' }) })]);
    expect(exchanged.body.authorization_details).toEqual([expect.objectContaining({ lookahead_days: 7 })]);
    expect(decodeJwt(token).authorization_details).toEqual([expect.objectContaining({ lookahead_days: 7 })]);
    // The control: inside the 7 days, the same token reads.
    expect((await readAhead(stack, token, 6)).status).toBe(200);
  });

  it('asking the exchange for the old token’s 30 days outright: 400 invalid_authorization_details, nothing issued', async () => {
    await expectThirtyDaysRefused(stack, old.accessToken);
  });
});

describe('tokens presented while the revocation list cannot be had (fail closed)', () => {
  const issuers: { agent?: TestIssuer; calendar?: TestIssuer } = {};
  let endpoint: FakeRevocationEndpoint;
  let dir: string;
  const apps: FastifyInstance[] = [];
  const recorded: unknown[] = [];
  /** The resource servers' monotonic clock, moved forward to let the list go stale without waiting. */
  let skipMs = 0;
  const elapsed = () => performance.now() + skipMs;
  let agentPort: number;
  let calendarPort: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'delegate-fail-closed-'));
    await writeFile(join(dir, 'work.ics'), 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//delegate tests//EN\r\nEND:VCALENDAR\r\n');
    endpoint = await startFakeRevocationEndpoint();
    // The audience must be known before a server is built: take the ports first.
    calendarPort = await freePort();
    agentPort = await freePort();
    const calendarUrl = `http://127.0.0.1:${calendarPort}`;
    const agentUrl = `http://127.0.0.1:${agentPort}/mcp`;
    issuers.calendar = await testIssuer(endpoint.issuer, exchangedForCalendar(calendarUrl));
    issuers.agent = await testIssuer(endpoint.issuer, { aud: agentUrl });
    const identity = await loadOrCreateAgentKey(join(dir, 'agent-key.json'));
    apps.push(
      await buildCalendarServer({
        resourceUrl: calendarUrl,
        issuer: endpoint.issuer,
        calendarsFor: async () => ({ timeZone: 'UTC', calendars: [{ name: 'work', path: join(dir, 'work.ics') }] }),
        keys: issuers.calendar.keys,
        revocations: createRevocationList({ issuer: endpoint.issuer, elapsed, minRetryMs: 20 }),
        audit: async (record) => {
          recorded.push(record);
        },
      }),
      await buildAgentServer({
        resourceUrl: agentUrl,
        issuer: endpoint.issuer,
        calendarUrl,
        clientId: identity.clientId,
        privateKey: identity.privateJwk,
        keys: issuers.agent.keys,
        revocations: createRevocationList({ issuer: endpoint.issuer, elapsed, minRetryMs: 20 }),
        audit: async (record) => {
          recorded.push(record);
        },
      }),
    );
    await apps[0]!.listen({ port: calendarPort, host: '127.0.0.1' });
    await apps[1]!.listen({ port: agentPort, host: '127.0.0.1' });
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await endpoint?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const atCalendar = async () => {
    const now = Date.now();
    return rawRequest({ port: calendarPort, path: `/freebusy?${window(now + HOUR, now + DAY)}`, headers: { authorization: `Bearer ${await issuers.calendar!.token()}` } });
  };
  const atAgent = async () => rawRequest({ port: agentPort, method: 'POST', path: '/mcp', headers: mcpHeaders(await issuers.agent!.token()), body: initializeBody });

  it('answers while the list is fresh (the control)', async () => {
    expect((await atCalendar()).status).toBe(200);
    expect((await atAgent()).status).toBe(200);
  });

  it('refuses every token with 503 temporarily_unavailable and Retry-After once the list is stale, and records nothing', async () => {
    endpoint.failWith(500);
    skipMs += 31_000; // past the 30 s the endpoint allows (stale_after)
    recorded.length = 0;
    for (const [name, call] of [['calendar', atCalendar], ['agent', atAgent]] as const) {
      const res = await call();
      expect([name, res.status]).toEqual([name, 503]);
      expect(res.headers['retry-after'], name).toMatch(/^\d+$/);
      expect(res.json() as Record<string, unknown>, name).toEqual({ error: 'temporarily_unavailable', error_description: expect.stringMatching(/not been refreshed/) });
    }
    expect(recorded).toEqual([]);
  });
});

describe('a calendar whose recurrence rule would hold the backend (from 1900, every second matching once a day)', () => {
  let dir: string;
  let issuer: TestIssuer;
  let origin: string;
  let app: FastifyInstance | undefined;
  const HOSTILE = 'RRULE:FREQ=SECONDLY;BYHOUR=1;BYMINUTE=1;BYSECOND=1';
  const vevent = (uid: string, start: string, end: string, ...extra: string[]) =>
    ['BEGIN:VEVENT', `UID:${uid}`, 'DTSTAMP:20261101T000000Z', `DTSTART:${start}`, `DTEND:${end}`, ...extra, 'END:VEVENT'];
  const calendarText = (...events: string[][]) => ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', ...events.flat(), 'END:VCALENDAR', ''].join('\r\n');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'delegate-rrule-'));
    const tomorrow = new Date(Date.now() + DAY);
    const day = tomorrow.toISOString().slice(0, 10).replaceAll('-', '');
    await writeFile(join(dir, 'work.ics'), calendarText(vevent('w1@test', `${day}T100000Z`, `${day}T110000Z`)));
    await writeFile(join(dir, 'hostile.ics'), calendarText(vevent('h1@test', '19000101T010101Z', '19000101T010102Z', HOSTILE)));
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  async function start(onCalendarError: 'fail' | 'skip'): Promise<void> {
    const port = await freePort();
    origin = `http://127.0.0.1:${port}`;
    issuer = await testIssuer('http://127.0.0.1:9', exchangedForCalendar(origin));
    app = await buildCalendarServer({
      resourceUrl: origin,
      issuer: issuer.issuer,
      calendarsFor: async () => ({
        timeZone: 'UTC',
        calendars: [
          { name: 'work', path: join(dir, 'work.ics') },
          { name: 'hostile', path: join(dir, 'hostile.ics') },
        ],
      }),
      keys: issuer.keys,
      revocations: false,
      onCalendarError,
    });
    await app.listen({ port, host: '127.0.0.1' });
  }

  const read = async () => {
    const now = Date.now();
    const res = await fetch(`${origin}/freebusy?${window(now, now + 3 * DAY)}`, { headers: { authorization: `Bearer ${await issuer.token()}` }, signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('skips that calendar with a message naming the rule, answers from the others, and stays up', async () => {
    await start('skip');
    const res = await read();
    expect(res.status).toBe(200);
    expect(res.body.skipped).toEqual([{ calendar: 'hostile', error_description: expect.stringMatching(/is not supported/) }]);
    expect(res.body.busy).toEqual([expect.objectContaining({ start: expect.stringMatching(/T10:00:00/) })]);
    // The event loop was not held: the same server answers again.
    expect((await read()).status).toBe(200);
  });

  it('by default fails the request with 500 invalid_configuration naming the calendar (a file: the owner must mend it)', async () => {
    await start('fail');
    const res = await read();
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: 'invalid_configuration', error_description: expect.stringMatching(/is not supported/), calendar: 'hostile' });
    // The event loop was not held: the same server answers again, the same read and its metadata, promptly.
    const started = Date.now();
    const again = await read();
    expect(again.status).toBe(500);
    expect(again.body.calendar).toBe('hostile');
    expect((await fetch(`${origin}/.well-known/oauth-protected-resource`, { signal: AbortSignal.timeout(2_000) })).status).toBe(200);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
