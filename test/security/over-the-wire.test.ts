// Attacks whose rows in SECURITY.md were backed only by unit or in-process
// tests, made again from outside: against the three servers built as the CLI
// builds them (startStack), over loopback HTTP, with tokens the real AS issued.
// - A calendar file with RRULE:FREQ=DAILY;BYMONTHDAY=-1,-16 read through
//   /freebusy (ical.js never matched a negative BYMONTHDAY: ~187 s of a held
//   event loop, then a 500).
// - One authorization code redeemed by two requests at once, many times:
//   exactly one gets tokens, and the family is revoked with a code_replay
//   record every time. The race is real, not simulated: a pass-through wrapper
//   of the store's code lookup sees both requests read the code unused.
// - A calendar outside the token's limits, named at the real backend.
// - Found in review s23deleg: the calendars a grant does not cover, named to
//   its holder when the one it allows was removed; and a broken line's text
//   (a title where a date belongs) sent in the backend's error. Both at the
//   backend and through CalendarAgent's find_slot.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../src/authz/crypto.js';
import { mcpHeaders, rawRequest } from '../agent/http.js';
import { postForm } from '../support/oauth-flow.js';
import { auditSince, exchangeAsAgent, lastAuditSeq, ownerCode, queryRows, redeemCode, startStack, stateChangedBy, userTokens, type Stack } from './stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const window = (from: number, to: number) => `from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(to).toISOString())}`;
const vevent = (uid: string, start: string, end: string, ...extra: string[]) =>
  ['BEGIN:VEVENT', `UID:${uid}`, 'DTSTAMP:20261101T000000Z', `DTSTART:${start}`, `DTEND:${end}`, ...extra, 'END:VEVENT'];
const calendarText = (...events: string[][]) => ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', ...events.flat(), 'END:VCALENDAR', ''].join('\r\n');
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10).replaceAll('-', '');

let stack: Stack;
let dir: string;

