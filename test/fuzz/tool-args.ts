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
const SPANS = ['3d', '1h', '15m', '0m', '366d', '15m', '7d', '1m', '1s', '10000d', 'PT1M'];
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
const CALENDAR_LISTS = [['demo'], ['demo', 'demo'], ['demo'], [], ['Work'], ['demo', 'demo'], ['demo', 'nope'], ['x'.repeat(200)], [''], Array.from({ length: 40 }, (_, i) => `c${i}`)];

/**
 * Arguments: mostly a well-formed call (the required fields right, each
 * optional field absent or plausible) with up to two fields given junk or a
 * wrong type, or an unknown field added; else every field drawn
 * independently, plausible, junk or of the wrong type.
 */
function record(required: Record<string, readonly unknown[]>, optional: Record<string, readonly unknown[]>): fc.Arbitrary<Record<string, unknown>> {
  // The well-formed base takes each field's first values (the ones a correct client sends) and leaves most optional fields out.
  const good = (values: readonly unknown[]) => fc.constantFrom(...values.slice(0, 3));
  const parts: Array<fc.Arbitrary<Array<[string, unknown]>>> = [
    ...Object.entries(required).map(([k, v]) => good(v).map((value) => [[k, value]] as Array<[string, unknown]>)),
    ...Object.entries(optional).map(([k, v]) =>
      fc.oneof({ weight: 4, arbitrary: fc.constant([] as Array<[string, unknown]>) }, { weight: 1, arbitrary: good(v).map((value) => [[k, value]] as Array<[string, unknown]>) }),
    ),
  ];
  const base = fc.tuple(...parts).map((entries) => Object.fromEntries(entries.flat()) as Record<string, unknown>);
  const names = [...Object.keys(required), ...Object.keys(optional), '__proto__', 'extra'];
  const mutation = fc.tuple(fc.constantFrom(...names), fc.oneof(junk(), wrongType(), fc.constant(undefined)));
  const mutated = fc.tuple(base, fc.array(mutation, { maxLength: 2 })).map(([args, changes]) => {
    const out: Record<string, unknown> = { ...args };
    for (const [name, value] of changes) {
      if (value === undefined) delete out[name];
      else Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
    }
    return out;
  });
  const chaotic = fc.record(Object.fromEntries([...Object.entries(required), ...Object.entries(optional)].map(([k, v]) => [k, field(v)])), { requiredKeys: [] });
  return fc.oneof({ weight: 3, arbitrary: mutated }, { weight: 1, arbitrary: chaotic });
}

/** find_slot's arguments: duration (required), from, to, timeZone and the search options. */
export function findSlotArgs(): fc.Arbitrary<Record<string, unknown>> {
  return record(
    { duration: DURATIONS },
    {
      from: INSTANTS,
      to: INSTANTS,
      timeZone: ZONES,
      within: SPANS,
      workingHours: WORKING_HOURS,
      step: SPANS,
      bufferBefore: SPANS,
      bufferAfter: SPANS,
      minNotice: SPANS,
      limit: [1, 5, 10, 0, -1, 1e9, 2.5, '5'],
      calendars: CALENDAR_LISTS,
      tentative: ['busy', 'free', 'busy', 'maybe'],
      onCalendarError: ['fail', 'skip', 'fail', 'ignore'],
    },
  );
}

/** list_busy's arguments: from, to, timeZone, calendars (all optional). */
export function listBusyArgs(): fc.Arbitrary<Record<string, unknown>> {
  return record({}, { from: INSTANTS, to: INSTANTS, timeZone: ZONES, calendars: CALENDAR_LISTS });
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
