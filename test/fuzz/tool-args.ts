// Generators of MCP tool arguments for find_slot and list_busy: the real
// field names with values of the right kind but wrong (zero, negative,
// enormous, impossible dates, unknown zones), wrong types, missing required
// fields, and unknown fields.
import fc from 'fast-check';
import { junk } from './support.js';

/** Any JSON value a client might put where a string or number belongs. */
function wrongType(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 }),
  );
}

function field(plausible: readonly unknown[]): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...plausible) }, { weight: 2, arbitrary: junk() }, { weight: 1, arbitrary: wrongType() });
}

const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
const now = Date.now();

const DURATIONS = ['30m', '1h', 'PT45M', '90', '1h30m', '15m', '0m', '-5m', '1d', '8h', '999999h', 'P1Y', 'PT0S', '1e3m', '2d'];
const INSTANTS = [
  iso(now),
  iso(now + DAY),
  iso(now + 3 * DAY).slice(0, 10),
  iso(now + 2 * DAY).slice(0, 16),
  '2026-12-01',
  '2026-12-01T09:00',
  '2026-12-01T09:00:00+01:00',
  '1970-01-01',
  '9999-12-31',
  '2026-02-30',
  '2026-13-01',
  'tomorrow',
  iso(now - 30 * DAY),
  iso(now + 400 * DAY),
  '+275760-09-13T00:00:00Z',
];
const ZONES = ['Europe/Berlin', 'UTC', 'America/New_York', 'Asia/Kathmandu', 'Pacific/Chatham', 'Mars/Olympus', '+05:00', 'Etc/GMT+12', ''];
const SPANS = ['3d', '1h', '366d', '0m', '15m', '7d', '1m', '1s', '10000d', 'PT1M'];
const WORKING_HOURS = [
  'mon-fri 09:00-17:00',
  'sun 00:00-24:00',
  'mon-thu 08:00-12:00,13:00-17:00; fri 08:00-12:00',
  'mon-sun 00:00-23:59',
  '25:00-26:00',
  'mon-fri',
  'fri-mon 17:00-09:00',
  'mon 09:00-09:00',
];
const CALENDAR_LISTS = [[], ['demo'], ['Work'], ['demo', 'demo'], ['demo', 'nope'], ['x'.repeat(200)], [''], Array.from({ length: 40 }, (_, i) => `c${i}`)];

function record(shape: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Record<string, unknown>> {
  const withExtras = fc.tuple(fc.record(shape, { requiredKeys: [] }), fc.dictionary(fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor')), wrongType(), { maxKeys: 2 }));
  return fc.oneof({ weight: 5, arbitrary: withExtras.map(([known]) => known) }, { weight: 1, arbitrary: withExtras.map(([known, extra]) => ({ ...extra, ...known })) });
}

/** find_slot's arguments: duration (required), from, to, timeZone and the search options. */
export function findSlotArgs(): fc.Arbitrary<Record<string, unknown>> {
  return record({
    duration: field(DURATIONS),
    from: field(INSTANTS),
    to: field(INSTANTS),
    timeZone: field(ZONES),
    within: field(SPANS),
    workingHours: field(WORKING_HOURS),
    step: field(SPANS),
    bufferBefore: field(SPANS),
    bufferAfter: field(SPANS),
    minNotice: field(SPANS),
    limit: field([1, 5, 50, 0, -1, 1e9, 2.5, '5']),
    calendars: field(CALENDAR_LISTS),
    tentative: field(['busy', 'free', 'maybe']),
    onCalendarError: field(['fail', 'skip', 'ignore']),
  });
}

/** list_busy's arguments: from, to, timeZone, calendars. */
export function listBusyArgs(): fc.Arbitrary<Record<string, unknown>> {
  return record({
    from: field(INSTANTS),
    to: field(INSTANTS),
    timeZone: field(ZONES),
    calendars: field(CALENDAR_LISTS),
  });
}

/** A tools/call's name and arguments: mostly the two tools, sometimes an unknown name or arguments that are not an object. */
export function toolCall(): fc.Arbitrary<{ name: string; arguments: unknown }> {
  return fc.oneof(
    { weight: 4, arbitrary: findSlotArgs().map((args) => ({ name: 'find_slot', arguments: args as unknown })) },
    { weight: 4, arbitrary: listBusyArgs().map((args) => ({ name: 'list_busy', arguments: args as unknown })) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('find_slot', 'list_busy'), wrongType()).map(([name, args]) => ({ name, arguments: args })) },
    { weight: 1, arbitrary: fc.tuple(fc.oneof(junk(), fc.constantFrom('Find_Slot', 'find_slot ', 'tools/list')), findSlotArgs()).map(([name, args]) => ({ name, arguments: args as unknown })) },
  );
}