beforeAll(async () => {
  stack = await startStack();
  dir = await mkdtemp(join(tmpdir(), 'delegate-wire-'));
  const tomorrow = Date.now() + DAY;
  await writeFile(join(dir, 'work.ics'), calendarText(vevent('w1@test', `${day(tomorrow)}T100000Z`, `${day(tomorrow)}T110000Z`)));
  await writeFile(join(dir, 'personal.ics'), calendarText(vevent('p1@test', `${day(tomorrow)}T130000Z`, `${day(tomorrow)}T140000Z`)));
  // The last day of every month since 1900, and the 16th from last (so that any 28 days hold an instance), 10:00-11:00 UTC.
  await writeFile(join(dir, 'month-end.ics'), calendarText(vevent('m1@test', '19000131T100000Z', '19000131T110000Z', 'RRULE:FREQ=DAILY;BYMONTHDAY=-1,-16')));
  const owner = (await stack.store.ownerUser())!;
  for (const name of ['work', 'personal', 'month-end']) {
    await stack.store.addCalendar({ id: `cal_${name}`, userId: owner.id, name, kind: 'file', source: join(dir, `${name}.ics`), createdAt: Date.now() });
  }
});
afterAll(async () => {
  await stack?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A calendar token from the real exchange, with the authorization details given (narrowing only). */
async function calendarToken(detail?: Record<string, unknown>): Promise<string> {
  const user = await userTokens(stack);
  const exchanged = await exchangeAsAgent(stack, user.accessToken, detail ? { authorization_details: JSON.stringify([{ type: 'calendar', locations: [stack.calendarUrl], actions: ['freebusy:read'], datatypes: ['freebusy'], ...detail }]) } : {});
  expect(exchanged.status, String(exchanged.body.error)).toBe(200);
  return String(exchanged.body.access_token);
}

const freebusy = (token: string, query: string) => rawRequest({ port: stack.ports.calendar, path: `/freebusy?${query}`, headers: { authorization: `Bearer ${token}` } });

describe('a calendar file with RRULE:FREQ=DAILY;BYMONTHDAY=-1,-16 (from 1900), read over HTTP at the real backend', () => {
  it('is busy on the last and the 16th-from-last day of each month in the window, answered promptly, never a 500; the server answers again', async () => {
    const token = await calendarToken();
    const from = Date.now() + HOUR;
    const to = Date.now() + 29 * DAY;
    // What RFC 5545 §3.3.10 makes of the rule in this window: 10:00-11:00 UTC on each month's last and 16th-from-last day, clipped.
    const expected: Array<{ start: string; end: string }> = [];
    for (let d = new Date(from); d.getTime() < to + DAY; d = new Date(d.getTime() + DAY)) {
      const y = d.getUTCFullYear();
      const m = d.getUTCMonth();
      const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
      if (d.getUTCDate() !== last && d.getUTCDate() !== last - 15) continue;
      const start = Math.max(Date.UTC(y, m, d.getUTCDate(), 10), from);
      const end = Math.min(Date.UTC(y, m, d.getUTCDate(), 11), to);
      if (start < end) expected.push({ start: new Date(start).toISOString(), end: new Date(end).toISOString() });
    }
    // Any 28 days hold one of them (so the busy list cannot pass empty).
    expect(expected.length).toBeGreaterThan(0);
    const started = Date.now();
    const res = await freebusy(token, `${window(from, to)}&calendar=month-end`);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(res.status, res.text).toBe(200);
    const body = res.json() as { busy: Array<{ start: string; end: string }>; skipped?: unknown };
    const normalize = (iso: string) => new Date(iso).toISOString();
    expect(body.busy.map((b) => ({ start: normalize(b.start), end: normalize(b.end) }))).toEqual(expected);
    // The same read with the other calendars, and again: the backend was never held.
    const all = await freebusy(token, window(from, to));
    expect(all.status, all.text).toBe(200);
    expect((all.json() as { busy: unknown[] }).busy.length).toBeGreaterThanOrEqual(expected.length);
    expect((await freebusy(token, `${window(from, to)}&calendar=month-end`)).status).toBe(200);
  });
});

describe('a calendar outside the token’s limits, named at the real backend over HTTP', () => {
  let limited: string;
  beforeAll(async () => {
    limited = await calendarToken({ calendars: ['work'], lookahead_days: 30 });
    expect(decodeJwt(limited).authorization_details).toEqual([expect.objectContaining({ calendars: ['work'] })]);
  });

  it('reads the allowed calendar (the control)', async () => {
    const now = Date.now();
    const res = await freebusy(limited, `${window(now + HOUR, now + 2 * DAY)}&calendar=work`);
    expect(res.status, res.text).toBe(200);
    expect((res.json() as { busy: unknown[] }).busy).toHaveLength(1);
  });

  it('refuses another calendar with 403 insufficient_scope; only the refusal is recorded', async () => {
    const now = Date.now();
    const seq = await lastAuditSeq(stack);
    const { result: res, changed } = await stateChangedBy(stack, () => freebusy(limited, `${window(now + HOUR, now + 2 * DAY)}&calendar=personal`));
    expect(res.status).toBe(403);
    expect((res.json() as Record<string, unknown>).error).toBe('insufficient_scope');
    expect(String(res.headers['www-authenticate'])).toContain('error="insufficient_scope"');
    expect(res.text).not.toContain('13:00');
    expect(changed).toEqual(['audit_log']);
    expect(await auditSince(stack, seq)).toEqual([expect.objectContaining({ event: 'freebusy_read', detail: expect.objectContaining({ outcome: 'refused' }) })]);
  });
});

describe('one authorization code redeemed by two requests at once, over HTTP, many times', () => {
  const ROUNDS = 30;

  it(`exactly one gets tokens; the family is revoked and one code_replay record written, every round (${ROUNDS} rounds)`, async () => {
    // Pass-through: what each lookup of a code found, to tell a real race (both read it unused) from a replay after the commit.
    // Each lookup then lets the event loop turn once, so that the other request can read the code before this one
    // redeems it: the access token is signed on the request's own thread (access-token.ts), so nothing else would
    // yield between the lookup and the redemption, and the race would hardly ever be run.
    const reads = new Map<string, Array<number | null>>();
    const store = stack.store as unknown as { authCodeByHash(hash: string): Promise<{ usedAt: number | null } | undefined> };
    const lookup = store.authCodeByHash.bind(stack.store);
    store.authCodeByHash = async (hash: string) => {
      const found = await lookup(hash);
      reads.set(hash, [...(reads.get(hash) ?? []), found ? found.usedAt : -1]);
      await new Promise((resolve) => setImmediate(resolve));
      return found;
    };
    let raced = 0;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const code = await ownerCode(stack);
        const seq = await lastAuditSeq(stack);
        const answers = await Promise.all([redeemCode(stack, code), redeemCode(stack, code)]);
        const name = `round ${round}`;
        expect(answers.map((a) => a.status).sort(), name).toEqual([200, 400]);
        const won = answers.find((a) => a.status === 200)!;
        const lost = answers.find((a) => a.status === 400)!;
        expect(lost.body.error, name).toBe('invalid_grant');
        expect(lost.body, name).not.toHaveProperty('access_token');
        expect(lost.body, name).not.toHaveProperty('refresh_token');

        const codeHash = hashSecret(code.code);
        if ((reads.get(codeHash) ?? []).filter((usedAt) => usedAt === null).length === 2) raced++;
        const grantId = String(decodeJwt(String(won.body.access_token)).grant_id);
        const [codeRow] = queryRows(stack, 'SELECT family_id FROM auth_codes WHERE code_hash = ?', codeHash);
        const familyId = String(codeRow!.family_id);
        expect(queryRows(stack, 'SELECT revoked_at FROM token_families WHERE id = ?', familyId)[0]!.revoked_at, name).not.toBeNull();
        // One refresh token and one access token for the family (the winner's), both revoked.
        expect(queryRows(stack, 'SELECT used_at FROM refresh_tokens WHERE family_id = ?', familyId), name).toHaveLength(1);
        const issued = queryRows(stack, 'SELECT revoked_at FROM issued_tokens WHERE family_id = ?', familyId);
        expect(issued, name).toHaveLength(1);
        expect(issued[0]!.revoked_at, name).not.toBeNull();
        const added = await auditSince(stack, seq);
        expect(added.filter((r) => r.event === 'code_replay'), name).toEqual([expect.objectContaining({ grant: grantId, client: code.clientId, detail: { family_revoked: familyId } })]);
        expect(added.filter((r) => r.event === 'token_issued'), name).toHaveLength(1);
        // From outside: the winner's refresh token is dead.
        const refresh = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(won.body.refresh_token), client_id: code.clientId });
        expect([refresh.status, refresh.body.error], name).toEqual([400, 'invalid_grant']);
      }
    } finally {
      store.authCodeByHash = lookup;
    }
    // The race was really run: in some rounds both requests read the code before either redemption committed.
    console.info(`code replay race: both requests read the code unused in ${raced} of ${ROUNDS} rounds`);
    expect(raced).toBeGreaterThan(0);
  });
});

