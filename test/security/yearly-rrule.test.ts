// Yearly recurrence rules that ical.js 2.2.1 expanded wrongly, read from
// outside as the review did (findings "calendar" 1): the three servers built
// as the CLI builds them (startStack), a calendar file in the owner's data,
// /freebusy at the real backend and find_slot at the real agent over loopback
// HTTP, with tokens from the real flow.
// - `FREQ=YEARLY;BYWEEKNO=n;BYDAY=MO` (RFC 5545 §3.8.5.3's "Monday of week
//   number 20") came out as every Monday except week n's: find_slot offered a
//   slot inside the real all-day offsite, and every other Monday was busy.
// - `FREQ=YEARLY;BYDAY=MO;BYSETPOS=1` ("the first Monday of the year") came out
//   as every Monday.
// The offsite is put in the ISO week of the next Monday at least two days
// ahead, so the test reads what is coming whatever day it runs.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromWall } from '../../src/calendar/zone.js';
import { mcpHeaders, rawRequest } from '../agent/http.js';
import { exchangeAsAgent, startStack, userTokens, type Stack } from './stack.js';

const DAY = 86_400_000;
const ZONE = 'Europe/Berlin';

/** The ISO 8601 week (Monday first, week 1 holding 4 January) of a date, and the year it belongs to. */
function isoWeek(date: number): { year: number; week: number } {
  const d = new Date(date);
  const thursday = date + (3 - ((d.getUTCDay() + 6) % 7)) * DAY;
  const year = new Date(thursday).getUTCFullYear();
  return { year, week: Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * DAY)) + 1 };
}

/** The Monday of ISO week `week` of `year`, or undefined when that year has no such week. */
function mondayOfWeek(year: number, week: number): number | undefined {
  const jan4 = Date.UTC(year, 0, 4);
  const monday = jan4 - ((new Date(jan4).getUTCDay() + 6) % 7) * DAY + (week - 1) * 7 * DAY;
  return isoWeek(monday).year === year ? monday : undefined;
}

const ymd = (wallDay: number) => new Date(wallDay).toISOString().slice(0, 10);
const basic = (wallDay: number) => ymd(wallDay).replaceAll('-', '');
/** A wall-clock time on `wallDay` in Berlin, as an instant. */
const berlin = (wallDay: number, hour: number) => fromWall(wallDay + hour * 3_600_000, ZONE);

const vevent = (uid: string, day: number, from: string, to: string, rule: string) => [
  'BEGIN:VEVENT',
  `UID:${uid}`,
  'DTSTAMP:20250101T000000Z',
  `DTSTART;TZID=${ZONE}:${basic(day)}T${from}`,
  `DTEND;TZID=${ZONE}:${basic(day)}T${to}`,
  `RRULE:${rule}`,
  'END:VEVENT',
];
const calendarText = (event: string[]) => ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', ...event, 'END:VCALENDAR', ''].join('\r\n');

let stack: Stack;
let dir: string;
let userToken: string;
/** The Monday ahead (its wall-clock midnight), its ISO week, and the first Monday of its year. */
let monday: number;
let week: number;
let firstMonday: number;

beforeAll(async () => {
  stack = await startStack();
  dir = await mkdtemp(join(tmpdir(), 'delegate-yearly-'));
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  monday = today + 2 * DAY;
  while (new Date(monday).getUTCDay() !== 1) monday += DAY;
  ({ week } = isoWeek(monday));
  const thisYear = isoWeek(monday).year;
  // The series starts in the latest earlier year that has this week (week 53 is not in every year).
  let since: number | undefined;
  for (let year = thisYear - 1; since === undefined; year--) since = mondayOfWeek(year, week);
  await writeFile(join(dir, 'offsite.ics'), calendarText(vevent('offsite@test', since, '090000', '170000', `FREQ=YEARLY;BYWEEKNO=${week};BYDAY=MO`)));
  // The first Monday of the year, 10:00-11:00, since 2020 (6 January 2020).
  firstMonday = Date.UTC(new Date(monday).getUTCFullYear(), 0, 1);
  while (new Date(firstMonday).getUTCDay() !== 1) firstMonday += DAY;
  await writeFile(join(dir, 'first-monday.ics'), calendarText(vevent('first@test', Date.UTC(2020, 0, 6), '100000', '110000', 'FREQ=YEARLY;BYDAY=MO;BYSETPOS=1')));
  const owner = (await stack.store.ownerUser())!;
  for (const name of ['offsite', 'first-monday']) {
    await stack.store.addCalendar({ id: `cal_${name}`, userId: owner.id, name, kind: 'file', source: join(dir, `${name}.ics`), createdAt: Date.now() });
  }
  userToken = (await userTokens(stack)).accessToken;
});

