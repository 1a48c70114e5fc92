// A calendar whose recurring series each stay under the per-series limit but
// together would hold the process: 60 copies of a 135-byte
// RRULE:FREQ=SECONDLY;INTERVAL=25 series (8 KB), each about 38,000 iterations
// to get through a week. Found in review: a 7-day read held the event loop
// that `delegate serve` shares with the authorization server and
// CalendarAgent for ~23 s (the AS's metadata took 22.9 s), and paid it again
// on every read. Read over HTTP at the real backend, built with the AS and the
// agent in this one process as `delegate serve` builds them (stack.ts), while
// the other servers' metadata is asked for all the time.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeAsAgent, startStack, stateChangedBy, userTokens, type Stack } from './stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10).replaceAll('-', '');
const calendarText = (...events: string[][]) => ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', ...events.flat(), 'END:VCALENDAR', ''].join('\r\n');
const everyTwentyFiveSeconds = (uid: string) => ['BEGIN:VEVENT', `UID:${uid}`, 'DTSTAMP:20260101T000000Z', 'DTSTART:20260101T000000Z', 'DURATION:PT1S', 'RRULE:FREQ=SECONDLY;INTERVAL=25', 'END:VEVENT'];

let stack: Stack;
let dir: string;
let token: string;
// One window for every read, so that they fall in the same whole days.
let query: string;

beforeAll(async () => {
  stack = await startStack();
  dir = await mkdtemp(join(tmpdir(), 'delegate-budget-'));
  const tomorrow = Date.now() + DAY;
  await writeFile(join(dir, 'work.ics'), calendarText(['BEGIN:VEVENT', 'UID:w1@test', 'DTSTAMP:20261101T000000Z', `DTSTART:${day(tomorrow)}T100000Z`, `DTEND:${day(tomorrow)}T110000Z`, 'END:VEVENT']));
  const series = Array.from({ length: 60 }, (_, i) => everyTwentyFiveSeconds(`s${i + 1}`));
  await writeFile(join(dir, 'sec60.ics'), calendarText(...series));
  const owner = (await stack.store.ownerUser())!;
  for (const name of ['work', 'sec60']) {
    await stack.store.addCalendar({ id: `cal_${name}`, userId: owner.id, name, kind: 'file', source: join(dir, `${name}.ics`), createdAt: Date.now() });
  }
  const user = await userTokens(stack);
  const exchanged = await exchangeAsAgent(stack, user.accessToken);
  expect(exchanged.status, String(exchanged.body.error)).toBe(200);
  token = String(exchanged.body.access_token);
  const from = Date.now() + HOUR;
  query = `from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(from + 7 * DAY).toISOString())}`;
});
afterAll(async () => {
  await stack?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const read = async (extra = '') => {
  const res = await fetch(`${stack.calendarUrl}/freebusy?${query}&calendar=work&calendar=sec60${extra}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(60_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

/**
 * Runs `call` while asking the AS's and the backend's metadata every 100 ms, each answer awaited before the
 * next question: the longest wait for an answer, and how many were answered meanwhile.
 */
async function whileProbing<T>(call: () => Promise<T>): Promise<{ result: T; ms: number; slowestMetadataMs: number; probes: number }> {
  let done = false;
  let slowest = 0;
  let probes = 0;
  const probe = async () => {
    while (!done) {
      for (const url of [`${stack.issuer}/.well-known/oauth-authorization-server`, `${stack.calendarUrl}/.well-known/oauth-protected-resource`]) {
        const asked = Date.now();
        const res = await fetch(url, { signal: AbortSignal.timeout(60_000) });
        expect(res.status, url).toBe(200);
        slowest = Math.max(slowest, Date.now() - asked);
        probes++;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  // Answered before the read starts: the probes measure the read, not the first connection.
  await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`);
  const probing = probe();
  const started = Date.now();
  try {
    const result = await call();
    return { result, ms: Date.now() - started, slowestMetadataMs: slowest, probes };
  } finally {
    done = true;
    await probing;
  }
}

describe('a calendar of 60 series each under the per-series limit, together over the expansion budget (8 KB), read over a week', () => {
  it('by default is refused with 500 invalid_configuration naming the calendar, while the AS and the backend answer their metadata within 2 s throughout; nothing changed', async () => {
    const { result, changed } = await stateChangedBy(stack, () => whileProbing(() => read()));
    expect(result.result.status).toBe(500);
    expect(result.result.body).toEqual({ error: 'invalid_configuration', error_description: expect.stringMatching(/^Calendar 'sec60': .*more than 200000 repetitions/), calendar: 'sec60' });
    // Before the fix: ~23 s of a held event loop (more on a busy machine), every metadata answer waiting for it.
    expect(result.probes).toBeGreaterThan(0);
    expect(result.slowestMetadataMs).toBeLessThan(2_000);
    expect(result.ms).toBeLessThan(30_000);
    expect(changed).toEqual([]);
  }, 120_000);

  it('is not paid for again: the same read is refused at once; with on_calendar_error=skip it is 200 from the other calendar, naming it under skipped', async () => {
    const again = await whileProbing(() => read());
    expect(again.result.status).toBe(500);
    expect(again.result.body.calendar).toBe('sec60');
    expect(again.ms).toBeLessThan(2_000);
    const skipped = await whileProbing(() => read('&on_calendar_error=skip'));
    expect(skipped.result.status).toBe(200);
    expect(skipped.result.body.skipped).toEqual([{ calendar: 'sec60', error_description: expect.stringMatching(/more than 200000 repetitions/) }]);
    expect(skipped.result.body.busy).toEqual([expect.objectContaining({ start: expect.stringMatching(/T10:00:00/) })]);
    expect(skipped.ms).toBeLessThan(2_000);
  }, 120_000);
});