/** find_slot at CalendarAgent over HTTP with the user's token: the JSON-RPC answer's text. */
async function findSlot(userToken: string, args: Record<string, unknown>): Promise<{ status: number; text: string }> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'find_slot', arguments: { duration: '30m', ...args } } });
  const res = await rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(userToken, { 'mcp-protocol-version': '2025-06-18' }), body });
  return { status: res.status, text: res.text };
}

describe('a grant for one calendar, which the owner then removed, over HTTP (review s23deleg)', () => {
  // The grant allows only "travel"; the owner also has "work", "personal" and "month-end", and then runs
  // `delegate calendar remove travel`. Its holder must learn nothing of the others: names, count, existence.
  let user: string;
  let limited: string;
  beforeAll(async () => {
    const owner = (await stack.store.ownerUser())!;
    await stack.store.addCalendar({ id: 'cal_travel', userId: owner.id, name: 'travel', kind: 'file', source: join(dir, 'work.ics'), createdAt: Date.now() });
    user = (await userTokens(stack, { choices: { calendars: ['travel'] } })).accessToken;
    const exchanged = await exchangeAsAgent(stack, user);
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    limited = String(exchanged.body.access_token);
    expect(decodeJwt(limited).authorization_details).toEqual([expect.objectContaining({ calendars: ['travel'] })]);
    expect(await stack.store.removeCalendar(owner.id, 'travel')).toBe(true);
  });
  const others = /work|personal|month-end/;

  it('the backend names none of the others when asked for the removed one, or for none', async () => {
    const now = Date.now();
    const named = await freebusy(limited, `${window(now + HOUR, now + 2 * DAY)}&calendar=travel`);
    expect([named.status, (named.json() as Record<string, unknown>).error_description]).toEqual([400, "No calendar named 'travel'; none of those the delegation allows exists."]);
    const unnamed = await freebusy(limited, window(now + HOUR, now + 2 * DAY));
    expect([unnamed.status, (unnamed.json() as Record<string, unknown>).error_description]).toEqual([403, "None of the calendars the delegation allows ('travel') exists any more."]);
    for (const res of [named, unnamed]) expect(res.text).not.toMatch(others);
  });

  it('answers a calendar outside the grant that exists as one that does not', async () => {
    const now = Date.now();
    const exists = await freebusy(limited, `${window(now + HOUR, now + 2 * DAY)}&calendar=personal`);
    const missing = await freebusy(limited, `${window(now + HOUR, now + 2 * DAY)}&calendar=nosuch`);
    expect(exists.status).toBe(403);
    expect([missing.status, missing.text.replaceAll('nosuch', 'personal')]).toEqual([exists.status, exists.text]);
  });

  it('CalendarAgent’s find_slot passes on no name of the others', async () => {
    for (const args of [{ calendars: ['travel'] }, {}]) {
      const res = await findSlot(user, args);
      expect(res.status, res.text).toBe(200);
      expect(res.text, JSON.stringify(args)).toContain('travel');
      expect(res.text, JSON.stringify(args)).not.toMatch(others);
    }
  });
});