afterAll(async () => {
  await stack?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function freebusy(calendar: string, from: number, to: number): Promise<Array<{ start: string; end: string }>> {
  const exchanged = await exchangeAsAgent(stack, userToken);
  expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
  const res = await rawRequest({
    port: stack.ports.calendar,
    path: `/freebusy?from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(to).toISOString())}&calendar=${calendar}`,
    headers: { authorization: `Bearer ${String(exchanged.body.access_token)}` },
  });
  expect(res.status, res.text).toBe(200);
  return (res.json() as { busy: Array<{ start: string; end: string }> }).busy.map((b) => ({ start: new Date(b.start).toISOString(), end: new Date(b.end).toISOString() }));
}

async function findSlot(args: Record<string, unknown>): Promise<string[]> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'find_slot', arguments: { timeZone: ZONE, ...args } } });
  const res = await rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(userToken, { 'mcp-protocol-version': '2025-06-18' }), body });
  expect(res.status, res.text).toBe(200);
  const result = (res.json() as { result: { isError?: boolean; structuredContent: { slots: Array<{ start: string }> } } }).result;
  expect(result.isError, JSON.stringify(result)).toBeFalsy();
  return result.structuredContent.slots.map((s) => s.start.slice(11, 16));
}

const iso = (instant: number) => new Date(instant).toISOString();

describe('a yearly offsite on the Monday of an ISO week (RRULE:FREQ=YEARLY;BYWEEKNO=n;BYDAY=MO), read over HTTP', () => {
  it('is busy on that Monday 09:00-17:00 Berlin and on no other day up to a week after (found in review: every Monday but that one)', async () => {
    const busy = await freebusy('offsite', Date.now() + 3_600_000, berlin(monday + 8 * DAY, 0));
    expect(busy).toEqual([{ start: iso(berlin(monday, 9)), end: iso(berlin(monday, 17)) }]);
  });

  it('find_slot on that Monday offers only time outside the offsite (found in review: 09:00, inside it)', async () => {
    const slots = await findSlot({ duration: '1h', from: ymd(monday), to: ymd(monday), calendars: ['offsite'], workingHours: 'mon-sun 08:00-18:00', step: '1h', limit: 20 });
    expect(slots).toEqual(['08:00', '17:00']);
  });
});

describe('the first Monday of the year (RRULE:FREQ=YEARLY;BYDAY=MO;BYSETPOS=1), read over HTTP', () => {
  it('leaves the other Mondays free (found in review: every Monday was busy 10:00-11:00)', async () => {
    const from = Date.now() + 3_600_000;
    const to = berlin(monday + DAY, 0);
    const busy = await freebusy('first-monday', from, to);
    // Only the year's first Monday, should it fall in the window (early January), clipped to the window.
    const [start, end] = [Math.max(berlin(firstMonday, 10), from), Math.min(berlin(firstMonday, 11), to)];
    expect(busy).toEqual(start < end ? [{ start: iso(start), end: iso(end) }] : []);
    const slots = await findSlot({ duration: '1h', from: `${ymd(monday)}T09:30`, to: ymd(monday), calendars: ['first-monday'], workingHours: 'mon-sun 08:00-18:00', limit: 1 });
    expect(slots).toEqual([monday === firstMonday ? '11:00' : '09:30']);
  });
});