describe('a calendar file whose line holds a title where a date belongs, over HTTP (review s23deleg)', () => {
  // `DTSTART:Meet with lawyer about divorce`: the backend promises busy times, "never titles, places or people".
  beforeAll(async () => {
    await writeFile(join(dir, 'diary.ics'), calendarText(['BEGIN:VEVENT', 'UID:d1@test', 'DTSTAMP:20261101T000000Z', 'DTSTART:Meet with lawyer about divorce', 'DTEND:20261201T110000Z', 'END:VEVENT']));
    const owner = (await stack.store.ownerUser())!;
    await stack.store.addCalendar({ id: 'cal_diary', userId: owner.id, name: 'diary', kind: 'file', source: join(dir, 'diary.ics'), createdAt: Date.now() });
  });
  afterAll(async () => {
    await stack.store.removeCalendar((await stack.store.ownerUser())!.id, 'diary');
  });

  it('the backend’s 500 and its skipped entry name the calendar, DTSTART and the line, not the title', async () => {
    const token = await calendarToken();
    const now = Date.now();
    const failing = await freebusy(token, `${window(now + HOUR, now + 2 * DAY)}&calendar=diary`);
    expect(failing.status).toBe(500);
    expect(failing.json()).toMatchObject({ error: 'invalid_configuration', calendar: 'diary', error_description: expect.stringMatching(/^Calendar 'diary', line 7: DTSTART value is not a date-time\. /) });
    const skipping = await freebusy(token, `${window(now + HOUR, now + 2 * DAY)}&calendar=diary&calendar=work&on_calendar_error=skip`);
    expect(skipping.status).toBe(200);
    expect((skipping.json() as { skipped: unknown }).skipped).toEqual([{ calendar: 'diary', error_description: 'Calendar "diary", line 7: DTSTART value is not a date-time.' }]);
    for (const res of [failing, skipping]) expect(res.text).not.toMatch(/lawyer|divorce/i);
  });

  it('CalendarAgent’s find_slot passes on no word of it, failing or skipping', async () => {
    const user = (await userTokens(stack)).accessToken;
    for (const args of [{ calendars: ['diary'] }, { calendars: ['diary', 'work'], onCalendarError: 'skip' }]) {
      const res = await findSlot(user, args);
      expect(res.status, res.text).toBe(200);
      expect(res.text, JSON.stringify(args)).toMatch(/line 7: DTSTART value is not a date-time/);
      expect(res.text, JSON.stringify(args)).not.toMatch(/lawyer|divorce/i);
    }
  });
});
